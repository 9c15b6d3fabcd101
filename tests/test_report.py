"""The report renders from a real `smoke` sweep (Ray Tune + training), via the CLI and `mlflow run -e report`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ib_sweeps import analysis

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _env(**extra):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_"))}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def test_report_of_a_real_smoke_sweep(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = [sys.executable, "-m", "ib_sweeps.cli", "sweep", "smoke", "--profile", "quick", "--tracking-uri", uri,
           "--no-progress"]  # fmt: skip
    proc = subprocess.run(run, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = tmp_path / "rep"
    cmd = [sys.executable, "-m", "ib_sweeps.cli", "report", "smoke", "--tracking-uri", uri, "--out", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "#1 last_hidden compresses where activation=tanh (binning)" in proc.stdout

    verdicts = json.loads((out / "verdicts.json").read_text())
    assert verdicts["sweep"] == "smoke" and verdicts["runs"]["FINISHED"] == 4
    assert verdicts["seeds_per_condition"] == [2] and "unit of replication" in verdicts["replication"]
    (claim,) = verdicts["verdicts"]
    assert claim["verdict"] in ("supported", "refuted", "inconclusive") and len(claim["trials"]) == 2
    # the programmatic API gives the same verdict and numbers
    (again,) = analysis.evaluate_claims("smoke", uri)
    assert again.verdict == claim["verdict"] and again.numbers["k"] == claim["numbers"]["k"]

    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # every figure embedded: self-contained
    assert "Verdicts" in page and claim["verdict"] in page and "unit of replication" in page
    assert page.index("Verdicts") < page.index("<figure>")  # the outcome comes before the figures
    assert "| 1 |" in (out / "report.md").read_text()

    client = MlflowClient(uri)
    parent = analysis.locate("smoke", uri).parent
    logged = {f.path for f in client.list_artifacts(parent.info.run_id, "report")}
    assert logged == {"report/report.html", "report/report.md", "report/verdicts.json"}
    assert client.get_run(parent.info.run_id).data.tags["ib_sweeps.claim.1"] == claim["verdict"]


def test_mlflow_run_report_entry_point_and_a_missing_sweep(tmp_path):
    from ib_sweeps.analysis import synthetic as syn

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    import numpy as np

    epochs = np.arange(0, 50, 5)
    trial = syn.Trial({"seed": 0}, epochs, {("binning", "layer_1"): syn.rise_fall(epochs, 20, 5, 3),
                                             ("binning", "layer_2"): syn.rise_fall(epochs, 20, 1, 1)})  # fmt: skip
    syn.write_sweep(uri, "tiny", [trial], {"claims": [{"kind": "compresses"}]})
    cmd = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "report", "--env-manager", "local",
           "--experiment-name", "project", "-P", "sweep=tiny", "-P", f"out={tmp_path / 'rep'}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(MLFLOW_TRACKING_URI=uri), capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "INCONCLUSIVE" in proc.stdout and "1/1 trials compress" in proc.stdout  # one trial cannot decide
    assert (tmp_path / "rep" / "report.html").is_file()
    cmd = [sys.executable, "-m", "ib_sweeps.cli", "report", "nothing", "--tracking-uri", uri]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no sweep 'nothing'" in proc.stderr and "tiny" in proc.stderr
