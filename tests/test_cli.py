"""The command line and the MLproject entry point."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ib_sweeps.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_help_does_not_import_tensorflow():
    code = (
        "import sys\nfrom ib_sweeps.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'mlflow', 'ray') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_bad_config_exits_2_with_message(capsys):
    assert main(["trial", "--set", "train.epochs=0 model.activation=tanhh"]) == 2
    err = capsys.readouterr().err
    assert "train.epochs: Input should be greater than 0; got 0" in err
    assert "model.activation: got 'tanhh'" in err


def test_bad_cpus_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["trial", "--cpus", "0"])
    assert "--cpus: must be a positive integer" in capsys.readouterr().err


def test_print_config(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("train: {epochs: 77}\n")
    assert main(["trial", str(path), "--set", "seed=4", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "epochs: 77" in out and "seed: 4" in out


@pytest.mark.slow
def test_mlflow_run_trial_entry_point(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = uri
    cmd = [
        sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "trial", "--env-manager", "local",
        "--experiment-name", "mlproject",
        "-P", "set=train.epochs=3 model.hidden=[4, 3] schedule.kind=every", "-P", "cpus=1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("mlproject").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "3" and run.data.params["model.hidden"] == "[4, 3]"
    assert "ixt/binning/layer_3" in run.data.metrics
