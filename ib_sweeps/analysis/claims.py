"""Compatibility: the claim schema and registry moved to :mod:`ib_sweeps.claims` (below the sweep and config).

Kept so that ``ib_sweeps.analysis.claims`` and ``analysis.CLAIMS`` still import;
the documentation's generator reads this module's ``CLAIMS`` and docstring.
"""

from ib_sweeps import claims as _claims
from ib_sweeps.claims import CLAIMS, STATISTICS, Claim, problems, title

__doc__ = _claims.__doc__
__all__ = ["CLAIMS", "STATISTICS", "Claim", "problems", "title"]
