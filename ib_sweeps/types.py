"""Strict scalar types shared by configs and estimator parameters.

YAML ``"5"`` is not an int, ``true`` is not a number, ``2.0`` is not a count:
each is rejected with a message naming the key instead of being coerced.
"""

from typing import Annotated

from pydantic import ConfigDict, Field, Strict

Int = Annotated[int, Strict()]
PositiveInt = Annotated[int, Strict(), Field(gt=0)]
Float = Annotated[float, Strict()]
PositiveFloat = Annotated[float, Strict(), Field(gt=0)]
Str = Annotated[str, Strict()]

# Every config-like model: unknown keys are errors, validated objects are frozen.
FROZEN = ConfigDict(extra="forbid", frozen=True)
