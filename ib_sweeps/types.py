"""Strict scalar types shared by configs and estimator parameters.

YAML ``"5"`` is not an int, ``true`` is not a number, ``2.0`` is not a count:
each is rejected with a message naming the key instead of being coerced.
Floats are finite: YAML's ``.inf``, ``.nan`` and ``1e400`` (which parses to
inf) are rejected. Counts that size arrays or loops are capped (:data:`MAX_EPOCHS`,
:data:`MAX_WIDTH`, :data:`MAX_LAYERS`), so none overflows or allocates for
minutes before failing; memory is checked on the whole config
(:func:`ib_sweeps.config.footprint`).
"""

import re
from typing import Annotated

from pydantic import ConfigDict, Field, PlainValidator, Strict

# Longest training run (epochs) and largest epoch-count parameter of a schedule; 8000 is the default.
MAX_EPOCHS = 10_000_000
# Widest layer (units or filters) and most layers of a model: TensorFlow sizes are int32.
MAX_WIDTH = 10_000_000
MAX_LAYERS = 1000
# Largest seed: numpy, MLflow and Ray all take it as a 64-bit integer.
MAX_SEED = 2**63 - 1

Int = Annotated[int, Strict()]
PositiveInt = Annotated[int, Strict(), Field(gt=0)]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PositiveFloat = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
Str = Annotated[str, Strict()]
EpochCount = Annotated[int, Strict(), Field(gt=0, le=MAX_EPOCHS)]
Seed = Annotated[int, Strict(), Field(ge=0, le=MAX_SEED)]
LABEL_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}"


def _label(v):
    if isinstance(v, str) and re.fullmatch(LABEL_PATTERN, v):
        return v
    raise ValueError(
        f"got {v!r}; allowed: 1 to 100 letters, digits, '_', '.' or '-', not starting with '.' or '-' "
        "(it becomes part of the metric keys ixt/<label>/<layer>, which MLflow restricts)"
    )


# An estimator's metric-key segment: MLflow's metric-key characters without '/', and never '.' or '..'.
Label = Annotated[str, PlainValidator(_label)]

# Every config-like model: unknown keys are errors, validated objects are frozen.
FROZEN = ConfigDict(extra="forbid", frozen=True)
