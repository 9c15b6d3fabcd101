"""mypy over the public API modules listed in pyproject.toml ([tool.mypy] files)."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # mypy's first run takes about 20 s (later runs reuse its cache)


def test_public_api_type_checks():
    cache = Path(tempfile.gettempdir()) / "ib-sweeps-mypy-cache"  # outside the work tree, reused between runs
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache)], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
