"""The import-direction rules of ``.importlinter`` hold: ``lint-imports`` is run here, so CI checks them.

The layers (cli > analysis > sweep > trial > config > plug-ins > base) and why
they are ordered so are written in ``.importlinter`` itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(root: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports not found: install the test extra (pip install -e '.[test]')")
    env = os.environ | {"PYTHONPATH": str(root)}  # the package under root, not an installed copy
    return subprocess.run(
        [exe, "--no-cache", "--no-logo", str(root / ".importlinter")],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_imports_flow_one_way():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    """config importing the analysis (as it once did for the claim registry) is caught."""
    shutil.copytree(ROOT / "ib_sweeps", tmp_path / "ib_sweeps", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    config = tmp_path / "ib_sweeps" / "config.py"
    config.write_text(config.read_text() + "\nfrom ib_sweeps.analysis import verdicts  # noqa: E402, F401\n")
    proc = _lint(tmp_path)
    assert proc.returncode == 1, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "ib_sweeps.config is not allowed to import ib_sweeps.analysis" in proc.stdout


def test_claims_may_not_read_mlflow(tmp_path):
    shutil.copytree(ROOT / "ib_sweeps", tmp_path / "ib_sweeps", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    base = tmp_path / "ib_sweeps" / "claims" / "base.py"
    base.write_text(base.read_text() + "\nimport mlflow  # noqa: E402, F401\n")
    proc = _lint(tmp_path)
    assert proc.returncode == 1 and "ib_sweeps.claims is not allowed to import mlflow" in proc.stdout, proc.stdout
