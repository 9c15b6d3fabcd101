"""Conformance suite: every registered model kind honours the shared contract.

Each kind is taken with its config defaults, on every registered data set it
accepts that needs no files; shapes, parameter counts and seeds are checked
against the built Keras layers, and data sets it refuses must be refused with
a message that says what is allowed, by the kind and by config validation.
"""

import numpy as np
import pytest

from ib_sweeps import config, data, models
from ib_sweeps.models.base import ModelKind

KINDS = models.available()
IN_PACKAGE = [name for name, source in data.DATASETS.items() if source.files is None]  # readable on any machine


def default_config(kind: str):
    return models.get(kind).config.model_validate({"kind": kind})


def accepts(kind: str, dataset: str) -> bool:
    try:
        models.get(kind).check_data(default_config(kind), dataset)
    except ValueError:
        return False
    return True


PAIRS = [(kind, name) for kind in KINDS for name in IN_PACKAGE if accepts(kind, name)]


def loaded(dataset: str) -> data.Dataset:
    return data.load(config.DataConfig(name=dataset), np.random.default_rng(0))


def test_registry_lists_kinds():
    assert {"mlp", "cnn"} <= set(KINDS)
    assert sorted(models.REGISTRY) == KINDS == sorted(config.MODELS)
    for name, kind in models.REGISTRY.items():
        assert isinstance(kind, ModelKind) and kind.name == name and config.MODELS[name] is kind.config


def test_unknown_kind_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model kind 'rnn'; available: cnn, mlp"):
        models.get("rnn")
    with pytest.raises(config.ConfigError, match="unknown 'kind' 'rnn'; allowed: ") as err:
        config.validate({"model": {"kind": "rnn"}})
    assert all(f"'{kind}'" in str(err.value) for kind in KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_config_declares_the_shared_interface(kind):
    cfg = default_config(kind)
    assert cfg.kind == kind and isinstance(models.layer_activations(cfg), list)
    assert len(models.layer_activations(cfg)) == models.n_hidden(cfg)
    for attr in ("activation", "init", "init_std", "noise_std", "quantize_levels"):
        assert hasattr(cfg, attr), f"{kind} config does not declare {attr}"
    k = models.get(kind)
    assert isinstance(k.jit, bool) and isinstance(k.chunked_eval, bool) and k.width_key.startswith("model.")
    assert all(w > 0 for w in k.noise_widths(cfg)) and (cfg.noise_std is None or k.noise_widths(cfg))


@pytest.mark.parametrize("kind", KINDS)
def test_takes_at_least_one_data_set(kind):
    assert any(k == kind for k, _ in PAIRS), f"{kind} accepts none of {IN_PACKAGE}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dataset", list(data.DATASETS))
def test_data_it_cannot_take_is_refused_saying_what_is_allowed(kind, dataset):
    raw = {"model": {"kind": kind}, "data": {"name": dataset}}
    if accepts(kind, dataset):
        assert models.of(config.validate(raw).model) is models.get(kind)
        return
    with pytest.raises(ValueError, match="allowed"):
        models.get(kind).check_data(default_config(kind), dataset)
    with pytest.raises(config.ConfigError, match=f"model: .*{dataset}.*allowed"):
        config.validate(raw)


def forward(layers, x):
    """Each layer's output on ``x``, chained as the training core does (a Dense layer gets its input flat)."""
    import keras

    outs = []
    for layer in layers:
        if len(x.shape) > 2 and isinstance(layer, keras.layers.Dense):
            x = keras.ops.reshape(x, (x.shape[0], -1))
        x = layer(x)
        outs.append(np.asarray(x))
    return outs


@pytest.mark.usefixtures("tf_ready")
@pytest.mark.parametrize(("kind", "dataset"), PAIRS)
def test_builds_with_its_geometry_and_parameter_count(kind, dataset):
    cfg, d = default_config(kind), loaded(dataset)
    layers = models.build(cfg, d.input_shape, d.n_classes, seed=3)
    assert [layer.name for layer in layers] == [f"layer_{i + 1}" for i in range(len(layers))]
    assert len(layers) == models.n_layers(cfg) == len(models.shapes(cfg, d.input_shape)) + 1
    x = d.x_measure[:2].reshape(2, *models.input_shape(cfg, d.input_shape))
    outs = forward(layers, x)
    want = [*models.shapes(cfg, d.input_shape), (d.n_classes,)]
    assert [o.shape[1:] for o in outs] == want
    assert sum(int(np.prod(s)) for s in want) == models.activity_floats(cfg, d.input_shape, d.n_classes)
    assert sum(layer.count_params() for layer in layers) == models.count_params(cfg, d.input_shape, d.n_classes)


@pytest.mark.usefixtures("tf_ready")
@pytest.mark.parametrize(("kind", "dataset"), PAIRS)
def test_same_seed_same_weights(kind, dataset):
    cfg, d = default_config(kind), loaded(dataset)

    def weights(seed):
        return [v.numpy() for layer in models.build(cfg, d.input_shape, d.n_classes, seed) for v in layer.weights]

    one, again, other = weights(1), weights(1), weights(2)
    assert all(np.array_equal(a, b) for a, b in zip(one, again, strict=True))
    assert not np.array_equal(one[0], other[0])
