"""YAML reading and ``--set key=value`` overrides, before validation.

PyYAML follows YAML 1.1, where ``4e-4`` is a string; here it is a float, as a
user writing a learning rate expects.

Every text is checked on its composed node graph before any Python object is
built: a key repeated in one mapping is an error (naming the source, the key
and both lines) rather than silently the last value; aliases may not expand
the document beyond :data:`MAX_NODES` nodes ("billion laughs": a 1 kB file of
nested aliases expands to 10^9 values when copied or validated) nor refer to
themselves; nesting is at most :data:`MAX_DEPTH` deep. Files must be regular,
UTF-8 text of at most :data:`MAX_FILE_BYTES`. Errors never quote the file's
lines, so a file that is not a config (``/etc/shadow``) is not echoed back.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

MAX_NODES = 1_000_000  # values after expanding aliases; shipped sweeps have a few hundred
MAX_DEPTH = 64  # nesting of mappings and lists; configs need about 8
MAX_FILE_BYTES = 2**20  # shipped sweeps have a few kB; 1 MiB of YAML takes about 2 s to read


# libyaml's parser where PyYAML was built with it: the same documents and values, ten times faster.
class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    pass


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)

_MERGE = "tag:yaml.org,2002:merge"


class Refused(ValueError):
    """YAML refused by a guard of this module (the message names the source)."""


def loads(text: str, source: str = "YAML text", expect: tuple[str, tuple[str, ...]] | None = None):
    """Parse YAML text (1.1 plus exponent floats such as ``1e-3``), guarded as the module says.

    ``source`` names the text in errors (a path, or the ``--set`` assignment).
    ``expect``: (kind of file, its top-level keys); a mapping with none of
    those keys raises :class:`Refused` without naming its keys. Raises
    ``ValueError`` naming ``source`` for invalid or oversized YAML.
    """
    loader = _Loader(text)
    try:
        _check_nesting(text, source)  # before composing: PyYAML's composer recurses, its scanner slows with depth
        node = loader.get_single_node()
        if node is None:
            return None
        if expect is not None:
            _check_looks_like(node, source, *expect)
        _check_graph(node, source)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        raise ValueError(f"{source} is not valid YAML: {_describe(err)}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{source} is not valid YAML: {err}") from None
    except RecursionError:
        raise ValueError(f"{source}: lists or mappings nested too deeply; allowed: {MAX_DEPTH} levels") from None
    except Refused:
        raise
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None  # e.g. an integer of more than 4300 digits
    finally:
        loader.dispose()


def _describe(err: yaml.MarkedYAMLError) -> str:
    """The problem and where, without the snippet of the text PyYAML would quote."""
    mark = err.problem_mark or err.context_mark
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return " ".join(p for p in (err.context, err.problem) if p) + where


def _check_looks_like(node, source: str, what: str, names: tuple[str, ...]) -> None:
    if not isinstance(node, yaml.MappingNode) or not node.value:
        return
    top = {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    if not top & set(names):
        raise Refused(
            f"{source} does not look like an ib-sweeps {what}: none of its top-level keys is one of {', '.join(names)}"
        )


def _check_nesting(text: str, source: str) -> None:
    loader, depth = _Loader(text), 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise Refused(
                        f"{source}: line {event.start_mark.line + 1}: lists or mappings nested too deeply; "
                        f"allowed: {MAX_DEPTH} levels"
                    )
            elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def _check_graph(root, source: str) -> None:
    """Duplicate keys, self-referring aliases, expanded size and depth of a composed node graph."""
    size: dict[int, int] = {}  # id(node) -> nodes it expands to (itself included)
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        children = _children(node)
        if done:
            on_path.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            depth[id(node)] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[id(node)] > MAX_NODES:
                raise Refused(
                    f"{source}: aliases (*name) expand it to more than {MAX_NODES:,} values (the node at line "
                    f"{node.start_mark.line + 1}); allowed: at most {MAX_NODES:,}"
                )
            if depth[id(node)] > MAX_DEPTH:
                raise Refused(f"{source}: lists or mappings nested too deeply; allowed: {MAX_DEPTH} levels")
            continue
        if id(node) in size:
            continue
        if isinstance(node, yaml.MappingNode):
            _check_duplicates(node, source)
        on_path.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                raise Refused(
                    f"{source}: line {child.start_mark.line + 1}: an alias refers to a list or mapping that "
                    "contains it; allowed: aliases of complete values"
                )
            if id(child) not in size:
                stack.append((child, False))
        if len(on_path) > MAX_DEPTH:
            raise Refused(f"{source}: lists or mappings nested too deeply; allowed: {MAX_DEPTH} levels")


def _children(node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_duplicates(node: yaml.MappingNode, source: str) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
            continue
        line = key.start_mark.line + 1
        first = seen.setdefault((key.tag, key.value), line)
        if first != line:
            raise Refused(
                f"{source}: line {line}: key {key.value!r} appears twice in one mapping (first on line {first}); "
                "allowed: each key once (YAML would silently keep the last)"
            )


def read_text(path: str | Path, what: str = "config file") -> str:
    """The text of ``path``; ``ValueError`` naming the path if it is missing, not a file, too large or not UTF-8."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{what} not found: {p}")
    if p.is_dir():
        raise ValueError(f"{what} {p} is a directory; allowed: a YAML file")
    if not p.is_file():
        raise ValueError(f"{what} {p} is not a regular file; allowed: a YAML file")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{what} {p} has {size:,} bytes; allowed: a YAML file of at most {MAX_FILE_BYTES:,} bytes")
    try:
        data = p.read_bytes()
    except OSError as err:
        raise ValueError(f"{what} {p} cannot be read: {err.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{what} {p} is not a text file (byte {err.start} is not UTF-8); allowed: a YAML file in UTF-8"
        ) from None
    if "\x00" in text:
        raise ValueError(f"{what} {p} is not a text file (it holds NUL bytes); allowed: a YAML file in UTF-8")
    return text


def load_file(path: str | Path, what: str = "config file", expect: tuple[str, tuple[str, ...]] | None = None) -> dict:
    """Read a YAML mapping from ``path``; ``ValueError`` with the path if unreadable.

    ``expect``: (kind of file, its top-level keys), see :func:`loads`.
    """
    p = Path(path)
    raw = loads(read_text(p, what), f"{what} {p}", expect)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{what} {p} must hold a mapping of keys to values, not {type(raw).__name__}")
    return raw


def apply_override(raw: dict, assignment: str, seeds: dict | None = None) -> dict:
    """Set a dotted ``key=value`` (value parsed as YAML) in a copy of ``raw``.

    Integer path segments index lists, e.g. ``estimators.0.n_bins=20``. A
    top-level section missing from ``raw`` starts from ``seeds[section]`` (e.g.
    ``{"kind": "log"}``), so ``schedule.n=50`` edits the default schedule.
    """
    key, value = parse_assignment(assignment)
    return set_path(raw, key, value, seeds)


def parse_assignment(assignment: str) -> tuple[str, object]:
    """(dotted key, value parsed as guarded YAML) of a ``--set`` item; ``ValueError`` naming the item."""
    if "=" not in assignment:
        raise ValueError(f"override {assignment!r} must look like key=value, e.g. train.epochs=100")
    key, text = assignment.split("=", 1)
    return key.strip(), loads(text, f"override {assignment!r}")


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
