"""``does_not_compress``: the layers do not compress in at least ``min_fraction`` of the trials.

The rule of :mod:`ib_sweeps.claims.compresses` with a trial counting when it does not compress.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from ib_sweeps.claims.compresses import Compresses


class DoesNotCompress(Compresses):
    kind: Literal["does_not_compress"]  # type: ignore[assignment]
    compressing: ClassVar[bool] = False

    def statement(self, estimator: str) -> str:
        verb = "does" if len(self.layers) == 1 else "do"
        return f"{self.layers_text()} {verb} not compress{self.where_text()} ({estimator})"
