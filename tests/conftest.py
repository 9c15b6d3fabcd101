import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Reference data vendored into the repository (tests/data/README.md says where it comes from).
DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.fixture(scope="session")
def tf_ready():
    """TensorFlow imported with small thread pools (must precede any TF work in this process)."""
    from ib_sweeps import runtime

    runtime.configure_tensorflow(1)


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch):
    """A fresh SQLite MLflow store for one test; no inherited run or experiment."""
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
