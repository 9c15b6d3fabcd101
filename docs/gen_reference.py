"""Generate the reference pages from the code at docs build time (mkdocs-gen-files), so they cannot drift.

Pages written (virtual files under ``reference/``):

* ``cli.md``: ``--help`` of ``ib_sweeps.cli.build_parser()`` and of each subcommand;
* ``config.md``: every field of the trial config's pydantic models, with type, default and constraints,
  one table per section, per schedule kind and per estimator method;
* ``sweep-file.md``: the sweep-file schema (``ib_sweeps.sweep.spec``) and every claim kind;
* ``metric-keys.md``: the metric-key grammar from ``ib_sweeps.tracking`` and the summary keys;
* ``trace-format.md``: the ``trace.npz`` arrays from ``ib_sweeps.trace``.

Run directly (``python docs/gen_reference.py OUT_DIR``) to write the pages into a folder instead.
Only light modules are imported: no TensorFlow, MLflow or Ray.
"""

from __future__ import annotations

import enum
import json
import os
import re
import sys
import types
import typing
from pathlib import Path

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

# -- rendering types, constraints and defaults -------------------------------------------------------------

_BOUNDS = {at.Gt: ">", at.Ge: ">=", at.Lt: "<", at.Le: "<="}
_SENTINEL = object()


def _rst_to_md(text: str) -> str:
    """``literal`` and :role:`target` (RST) as markdown code spans."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _allowed(validator) -> str | None:
    """What a plain validator allows, in the code's own words: the ``allowed: ...`` of its error message."""
    try:
        validator.func(_SENTINEL)
    except ValueError as err:
        match = re.search(r"allowed: (.*)$", str(err))
        return match.group(1) if match else None
    return None


def _constraints(metadata) -> list[str]:
    out = []
    for m in metadata:
        if isinstance(m, FieldInfo):
            out += _constraints(m.metadata)
        elif type(m) in _BOUNDS:
            op = _BOUNDS[type(m)]
            out.append(f"{op} {getattr(m, type(m).__name__.lower())}")
        elif isinstance(m, at.MinLen):
            out.append(f"at least {m.min_length} item{'s' * (m.min_length != 1)}")
        elif isinstance(m, at.MaxLen):
            out.append(f"at most {m.max_length} item{'s' * (m.max_length != 1)}")
        elif type(m).__name__ == "PlainValidator" and (allowed := _allowed(m)):
            out.append(allowed)
        elif type(m).__name__ == "StringConstraints":
            if getattr(m, "pattern", None):
                out.append(f"matches `{m.pattern}`")
            if getattr(m, "min_length", None):
                out.append("non-empty")
    return out


def _type(tp, links: dict[type, str]) -> tuple[str, list[str]]:
    """A readable type name and the constraints carried inside it."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        inner, cons = _type(args[0], links)
        own = _constraints(args[1:])
        if any(type(m).__name__ == "PlainValidator" for m in args[1:]):
            inner = "see allowed"
        return inner, cons + own
    if origin in (typing.Union, types.UnionType):
        parts = [_type(a, links) for a in args if a is not type(None)]
        names = " or ".join(dict.fromkeys(p[0] for p in parts))
        cons = [c for p in parts for c in p[1]]
        return (names + (" or null" if type(None) in args else ""), cons)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args), []
    if origin in (tuple, list):
        inner, cons = _type(args[0], links) if args else ("any", [])
        return f"list of {inner}", [f"each {c}" for c in cons]
    if origin is dict:
        k, _ = _type(args[0], links)
        v, cons = _type(args[1], links)
        return f"mapping {k} → {v}", cons
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return (f"[{links[tp]}](#{_anchor(links[tp])})" if tp in links else tp.__name__), []
    if tp is typing.Any:
        return "any", []
    return getattr(tp, "__name__", str(tp)), []


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", title.lower().replace("`", "")).strip("-")


def _plain(value):
    if isinstance(value, BaseModel):
        tag = next((f for f in ("kind", "method") if f in type(value).model_fields), None)
        return {tag: getattr(value, tag)} if tag else _plain(value.model_dump())
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if isinstance(value, BaseModel) and not any(f in type(value).model_fields for f in ("kind", "method")):
        return "(its own defaults)"
    return f"`{json.dumps(_plain(value))}`".replace('"', "")


def fields_table(model: type[BaseModel], prefix: str, links: dict[type, str], skip=()) -> str:
    rows = ["| key | type | default | allowed |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        key = field.alias or name
        kind, cons = _type(field.annotation, links)
        cons = cons + _constraints(field.metadata)
        allowed = "; ".join(dict.fromkeys(cons)).replace("|", "\\|")
        rows.append(f"| `{prefix}{key}` | {kind} | {_default(field)} | {allowed} |")
    return "\n".join(rows)


def _doc(obj) -> str:
    doc = (obj.__doc__ or "").strip()
    if not doc or doc.startswith(("Usage docs", "!!! abstract")):  # pydantic's own BaseModel docstring
        return ""
    return _rst_to_md(doc.split("\n\n")[0].replace("\n", " ")) + "\n\n"


# -- pages -----------------------------------------------------------------------------------------------

GENERATED = "<!-- generated by docs/gen_reference.py from the code at build time; do not edit -->\n\n"


def cli_page() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width: make it stable
    from ib_sweeps import cli

    parser = cli.build_parser()
    parser.prog = "ib-sweeps"
    out = [GENERATED, "# Command line\n\n", _doc(cli), "```text\n", parser.format_help(), "```\n"]
    for action in parser._subparsers._group_actions:  # argparse has no public accessor for subcommands
        for name, sub in action.choices.items():
            out += [f"\n## `ib-sweeps {name}`\n\n```text\n", sub.format_help(), "```\n"]
    return "".join(out)


def config_page() -> str:
    from ib_sweeps import config, estimators, pooled, schedules

    links = {config.DataConfig: "data"}
    links |= {cls: f"model (kind: {kind})" for kind, cls in config.MODELS.items()}  # every registered model kind
    links |= {config.TrainConfig: "train", pooled.PooledConfig: "pooled"}
    kinds = {cls: f"`{name}`" for reg in (schedules.REGISTRY, estimators.REGISTRY) for name, cls in reg.items()}
    out = [GENERATED, "# Trial config\n\n", _doc(config)]
    out.append(
        'Every key is optional. Types are strict: YAML `"5"` is not an integer and `true` is not a number. '
        "Unknown keys are errors. The tables below come from the pydantic models in `ib_sweeps/config.py`, "
        "`ib_sweeps/schedules/` and `ib_sweeps/estimators/` when the docs are built. For what each option "
        "means, see [Config notes](config-notes.md).\n\n"
    )
    out += ["## Top level\n\n", _doc(config.TrialConfig), fields_table(config.TrialConfig, "", links | kinds), "\n\n"]
    out.append(
        "`schedule` is one of the [schedule kinds](#schedule-kinds) (tag `kind`); each item of `estimators` "
        "is one of the [estimator methods](#estimator-methods) (tag `method`, default `binning`).\n\n"
    )
    for model, title in links.items():
        prefix = title.split(" ")[0] + "."
        out += [f"## {title}\n\n", _doc(model), fields_table(model, prefix, links), "\n\n"]
    out.append("## Schedule kinds\n\n")
    for kind, cls in schedules.REGISTRY.items():
        out += [f"### `{kind}`\n\n", _doc(cls), fields_table(cls, "schedule.", links), "\n\n"]
    out.append("## Estimator methods\n\n")
    for method, cls in estimators.REGISTRY.items():
        out += [f"### `{method}`\n\n", _doc(cls), fields_table(cls, "estimators[i].", links), "\n\n"]
    return "".join(out)


def sweep_page() -> str:
    from ib_sweeps import claims
    from ib_sweeps.sweep import spec

    links = {spec.Resources: "resources", spec.Search: "search", spec.Distribution: "search distribution",
             spec.Objective: "search objective"}  # fmt: skip
    out = [GENERATED, "# Sweep file\n\n", _doc(spec), "## Top level\n\n", _doc(spec.SweepSpec)]
    kinds = {cls: f"`{kind}`" for kind, cls in claims.CLAIMS.items()}
    out += [fields_table(spec.SweepSpec, "", links | kinds), "\n\n"]
    for model, title in links.items():
        out += [f"## {title}\n\n", _doc(model), fields_table(model, "", links), "\n\n"]
    out += ["## Claim kinds\n\n", _rst_to_md(claims.__doc__ or ""), "\n\n"]
    for kind, cls in claims.CLAIMS.items():
        out += [f"### `{kind}`\n\n", _doc(cls), fields_table(cls, "", links), "\n\n"]
    return "".join(out)


def metric_keys_page() -> str:
    from ib_sweeps import records, tracking
    from ib_sweeps.sweep import summary

    out = [GENERATED, "# Metric keys\n\n"]
    out.append("Keys and tag names are built and parsed in one module, `ib_sweeps/records.py`; its description:\n\n")
    out.append((records.__doc__ or "").split("\n\n", 1)[-1])
    out.append("\n\nValues: gradient statistics " + ", ".join(f"`{k}`" for k in records.GRAD_STATS))
    out.append("; summary statistics " + ", ".join(f"`{k}`" for k in records.SUMMARY_STATS))
    out.append("; history keys, in the column order of `trace.npz` " + ", ".join(f"`{k}`" for k in records.HISTORY))
    out.append(".\n")
    doc = tracking.__doc__ or ""
    if "Metric key grammar" in doc:  # what each key of a trial holds, as the tracking module states it
        grammar = doc.split("Metric key grammar", 1)[1].split(":", 1)[1].split("\n\n", 2)
        out += ["\n## What a trial logs\n\nFrom `ib_sweeps/tracking.py`:\n", "\n\n".join(grammar[:2]), "\n"]
    doc = summary.__doc__ or ""
    if "Keys" in doc:
        out += ["\n## Summary metrics of trials run by a sweep\n\n", "Logged at step 0 as `summary/<key>` "]
        out += ["(`ib_sweeps/sweep/summary.py`):\n", doc.split("Keys", 1)[1].split(":", 1)[1], "\n"]
    return _rst_to_md("".join(out))


def trace_page() -> str:
    from ib_sweeps import trace

    doc = _rst_to_md(trace.__doc__ or "")
    return GENERATED + "# Trace format (`trace.npz`)\n\n" + doc + "\n\nRead one with `ib_sweeps.trace.load(path)`.\n"


def layout_page() -> str:
    """One row per module of the package with the first sentence of its docstring (read with ast, no imports)."""
    import ast

    root = Path(__file__).resolve().parents[1] if "__file__" in globals() else Path.cwd()
    rows = ["| module | holds |", "| --- | --- |"]
    for path in sorted((root / "ib_sweeps").rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = _rst_to_md(" ".join(doc.split("\n\n")[0].split())).replace("|", "\\|")
        rows.append(f"| `{path.relative_to(root)}` | {first} |")
    intro = (
        "Generated from the package's module docstrings. The flow runs one way: YAML -> validated, frozen config "
        "-> trial -> activity at scheduled epochs -> estimators -> one flat metrics dict per measured epoch -> "
        "MLflow; the analysis reads MLflow only. `tests/` mirrors the package, `benchmarks/` holds speed scripts "
        "that print ratios, `sweeps/` the shipped sweep files.\n\n"
    )
    return GENERATED + "# Source layout\n\n" + intro + "\n".join(rows) + "\n"


PAGES = {
    "reference/layout.md": layout_page,
    "reference/cli.md": cli_page,
    "reference/config.md": config_page,
    "reference/sweep-file.md": sweep_page,
    "reference/metric-keys.md": metric_keys_page,
    "reference/trace-format.md": trace_page,
}


def main(out_dir: str | None = None) -> None:
    if out_dir:  # standalone: python docs/gen_reference.py OUT_DIR
        root = Path(out_dir)
        for path, page in PAGES.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(page())
        return
    import mkdocs_gen_files

    for path, page in PAGES.items():
        with mkdocs_gen_files.open(path, "w") as f:
            f.write(page())
        mkdocs_gen_files.set_edit_path(path, "docs/gen_reference.py")


if __name__ == "__main__":
    main(sys.argv[1])
else:  # run by mkdocs-gen-files (runpy, under another module name)
    main()
