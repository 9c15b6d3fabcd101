"""The docs: the README stays short and honest about CI, its analysis example runs, and the site builds strictly."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _ci_command() -> str:
    """The command `.ci/run` runs: its last line that is neither a comment, the shebang nor the exit trap."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    return [line for line in lines if line and not line.startswith(("#", "trap "))][-1]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_is_at_most_150_lines():
    assert len(README.splitlines()) <= 150


def test_readme_test_command_is_what_ci_runs():
    command = _ci_command()
    assert "pytest" in command
    assert any(line.strip() == command for block in _blocks("bash") for line in block.splitlines())
    shlex.split(command)  # one well-formed shell line


def test_readme_analysis_example_runs_against_a_store(tmp_path, monkeypatch):
    """The README's Python example, verbatim, on a small synthetic sweep named like the one it reads."""
    from ib_sweeps.analysis import synthetic as syn

    (example,) = [b for b in _blocks("python") if "analysis" in b]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    epochs = np.array([0, 1, 3, 10, 30, 100, 300, 1000])
    trials = []
    for activation, final in (("tanh", 4.0), ("relu", 8.0)):
        for seed in range(3):
            ixt = {("binning", f"layer_{k}"): syn.rise_fall(epochs, 100, 8.0, final, 1.0) for k in (1, 2, 3)}
            iyt = {key: syn.rise_fall(epochs, 100, 0.9, 0.95, 0.1) for key in ixt}
            loss = {"loss/train": syn.kinked(epochs, 100, -0.5, -0.05)}
            trials.append(syn.Trial({"model.activation": activation, "seed": seed}, epochs, ixt, iyt, loss))
    claims = [{"kind": "compresses", "where": {"model.activation": "tanh"}}]
    syn.write_sweep(uri, "activations", trials, {"base": {"estimators": [{"method": "binning"}]}, "claims": claims})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert len(namespace["runs"]) == 6
    assert {v.verdict for v in namespace["verdicts"]} <= {"supported", "refuted", "inconclusive"}
    assert list(tmp_path.glob("reports/*/report.html"))


def test_reference_pages_are_generated_from_the_code(tmp_path):
    from ib_sweeps import config

    subprocess.run([sys.executable, str(ROOT / "docs" / "gen_reference.py"), str(tmp_path)], check=True)
    page = (tmp_path / "reference" / "config.md").read_text()
    epochs = config.TrainConfig.model_fields["epochs"].default
    assert f"| `train.epochs` | int | `{epochs}` |" in page
    cli = (tmp_path / "reference" / "cli.md").read_text()
    assert "## `ib-sweeps sweep`" in cli and "--tracking-uri" in cli
    for name in ("sweep-file.md", "metric-keys.md", "trace-format.md"):
        assert (tmp_path / "reference" / name).stat().st_size > 500


@pytest.mark.slow
def test_docs_build_strict(tmp_path):
    env = {**os.environ, "DISABLE_MKDOCS_2_WARNING": "true", "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "config" / "index.html").exists()
