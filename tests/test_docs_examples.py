"""The how-to pages' worked examples work: each toy plug-in, as the page shows it, passes its conformance suite.

Each ``docs/how-to/add-*.md`` page holds python blocks whose first line is a path comment:

* ``# ib_sweeps/<package>/<module>.py``: the one new file, loaded as that module;
* ``# ib_sweeps/<package>/__init__.py`` (and, for claims, ``# tests/test_claims.py``): import lines and the
  registry entry, ``NAME = {`` followed by ``"<name>": <value>,`` lines; the entry is added to that dict;

and one yaml block (a trial config, or a sweep's ``claims:``) that must validate with the new kind. The
examples are registered together in one fresh interpreter: the config's tagged unions are built from the
registries when :mod:`ib_sweeps.config` is first imported, so a kind must be registered before that, as the
registry line in the package does. The conformance suites then run with ``-k <the new names>``: their
parametrised tests pick the new kinds up from the registries, as they do for a kind added to the package,
and every selected test of each new kind must pass.
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

# The model-registry tests that build Keras layers (they import TensorFlow): run by the slow test only.
KERAS_TESTS = ("test_builds_with_its_geometry_and_parameter_count", "test_same_seed_same_weights")
# page -> (the kind's registry name, its conformance suites)
PAGES = {
    "add-estimator.md": ("sign_code", ["tests/test_estimator_registry.py", "tests/test_pooled.py"]),
    "add-schedule.md": ("powers", ["tests/test_schedules.py"]),
    "add-dataset.md": ("parity", ["tests/test_dataset_registry.py", "tests/test_model_registry.py"]),
    "add-claim-kind.md": ("compresses_by", ["tests/test_claims.py"]),
    "add-model.md": ("shallow", ["tests/test_model_registry.py"]),
}

RUNNER = r"""
import importlib, importlib.util, json, sys
import yaml

specs = json.loads(sys.argv[1])
for spec in specs:
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(spec["module"], spec["file"]))
    sys.modules[spec["module"]] = module
    module.__spec__.loader.exec_module(module)
    package, leaf = spec["module"].rsplit(".", 1)
    setattr(importlib.import_module(package), leaf, module)
    for target, (imports, registry, entries) in spec["edits"].items():
        if target.startswith("tests/"):
            sys.path.insert(0, "tests")
            namespace = vars(importlib.import_module(target[len("tests/") : -len(".py")]))
        else:
            namespace = vars(importlib.import_module(target[: -len("/__init__.py")].replace("/", ".")))
        exec(imports, namespace)
        for key, value in entries:
            namespace[registry][key] = eval(value, namespace)
        if target == "ib_sweeps/models/__init__.py":  # CONFIGS is derived from REGISTRY when the package loads
            namespace["CONFIGS"].update({k: kind.config for k, kind in namespace["REGISTRY"].items()})

from ib_sweeps import claims, config

for spec in specs:
    use = yaml.safe_load(spec["yaml"])
    if "claims" in use:
        assert claims.parse(use["claims"])[0].kind == spec["name"]
    else:
        config.validate(use)
    print("validated the config of", spec["name"])
import pytest

suites = sorted({suite for spec in specs for suite in spec["suites"]})
names = " or ".join(spec["name"] for spec in specs)
sys.exit(pytest.main([*suites, "-v", "-p", "no:cacheprovider", "-k", f"({names}) and ({sys.argv[2]})"]))
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


def _spec(page: str, tmp_path: Path) -> dict:
    name, suites = PAGES[page]
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
    return {"module": module, "file": str(file), "edits": edits, "yaml": use, "name": name, "suites": suites}


def _run(pages: list[str], tmp_path: Path, select: str, expect: list[str] | None = None) -> str:
    """Register every page's example in one fresh interpreter, validate its config, run the suites."""
    specs = [_spec(page, tmp_path) for page in pages]
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(specs), select],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"an example failed:\n{out[-8000:]}"
    for page in pages if expect is None else expect:  # pages whose kind must have passed tests
        name = PAGES[page][0]
        passed = [line for line in out.splitlines() if f"[{name}" in line or f"-{name}" in line or f"{name}]" in line]
        assert passed and all("PASSED" in line for line in passed), (
            f"{page}: no conformance test passed:\n{out[-3000:]}"
        )
    return out


def test_how_to_examples_pass_their_conformance_suites(tmp_path):
    """Every page at once (one interpreter: about 10 s); the Keras-building model tests are in the slow test."""
    _run(list(PAGES), tmp_path, f"not {KERAS_TESTS[0]} and not {KERAS_TESTS[1]}")


@pytest.mark.slow
def test_how_to_examples_build_their_models(tmp_path):
    _run(list(PAGES), tmp_path, f"{KERAS_TESTS[0]} or {KERAS_TESTS[1]}", ["add-model.md", "add-dataset.md"])
