"""Find, read, resolve and check a sweep file before any trial runs.

``load(name_or_path, profile, overrides)`` reads the YAML, applies the named
profile and then the ``--set`` overrides, validates the result and every
trial config it expands to, and returns a :class:`Sweep`. Every problem is
reported at once in one :class:`~ib_sweeps.config.ConfigError`, naming the key,
the bad value and what is allowed.

The sweep's size is counted before any trial config is built (see
:mod:`ib_sweeps.sweep.spec`, ``max_trials``); the file is read through the
guarded reader of :mod:`ib_sweeps.yamlio`.

Override keys address the sweep file: ``seeds=3``, ``resources.cpus=2``,
``grid.model.activation=[tanh, relu]``, ``search.n_trials=8``. Any other key is
a trial-config key and goes into ``base`` (``train.epochs=200`` sets
``base.train.epochs``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ib_sweeps import claims, config, data, yamlio
from ib_sweeps.sweep import summary
from ib_sweeps.sweep.spec import SEED_AXIS, SweepSpec

_MAX_REPORTED = 10
SWEEP_FIELDS = tuple(SweepSpec.model_fields)


def search_dirs() -> list[Path]:
    """Where sweep names are looked up: ``$IB_SWEEPS_DIR``, ``./sweeps``, then the project's own ``sweeps/``."""
    dirs = [Path(os.environ["IB_SWEEPS_DIR"])] if os.environ.get("IB_SWEEPS_DIR") else []
    return [*dirs, Path.cwd() / "sweeps", Path(__file__).resolve().parents[2] / "sweeps"]


def names() -> list[str]:
    """Names of the sweep files found in :func:`search_dirs`."""
    return sorted({p.stem for d in search_dirs() if d.is_dir() for p in d.glob("*.yaml")})


def find(name_or_path: str) -> Path:
    """Path of a sweep file given as a path or a name; ``ValueError`` listing the names otherwise."""
    path = Path(name_or_path)
    if path.is_file():
        return path.resolve()
    if path.exists():
        yamlio.read_text(path, "sweep file")  # raises, naming the path: a directory or not a regular file
    for d in search_dirs():
        if (d / f"{name_or_path}.yaml").is_file():
            return (d / f"{name_or_path}.yaml").resolve()
    raise ValueError(f"sweep not found: {name_or_path!r}; available: {', '.join(names()) or '(none)'}")


@dataclass(frozen=True)
class Trial:
    """One point of a sweep: its axis values (seed included), validated config and MLflow run name."""

    axes: dict
    config: config.TrialConfig
    name: str

    @property
    def key(self) -> tuple[str, int]:
        """(config hash without the seed, seed): what identifies a finished trial on resume."""
        return config.config_hash(self.config), self.config.seed


# Parts of a sweep file that only the analysis and the reader use: not part of the invocation hash.
ANALYSIS_ONLY = {"claims", "description", "profiles"}


@dataclass(frozen=True)
class Sweep:
    """A sweep file with its profile and overrides applied; everything needed to run it."""

    spec: SweepSpec
    path: str
    source: str
    profile: str | None = None
    overrides: tuple[str, ...] = ()
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def invocation(self) -> str:
        """Hash of what the resolved sweep runs: the same command gives the same value, so it can resume.

        Its claims, description and profiles (the chosen profile is already
        applied) are left out: editing them runs nothing again; the sweep
        command then stores the new text on the invocation's parent run
        (:func:`ib_sweeps.sweep.ledger.restate`) and the analysis judges it.
        """
        return self._hash(ANALYSIS_ONLY)

    def _hash(self, left_out: set[str]) -> str:
        unset = {"max_trials"} if self.spec.max_trials is None else set()  # hashes of older sweeps stay as they were
        # How trials are packed into arrays changes no result: a sweep resumes whatever array_size it runs with.
        exclude = {**dict.fromkeys(unset | left_out, True), "resources": {"array_size"}}
        text = json.dumps(self.spec.model_dump(mode="json", exclude=exclude), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def trial_for(self, axes: dict) -> Trial:
        """The trial at ``axes`` (dotted key -> value, ``seed`` included); ``ConfigError`` if invalid."""
        raw = dict(self.spec.base)
        for key, value in axes.items():
            raw = yamlio.set_path(raw, key, value, config.OVERRIDE_SEEDS)
        return Trial(dict(axes), config.validate(raw), run_name(axes))

    def trials(self) -> list[Trial]:
        """Every grid point x seed (grid sweeps), in a stable order."""
        if "trials" not in self._cache:
            axes = self.spec.axes()
            points = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
            self._cache["trials"] = [self.trial_for(p) for p in points]
        return self._cache["trials"]

    def missing_data(self) -> list[str]:
        """Why data files its trials need cannot be read on this machine (one line each); empty if all are here."""
        if self.spec.search is None:
            configs = [t.config for t in self.trials()]
        else:
            bounds = [{k: v} for k, d in self.spec.search.params.items() for v in d.bounds()]
            configs = [self.trial_for(axes).config for axes in [{}, *bounds]]
        return sorted({m for c in {c.data for c in configs} if (m := data.missing(c))})


def run_name(axes: dict) -> str:
    """``activation=tanh,seed=0``: each axis by its last key segment."""
    return ",".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in axes.items())


def _short(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def load(name_or_path: str, profile: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Sweep:
    """Read and fully check a sweep; raise ``ConfigError``/``ValueError`` before any work starts."""
    path = find(name_or_path)
    what = f"sweep file {path}"
    source = yamlio.read_text(path, "sweep file")
    raw = yamlio.loads(source, what, expect=("sweep file", SWEEP_FIELDS))
    if not isinstance(raw, dict):
        raise ValueError(f"{what} must hold a mapping of keys to values, not {type(raw).__name__}")
    spec = _validate(raw, what, sized=False)  # for its profiles; the resolved sweep is sized below
    if profile is not None:
        if profile not in spec.profiles:
            raise ValueError(f"{what}: unknown profile {profile!r}; allowed: {', '.join(spec.profiles)}")
        for key, value in spec.profiles[profile].items():
            raw = _apply(raw, key, value, f"profiles.{profile}")
        what += f" with profile {profile!r}"
    for item in overrides:
        key, value = yamlio.parse_assignment(item)
        raw = _apply(raw, key, value, "--set")
    if overrides:
        what += f" and overrides {list(overrides)}"
    spec = _validate(raw, what)
    sweep = Sweep(spec, str(path), source, profile, tuple(overrides))
    _check_trials(sweep, what)
    _check_claims(sweep, what)
    return sweep


def _check_claims(sweep: Sweep, what: str) -> None:
    """Claims may only name this sweep's axes, axis values (in ``where`` and a kind's own fields) and estimators."""
    spec = sweep.spec
    if not spec.claims:
        return
    if spec.grid is not None:
        axes: dict = dict(spec.grid)
        configs = [t.config for t in sweep.trials()]
    else:
        axes = {k: (d.values if d.kind == "choice" else None) for k, d in spec.search.params.items()}
        configs = [sweep.trial_for({}).config]
    keys = {e.key for cfg in configs for e in cfg.estimators}
    problems = claims.problems(spec.claims, axes, keys)
    for i, claim in enumerate(spec.claims):  # axis values a kind names beyond ``where`` (stable_across's values)
        problems += [(f"claims[{i}].{key}", message) for key, message in claim.value_problems(axes)]
    if problems:
        raise config.ConfigError(problems, what)


def invocation_of(resolved: dict) -> str | None:
    """The :attr:`Sweep.invocation` of a resolved sweep as a parent run stores it (``resolved_sweep.yaml``), or
    None if it no longer validates. Parent runs written before claims, description and profiles were left out
    of the hash (until 2026-11-29) are tagged with another value; this finds them."""
    not_hashed = {"description": "-", "profiles": {"quick": {}}, "claims": []}  # valid stand-ins
    raw = {k: v for k, v in resolved.items() if k not in ANALYSIS_ONLY} | not_hashed
    try:
        return Sweep(_validate(raw, "stored sweep", sized=False), "", "").invocation
    except config.ConfigError:
        return None


def _validate(raw: dict, what: str, sized: bool = True) -> SweepSpec:
    try:
        return SweepSpec.model_validate(raw, context={"sized": sized})
    except ValidationError as err:
        raise config.ConfigError(config.problems(err, SweepSpec), what) from None


def _apply(raw: dict, key: str, value, origin: str) -> dict:
    """Set ``key`` (a sweep key, or else a trial-config key under ``base``) in a copy of ``raw``."""
    head = key.split(".", 1)[0]
    if head == "grid" and "." in key:
        return {**raw, "grid": {**(raw.get("grid") or {}), key.split(".", 1)[1]: value}}
    if head in SWEEP_FIELDS:
        return yamlio.set_path(raw, key, value)
    if key == SEED_AXIS:
        raise ValueError(f"{origin}: {key!r} is set per trial by 'seeds'; use seeds=N or seeds=[...]")
    axes = set(raw.get("grid") or {}) | set(((raw.get("search") or {}).get("params")) or {})
    clash = [a for a in axes if key == a or key.startswith(a + ".") or a.startswith(key + ".")]
    if clash:
        raise ValueError(f"{origin}: {key!r} is a grid axis of this sweep ({clash[0]}); set grid.{clash[0]}=[...]")
    return {**raw, "base": yamlio.set_path(raw.get("base") or {}, key, value, config.OVERRIDE_SEEDS)}


def _objective_problems(spec: SweepSpec, base: config.TrialConfig) -> list[tuple[str, str]]:
    metric = spec.search.objective.metric
    keys = [e.key for e in base.estimators]
    parts = metric.split("/")
    if not summary.is_known_metric(metric):
        allowed = f"<{'|'.join(summary.STATS)}>/<estimator>/<layer_k|last_hidden>, or {', '.join(summary.HISTORY)}"
        return [("search.objective.metric", f"unknown metric {metric!r}; allowed: {allowed}")]
    if len(parts) == 3 and parts[1] not in keys:
        return [("search.objective.metric", f"estimator {parts[1]!r} is not in base.estimators; allowed: {keys}")]
    return []


def _check_trials(sweep: Sweep, what: str) -> None:
    """Base, each axis value alone, then every trial config must validate; all problems in one error."""
    spec, problems = sweep.spec, []

    def check(label: str, axes: dict) -> Trial | None:
        try:
            return sweep.trial_for(axes)
        except config.ConfigError as err:
            problems.extend((f"{label}: {key}" if key else label, msg) for key, msg in err.problems)
        except ValueError as err:
            problems.append((label, str(err)))
        return None

    if check("base", {}) is None:
        raise config.ConfigError(problems, what)
    if spec.search is not None:
        problems += _objective_problems(spec, sweep.trial_for({}).config)
    singles = {**(spec.grid or {}), **({k: d.bounds() for k, d in spec.search.params.items()} if spec.search else {})}
    section = "grid" if spec.grid is not None else "search.params"
    for axis, values in singles.items():
        for i, value in enumerate(values):
            check(f"{section}.{axis}[{i}] = {value!r}", {axis: value})
    if problems:
        raise config.ConfigError(problems[: 3 * _MAX_REPORTED], what)
    if spec.grid is not None:
        axes, trials = spec.axes(), []
        for values in itertools.product(*axes.values()):
            point = dict(zip(axes, values, strict=True))
            trials.append(check(f"grid point {run_name(point)}", point))
            if len(problems) >= _MAX_REPORTED:
                break
        if problems:
            raise config.ConfigError(problems, what)
        sweep._cache["trials"] = trials  # checked once; :meth:`Sweep.trials` reuses them
