"""Trial configuration: a validated, frozen tree of pydantic models.

YAML file and ``--set key=value`` overrides -> raw dict -> :func:`validate`
-> :class:`TrialConfig`. Unknown keys, wrong types and out-of-range values are
all reported at once in one :class:`ConfigError`, each naming the dotted key,
the bad value and what is allowed. The config that ran is logged verbatim.

Bad input is refused here, before any run exists: floats must be finite,
counts are capped (:mod:`ib_sweeps.types`), estimator labels are metric-key
segments, and a config whose memory estimate (:func:`footprint`, a lower bound
in bytes) exceeds this machine's physical memory is an error stating both.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import typing
from typing import Annotated, Literal, Union

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationError,
    model_validator,
)

from ib_sweeps import data, estimators, models, schedules
from ib_sweeps.claims import CLAIMS
from ib_sweeps.pooled import PooledConfig
from ib_sweeps.types import (
    FROZEN,
    EpochCount,
    Float,
    Int,
    PositiveFloat,
    Seed,
    Str,
)

OPTIMIZERS = ("sgd", "adam", "adadelta")
MAX_ESTIMATORS = 100


class ConfigError(ValueError):
    """Invalid configuration; ``problems`` lists (dotted key, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]], what: str = "config"):
        self.problems = problems
        lines = [f"  - {key}: {msg}" if key else f"  - {msg}" for key, msg in problems]
        super().__init__(f"invalid {what}:\n" + "\n".join(lines))


def _choice(allowed, what: str):
    def check(v):
        if isinstance(v, str) and v in allowed:
            return v
        raise ValueError(f"unknown {what} {v!r}; allowed: {', '.join(allowed)}")

    return PlainValidator(check)


def _batch_size(v):
    if v == "full" or (type(v) is int and v > 0):
        return v
    raise ValueError(f"got {v!r}; allowed: a positive integer or 'full' (full-batch gradient descent)")


def _flag(v):
    if type(v) is bool:
        return v
    raise ValueError(f"got {v!r}; allowed: true or false")


def _tagged(registry: dict, tag: str, default: str | None = None):
    """Union of the registry's models, told apart by ``tag`` (``default`` when the key is absent)."""
    classes = tuple(registry.values())
    if len(classes) == 1:
        return classes[0]
    if default is None:
        return Annotated[Union[classes], Field(discriminator=tag)]  # noqa: UP007

    def pick(v):
        return v.get(tag, default) if isinstance(v, dict) else getattr(v, tag, None)

    pick.__name__ = tag  # pydantic names a callable discriminator after the function: messages then name the key
    members = tuple(Annotated[cls, Tag(name)] for name, cls in registry.items())
    return Annotated[Union[members], Discriminator(pick)]  # noqa: UP007


def _training_size(v):
    if (type(v) is int and v >= 2) or (type(v) is float and 0 < v <= 1):
        return v
    raise ValueError(
        f"got {v!r}; allowed: a count of training examples (an integer >= 2) or a fraction 0 < f <= 1.0 "
        "of the training split (1.0: all of it)"
    )


class DataConfig(BaseModel):
    """Which data set, how it is split, what is trained on, and which inputs the information is measured on.

    Keys a data set does not use are errors (``train_fraction`` and ``split``
    with a published split, ``path`` without files). Values that depend on the
    data set (``train_fraction``, ``split``, ``measure_size``) are filled in
    when left out or null, so the config that ran states them. Keys left null
    are not dumped (:func:`to_dict`), so hashes of 12-bit configs stay as they were.
    """

    model_config = FROZEN
    name: Annotated[str, _choice(tuple(data.DATASETS), "data set")] = "tishby12"
    path: Str | None = None
    train_fraction: Annotated[Float, Field(gt=0, lt=1)] | None = None
    split: Literal["shuffled", "reference"] | None = None
    training_size: Annotated[int | float, PlainValidator(_training_size)] | None = None
    random_labels: Annotated[Float, Field(gt=0, le=1)] | None = None
    measure_on: Literal["all", "train", "test"] = "all"
    measure_size: Annotated[Int, Field(ge=2)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, raw):
        name = raw.get("name", "tishby12") if isinstance(raw, dict) else None
        if isinstance(name, str) and name in data.DATASETS:
            filled = {k: v for k, v in data.DATASETS[name].defaults().items() if raw.get(k) is None}
            return {**raw, **filled}
        return raw

    @model_validator(mode="after")
    def _applies(self):
        source = data.DATASETS[self.name]
        if source.fixed_split:
            fixed = [n for n, s in data.DATASETS.items() if s.fixed_split]
            split_sets = ", ".join(n for n in data.DATASETS if n not in fixed)
            for key in ("train_fraction", "split"):
                if getattr(self, key) is not None:
                    raise ValueError(
                        f"{key}: got {getattr(self, key)!r}, but {self.name} has a published train/test split; "
                        f"allowed only with {split_sets} (use data.training_size to train on fewer examples)"
                    )
        if self.path is not None and source.files is None:
            with_files = ", ".join(n for n, s in data.DATASETS.items() if s.files is not None)
            raise ValueError(
                f"path: got {self.path!r}, but {self.name} is not read from a file; allowed with {with_files}"
            )
        if type(self.training_size) is int and source.n_examples is not None:
            n_train = round(self.train_fraction * source.n_examples)
            if self.training_size > n_train:
                raise ValueError(
                    f"training_size: got {self.training_size}, but the training split of {self.name} has {n_train} "
                    f"examples (train_fraction {self.train_fraction} of {source.n_examples}); allowed: a count "
                    f"2 .. {n_train} or a fraction 0 < f <= 1.0"
                )
        return self


# Each model kind's config class lives with the kind (:mod:`ib_sweeps.models`).
ModelConfig, CNNConfig = models.ModelConfig, models.CNNConfig
MODELS = models.CONFIGS
ModelSpec = _tagged(MODELS, "kind", default=models.DEFAULT)


class TrainConfig(BaseModel):
    """Optimizer and training length; ``batch_size: full`` is full-batch gradient descent.

    ``gradient_stats``: per-layer mean and standard deviation of the minibatch
    gradients over every epoch, their norms and SNR (:mod:`ib_sweeps.gradients`).
    """

    model_config = FROZEN
    optimizer: Annotated[str, _choice(OPTIMIZERS, "optimizer")] = "adam"
    learning_rate: PositiveFloat = 4e-4
    momentum: Annotated[Float, Field(ge=0, lt=1)] = 0.0
    batch_size: Annotated[int | str, PlainValidator(_batch_size)] = 512
    epochs: EpochCount = 8000
    gradient_stats: Annotated[bool, PlainValidator(_flag)] = True

    @model_validator(mode="after")
    def _momentum_sgd(self):
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(f"momentum: only used with optimizer sgd, not {self.optimizer!r}")
        return self


ScheduleSpec = _tagged(schedules.REGISTRY, "kind")
EstimatorSpec = _tagged(estimators.REGISTRY, "method", default="binning")
DEFAULT_ESTIMATORS = (estimators.get("binning"),)


class TrialConfig(BaseModel):
    """Everything that defines one trial. Defaults: the 12-bit tanh net of Shwartz-Ziv & Tishby."""

    model_config = FROZEN
    seed: Seed = 0
    data: DataConfig = DataConfig()
    model: ModelSpec = ModelConfig()
    train: TrainConfig = TrainConfig()
    schedule: ScheduleSpec = schedules.DeltaExact()
    estimators: Annotated[tuple[EstimatorSpec, ...], Field(min_length=1, max_length=MAX_ESTIMATORS)] = (
        DEFAULT_ESTIMATORS
    )
    pooled: PooledConfig | None = None  # as-if-random estimates over windows of epochs (off by default)

    @model_validator(mode="after")
    def _cross_checks(self):
        models.of(self.model).check_data(self.model, self.data.name)
        keys = [e.key for e in self.estimators]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"estimators: metric keys {dup} repeat; give each estimator a distinct 'label'")
        primary = self.schedule.primary_estimator()
        if primary is not None and primary not in keys:
            raise ValueError(f"schedule: primary {primary!r} is not an estimator; allowed: {', '.join(keys)}")
        late = [e for e in self.schedule.listed_epochs() if e > self.train.epochs]
        if late:
            raise ValueError(f"schedule: epochs {late} are beyond train.epochs = {self.train.epochs}")
        if self.pooled is not None:
            late = [e for e in self.pooled.epochs or () if e > self.train.epochs]
            if late:
                raise ValueError(
                    f"pooled: epochs {late} are beyond train.epochs = {self.train.epochs}; "
                    f"allowed: window end epochs <= {self.train.epochs}"
                )
            if self.pooled.window > self.train.epochs + 1:
                raise ValueError(
                    f"pooled: window {self.pooled.window} is longer than the run (epochs 0..{self.train.epochs})"
                )
            unknown = [k for k in self.pooled.estimators or () if k not in keys]
            if unknown:
                raise ValueError(
                    f"pooled: estimators {unknown} are not estimators of this trial; allowed: {', '.join(keys)}"
                )
        _check_memory(self)
        return self

    @model_validator(mode="before")
    @classmethod
    def _estimators_from_the_network(cls, raw):
        """Estimator parameters taken from the network (``noisy_sp`` without ``sigma``: the network's noise)."""
        model, ests = (raw.get("model"), raw.get("estimators")) if isinstance(raw, dict) else (None, None)
        if not isinstance(ests, list | tuple):
            return raw
        methods = [e.get("method", "binning") if isinstance(e, dict) else None for e in ests]
        classes = [estimators.REGISTRY.get(m) if isinstance(m, str) else None for m in methods]
        filled = [c.from_network(e, model) if c else e for e, c in zip(ests, classes, strict=True)]
        return {**raw, "estimators": filled} if any(a is not b for a, b in zip(filled, ests, strict=True)) else raw

    @model_validator(mode="after")
    def _estimators_fit_the_network(self):
        """What each estimator needs of the network (``noisy_sp``: noise; ``plugin``: quantized activity)."""
        for i, est in enumerate(self.estimators):
            est.check_network(self.model, f"estimators[{i}]")
        pooled = [self.estimators[i] for i in self.pooled_estimators()]
        sampled = [e for e in pooled if e.uses_noisy_samples]
        if self.model.noise_std and sampled:
            raise ValueError(
                f"pooled: estimators {[e.key for e in sampled]} ({', '.join(sorted({e.method for e in sampled}))}) "
                "would pool one noisy draw per epoch and add the noise "
                "again; allowed: list the other estimators in pooled.estimators"
            )
        return self

    def pooled_estimators(self) -> list[int]:
        """Indices of the estimators that make pooled estimates (none without a ``pooled`` section)."""
        if self.pooled is None:
            return []
        keys = [e.key for e in self.estimators]
        return [keys.index(k) for k in self.pooled.estimators] if self.pooled.estimators else list(range(len(keys)))

    def primary_estimator(self) -> int:
        """Index of the estimator whose estimates drive an adaptive schedule (default: the first)."""
        primary = self.schedule.primary_estimator()
        return [e.key for e in self.estimators].index(primary) if primary else 0


# Examples of a data set whose count is known only once its files are read (MNIST, Fashion-MNIST: 60 000 + 10 000).
_FILE_SET_EXAMPLES, _FILE_SET_TRAIN = 70_000, 60_000


def measured_inputs(cfg: DataConfig) -> int:
    """How many inputs a trial measures (file-backed sets: as if of the standard 70 000 examples)."""
    n = data.DATASETS[cfg.name].n_examples or _FILE_SET_EXAMPLES
    n_train = round(cfg.train_fraction * n) if cfg.train_fraction is not None else _FILE_SET_TRAIN
    used = n_train
    if cfg.training_size is not None:
        used = cfg.training_size if type(cfg.training_size) is int else max(1, round(cfg.training_size * n_train))
    pool = {"all": n, "train": used, "test": n - n_train}[cfg.measure_on]
    distinct = data.DATASETS[cfg.name].distinct_inputs  # a set repeating a few inputs measures each once
    pool = pool if distinct is None else min(pool, distinct)
    return min(pool, cfg.measure_size) if cfg.measure_size is not None else pool


def footprint(cfg: TrialConfig) -> dict[str, int]:
    """Bytes a trial certainly holds, by part: a lower bound (estimators' scratch memory comes on top).

    ``activity``: one measured epoch's activity, float32 (n_inputs, units of all
    measured layers), kept for W epochs of a pooled window and n_cond times more
    for ``noisy_sp``, plus one training batch's; ``trace``: per epoch the history
    (float64 (epochs + 1, 4) in the trace, float32 in the core) and gradient
    statistics (float32 (epochs + 1, n_layers, 3) and (.., 2)), and two float64
    values per estimator, layer and measured epoch; ``snapshots``: the weight
    snapshots ``delta_exact`` keeps for a gap (float32, within ``snapshot_mb``);
    ``weights``: float32 weights, gradients and optimizer slots. A CNN
    (``model.kind: cnn``) adds what it holds as a trial-array replica
    (:mod:`ib_sweeps.train.array_cnn`): ``orders``, its minibatch orders of every
    epoch, int32 (epochs, n_train); ``im2col``, one minibatch's im2col patches,
    float32 (batch, height, width, k * k * c_in) per conv layer (all kept for the
    gradient; a one-pass evaluation's come on top). Sizes use the data set's
    counts, and two classes (the fewest) for the output layer.
    """
    shape, n_classes = data.DATASETS[cfg.data.name].input_shape or (1,), 2
    n_params = models.count_params(cfg.model, shape, n_classes)
    floats = models.activity_floats(cfg.model, shape, n_classes)
    n_layers = models.n_layers(cfg.model)
    rows = measured_inputs(cfg.data)
    kept = 1 + (cfg.pooled.window if cfg.pooled else 0) + max(e.samples_per_input for e in cfg.estimators)
    n_train = measured_inputs(cfg.data.model_copy(update={"measure_on": "train", "measure_size": None}))
    batch = n_train if cfg.train.batch_size == "full" else min(cfg.train.batch_size, n_train)
    epochs = cfg.train.epochs + 1
    per_epoch = 48 + (20 * n_layers if cfg.train.gradient_stats else 0)
    measured = cfg.schedule.max_measurements(cfg.train.epochs) * len(cfg.estimators) * n_layers * 16
    snapshots = 0
    limit = cfg.schedule.snapshot_limit_mb()
    if limit is not None:  # delta_exact: as trial._snapshot_capacity
        capacity = max(1, min(cfg.train.epochs, int(limit * 2**20 // (4 * n_params))))
        snapshots = (capacity + 1) * 4 * n_params
    slots = {"sgd": 1 if cfg.train.momentum else 0}.get(cfg.train.optimizer, 2)
    parts = {
        "activity": (rows * kept + batch) * floats * 4,
        "trace": epochs * per_epoch + measured,
        "snapshots": snapshots,
        "weights": n_params * 4 * (2 + slots),
    }
    if cfg.model.kind == "cnn":
        parts["orders"] = cfg.train.epochs * n_train * 4
        parts["im2col"] = batch * _im2col_floats(cfg.model, shape) * 4
    return parts


def _im2col_floats(model, image: tuple[int, ...]) -> int:
    """Floats of one input's im2col patches, all conv layers: per layer its output's (height, width) x k * k * c_in."""
    channels, floats = image[-1], 0
    for height, width, filters in models.cnn_shapes(model, image)[: len(model.conv)]:
        floats += height * width * model.kernel**2 * channels
        channels = filters
    return floats


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(cfg: TrialConfig) -> None:
    parts, total = footprint(cfg), physical_memory()
    need = sum(parts.values())
    if total is None or need <= total:
        return
    model_key = models.of(cfg.model).width_key
    keys = {"activity": model_key, "trace": "train.epochs", "snapshots": "schedule.snapshot_mb", "weights": model_key,
            "orders": "train.epochs", "im2col": "train.batch_size"}  # fmt: skip
    names = {"activity": "activity", "trace": "trace", "snapshots": "weight snapshots", "weights": "weights",
             "orders": "minibatch orders", "im2col": "im2col patches"}  # fmt: skip
    biggest = max(parts, key=parts.get)
    detail = ", ".join(f"{names[k]} {_size(v)}" for k, v in parts.items())
    raise ValueError(
        f"{keys[biggest]}: the trial needs at least {_size(need)} of memory, more than this machine's "
        f"{_size(total)} ({detail}; {measured_inputs(cfg.data)} measured inputs, train.epochs "
        f"{cfg.train.epochs}); allowed: a config that fits (fewer or narrower layers, a smaller data.measure_size, "
        "fewer train.epochs, a smaller schedule.snapshot_mb)"
    )


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# What a section missing from a config file holds before ``--set`` edits it.
OVERRIDE_SEEDS = {"schedule": {"kind": "delta_exact"}, "estimators": [{"method": "binning"}]}

_TAGS = set(schedules.REGISTRY) | set(estimators.REGISTRY) | set(CLAIMS) | set(MODELS)


def _key(loc) -> str:
    parts: list[str] = []
    for i, p in enumerate(loc):
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in _TAGS and i > 0 and (loc[i - 1] in ("schedule", "model") or isinstance(loc[i - 1], int)):
            continue  # pydantic's union tag, not a config key
        else:
            parts.append(("." if parts else "") + p)
    return "".join(parts)


def _model_at(loc, root: type[BaseModel]) -> type[BaseModel] | None:
    node: type[BaseModel] | None = root
    for p in loc:
        if p in _TAGS:
            node = schedules.REGISTRY.get(p) or estimators.REGISTRY.get(p) or CLAIMS.get(p) or MODELS.get(p)
        elif isinstance(p, int) and len(estimators.REGISTRY) == 1:  # no union tag in the path
            node = next(iter(estimators.REGISTRY.values()))
        elif isinstance(p, str) and node is not None:
            ann = node.model_fields[p].annotation if p in node.model_fields else None
            args = typing.get_args(ann)
            if len(args) == 2 and type(None) in args:  # an optional section, X | None
                ann = next(a for a in args if a is not type(None))
            node = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return node


def _problem(err: dict, root: type[BaseModel]) -> tuple[str, str]:
    loc, kind = err["loc"], err["type"]
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1], root)
        fields = parent.model_fields.items() if parent else ()
        allowed = ", ".join(f.alias or name for name, f in fields if name not in ("method", "kind")) or "(none)"
        return _key(loc[:-1]), f"unknown key {loc[-1]!r}; allowed keys: {allowed}"
    if kind == "union_tag_invalid":
        tag = re.sub(r"^(\w+)\(\)$", r"'\1'", err["ctx"]["discriminator"])  # a callable's: "method()"
        return _key(loc), f"unknown {tag} {err['ctx']['tag']!r}; allowed: {err['ctx']['expected_tags']}"
    if kind == "union_tag_not_found":
        return _key(loc), f"missing key {err['ctx']['discriminator']}"
    if kind == "value_error":
        field = re.match(r"^(\w+): ", msg)
        parent = _model_at(loc, root)
        if field and parent is not None and field[1] in parent.model_fields:  # a model-level check
            return _key((*loc, field[1])), msg[field.end() :]
        return _key(loc), msg
    if kind == "missing":
        return _key(loc), msg
    got = repr(err["input"])
    return _key(loc), f"{msg}; got {got if len(got) <= 200 else got[:200] + ' ...'}"  # a long list: its start


def problems(err: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
    """(dotted key, message naming the bad value and what is allowed) for each error of ``root``."""
    errors = err.errors()
    # A list whose items failed is also reported "too short"; that second message only confuses.
    failed = {e["loc"][:i] for e in errors for i in range(1, len(e["loc"]))}
    return [_problem(e, root) for e in errors if not (e["type"] == "too_short" and e["loc"] in failed)]


def validate(raw: dict | None) -> TrialConfig:
    """Validate a raw config mapping; raise :class:`ConfigError` listing every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([("", f"a config must be a mapping of keys to values; got {type(raw).__name__}")])
    try:
        return TrialConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(problems(err, TrialConfig)) from None


def to_dict(cfg: TrialConfig) -> dict:
    """Plain JSON-compatible dict of the config (round-trips through :func:`validate`).

    An absent optional section (``pooled``), data keys left null and
    ``model.kind: mlp`` are left out, so params and hashes of configs without
    them do not change.
    """
    exclude: dict = {"data": {key for key, value in cfg.data if value is None}}
    if cfg.model.kind == models.DEFAULT:
        exclude["model"] = {"kind"}
    if cfg.pooled is None:
        exclude["pooled"] = True
    declared = {"noise_std": cfg.model.noise_std, "quantize_levels": cfg.model.quantize_levels}
    absent = {k for k, v in declared.items() if v is None}
    exclude["model"] = exclude.get("model", set()) | absent  # left out when absent: hashes stay as they were
    return cfg.model_dump(mode="json", by_alias=True, exclude=exclude)


def flatten(cfg: TrialConfig) -> dict[str, str]:
    """Dotted key -> string value, for MLflow params (estimators keyed by their label)."""
    out: dict[str, str] = {}

    def walk(prefix, node):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = node if isinstance(node, str) else json.dumps(node)

    tree = to_dict(cfg)
    tree["estimators"] = {e.key: e.model_dump(mode="json", exclude={"label"}) for e in cfg.estimators}
    if "segments" in tree["schedule"]:  # a list of mappings reads better as one param
        tree["schedule"]["segments"] = json.dumps(tree["schedule"]["segments"])
    walk("", tree)
    return out


def config_hash(cfg: TrialConfig, *, with_seed: bool = False) -> str:
    """Short stable hash of the config; without the seed it groups replicates."""
    tree = to_dict(cfg)
    if not with_seed:
        tree.pop("seed")
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:12]
