"""The how-to pages' worked examples work: each toy plug-in, as the page shows it, passes its conformance suite.

Each ``docs/how-to/add-*.md`` page holds python blocks whose first line is a path comment:

* ``# ib_sweeps/<package>/<module>.py``: the one new file, loaded as that module;
* ``# ib_sweeps/<package>/__init__.py`` (and, for claims, ``# tests/test_claims.py``): import lines and the
  registry entry, ``NAME = {`` followed by ``"<name>": <value>,`` lines; the entry is added to that dict;

and one yaml block (a trial config, or a sweep's ``claims:``) that must validate with the new kind. Each
page runs in a fresh interpreter: the config's tagged unions are built from the registries when
:mod:`ib_sweeps.config` is first imported, so the kind must be registered before that, as the registry line
in the package does. The conformance suite is then run with ``-k <name>``: its parametrised tests pick the
new kind up from the registry, as they do for a kind added to the package.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOW_TO = ROOT / "docs" / "how-to"

KERAS = "not test_builds_with and not test_same_seed_same_weights"  # the model tests that import TensorFlow
# page -> (the kind's registry name, conformance suites, -k filter for the fast run)
PAGES = {
    "add-estimator.md": ("sign_code", ["tests/test_estimator_registry.py", "tests/test_pooled.py"], None),
    "add-schedule.md": ("powers", ["tests/test_schedules.py"], None),
    "add-dataset.md": ("parity", ["tests/test_dataset_registry.py", "tests/test_model_registry.py"], KERAS),
    "add-claim-kind.md": ("compresses_by", ["tests/test_claims.py"], None),
    # building Keras layers imports TensorFlow: the KERAS tests run in the slow variant only
    "add-model.md": ("shallow", ["tests/test_model_registry.py"], KERAS),
}

RUNNER = r"""
import importlib, importlib.util, json, re, sys
import yaml

spec = json.loads(sys.argv[1])
module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(spec["module"], spec["file"]))
sys.modules[spec["module"]] = module
module.__spec__.loader.exec_module(module)
package, leaf = spec["module"].rsplit(".", 1)
setattr(importlib.import_module(package), leaf, module)
for target, (imports, registry, entries) in spec["edits"].items():
    if target.startswith("tests/"):
        sys.path.insert(0, "tests")
        namespace = vars(importlib.import_module(target[len("tests/"):-3]))
    else:
        namespace = vars(importlib.import_module(target[:-len("/__init__.py")].replace("/", ".")))
    exec(imports, namespace)
    for key, value in entries:
        namespace[registry][key] = eval(value, namespace)
    if target == "ib_sweeps/models/__init__.py":  # CONFIGS is derived from REGISTRY when the package loads
        namespace["CONFIGS"].update({k: kind.config for k, kind in namespace["REGISTRY"].items()})

from ib_sweeps import claims, config

use = yaml.safe_load(spec["yaml"])
if "claims" in use:
    parsed = claims.parse(use["claims"])
    assert parsed[0].kind == spec["name"], parsed
else:
    cfg = config.validate(use)
    print("validated:", cfg.model_dump(mode="json"))
import pytest
sys.exit(pytest.main([*spec["suites"], "-q", "-p", "no:cacheprovider", "-k", spec["k"]]))
"""


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _edit(block: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(import lines, registry dict name, [(key, value expression)]) of a registry block."""
    lines = block.splitlines()[1:]
    imports = "\n".join(line for line in lines if line.startswith(("from ", "import ")))
    (registry,) = [m.group(1) for line in lines if (m := re.match(r"^(\w+)(?:: [^=]+)? = \{", line))]
    entries = [(m.group(1), m.group(2)) for line in lines if (m := re.match(r'^\s+"(\w+)": (.+),$', line))]
    return imports, registry, entries


def _spec(page: str, tmp_path: Path, k: str) -> dict:
    name, suites, _ = PAGES[page]
    text = (HOW_TO / page).read_text()
    files, edits = {}, {}
    for block in _blocks(text, "python"):
        first = block.splitlines()[0]
        path = m.group(1) if (m := re.match(r"^# ((?:ib_sweeps|tests)/[\w/]+\.py)", first)) else None
        if path is None:
            continue
        if path.endswith("__init__.py") or path.startswith("tests/"):
            edits[path] = _edit(block)
        else:
            files[path] = block
    assert len(files) == 1, f"{page}: expected one new file (a python block starting '# ib_sweeps/...py')"
    (path, source), (use,) = next(iter(files.items())), _blocks(text, "yaml")
    assert edits and all(entries for _, _, entries in edits.values()), f"{page}: no registry line"
    assert any(key == name for _, _, entries in edits.values() for key, _ in entries), f"{page}: {name} not registered"
    file = tmp_path / Path(path).name
    file.write_text(source)
    module = path[: -len(".py")].replace("/", ".")
    return {"module": module, "file": str(file), "edits": edits, "yaml": use, "name": name, "suites": suites, "k": k}


def _run(page: str, tmp_path: Path, k: str) -> str:
    spec = _spec(page, tmp_path, k)
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(spec)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{page}: the example failed:\n{out[-6000:]}"
    passed = re.search(r"(\d+) passed", out)
    assert passed and int(passed.group(1)) > 0, f"{page}: no conformance test selected:\n{out[-3000:]}"
    return out


@pytest.mark.parametrize("page", list(PAGES))
def test_how_to_example_passes_its_conformance_suite(page, tmp_path):
    name, _, fast = PAGES[page]
    out = _run(page, tmp_path, f"{name} and ({fast})" if fast else name)
    assert "failed" not in out.splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p, (_, _, fast) in PAGES.items() if fast])
def test_how_to_example_passes_its_whole_conformance_suite(page, tmp_path, tf_ready):
    _run(page, tmp_path, PAGES[page][0])
