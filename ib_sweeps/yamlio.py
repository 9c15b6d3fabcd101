"""YAML reading and ``--set key=value`` overrides, before validation.

PyYAML follows YAML 1.1, where ``4e-4`` is a string; here it is a float, as a
user writing a learning rate expects.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def loads(text: str):
    """Parse YAML text (1.1 plus exponent floats such as ``1e-3``)."""
    return yaml.load(text, Loader=_Loader)


def load_file(path: str | Path) -> dict:
    """Read a YAML mapping from ``path``; ``ValueError`` with the path if unreadable."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config file not found: {p}")
    try:
        raw = loads(p.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"config file {p} is not valid YAML: {err}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"config file {p} must hold a mapping of keys to values, not {type(raw).__name__}")
    return raw


def apply_override(raw: dict, assignment: str, seeds: dict | None = None) -> dict:
    """Set a dotted ``key=value`` (value parsed as YAML) in a copy of ``raw``.

    Integer path segments index lists, e.g. ``estimators.0.n_bins=20``. A
    top-level section missing from ``raw`` starts from ``seeds[section]`` (e.g.
    ``{"kind": "log"}``), so ``schedule.n=50`` edits the default schedule.
    """
    if "=" not in assignment:
        raise ValueError(f"override {assignment!r} must look like key=value, e.g. train.epochs=100")
    key, text = assignment.split("=", 1)
    return set_path(raw, key.strip(), loads(text), seeds)


def set_path(raw: dict, key: str, value, seeds: dict | None = None) -> dict:
    """A copy of ``raw`` with the dotted ``key`` set to ``value`` (see :func:`apply_override`)."""
    parts = key.split(".")
    if not all(parts):
        raise ValueError(f"key {key!r} has an empty segment")
    out = _copy(raw)
    node = out
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ValueError(f"key {key!r}: {part!r} is not an index of a list of {len(node)}")
            part = int(part)
        elif not isinstance(node, dict):
            raise ValueError(f"key {key!r}: {'.'.join(parts[:i])!r} is not a mapping")
        if last:
            node[part] = _copy(value)
        else:
            if isinstance(node, dict) and part not in node:
                node[part] = _copy((seeds or {}).get(part, {})) if i == 0 else {}
            node = node[part]
    return out


def _copy(node):
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node
