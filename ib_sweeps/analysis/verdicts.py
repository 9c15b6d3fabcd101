"""Judge a sweep's claims: one :class:`Verdict` per claim, with the numbers and trials behind it.

This module reads MLflow (the sweep as it ran, its trace) and hands the
compression tables to the claims; the rule of each kind lives in its own file
under :mod:`ib_sweeps.claims`. A verdict is ``supported``, ``refuted`` or
``inconclusive``; claims over several layers are refuted when one layer refutes
them and supported when all support them.
"""

from __future__ import annotations

import tempfile

from ib_sweeps.analysis.source import Source, locate
from ib_sweeps.analysis.stats import compression_table
from ib_sweeps.analysis.tables import load_trace
from ib_sweeps.claims import parse
from ib_sweeps.claims.base import INCONCLUSIVE, REFUTED, SUPPORTED, Verdict
from ib_sweeps.claims.base import judge as judge_parsed

__all__ = ["INCONCLUSIVE", "REFUTED", "SUPPORTED", "Verdict", "evaluate_claims", "judge", "verdict_table"]


def evaluate_claims(sweep: str | Source, tracking_uri: str | None = None, claims=None, trace=None) -> list[Verdict]:
    """One verdict per claim (the sweep file's ``claims:`` unless ``claims`` is given).

    ``claims``: a list of claim dicts (as in a sweep file) or validated claims;
    ``trace``: a :func:`load_trace` frame to reuse (default: read it).
    """
    src = locate(sweep, tracking_uri)
    spec = resolved_sweep(src)
    raw = spec.get("claims", []) if claims is None else claims
    return judge(raw, load_trace(src) if trace is None else trace, default_estimator(spec))


def judge(raw_claims, trace, default: str) -> list[Verdict]:
    """Verdicts of ``raw_claims`` (dicts or validated claims) on a :func:`load_trace` frame.

    ``default``: the estimator of claims that name none. Each compression table
    (one per distinct pair of thresholds) is computed once.
    """
    tables: dict = {}

    def table_for(thresholds: tuple[float, float]):
        if thresholds not in tables:
            tables[thresholds] = compression_table(trace, *thresholds)
        return tables[thresholds]

    return judge_parsed(parse(raw_claims), table_for, default)


def verdict_table(verdicts: list[Verdict]):
    """One row per verdict: claim title, kind, verdict, reason, number of trials (pandas DataFrame)."""
    import pandas as pd

    rows = [
        {"claim": v.title, "kind": v.kind, "verdict": v.verdict, "reason": v.reason, "trials": len(v.trials)}
        for v in verdicts
    ]
    return pd.DataFrame(rows, columns=["claim", "kind", "verdict", "reason", "trials"])


def resolved_sweep(src: Source) -> dict:
    """The sweep as it ran (profile and overrides applied), from the parent run's ``resolved_sweep.yaml``.

    Downloaded with a client bound to the source's tracking URI (no global
    MLflow state or environment variable is touched).
    """
    import yaml
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = MlflowClient(src.uri).download_artifacts(src.parent_run_id, "resolved_sweep.yaml", dst_path=tmp)
            with open(path) as fh:
                return yaml.safe_load(fh) or {}
    except (OSError, MlflowException) as err:
        raise LookupError(f"parent run {src.parent_run_id} has no resolved_sweep.yaml ({err})") from None


def default_estimator(spec: dict) -> str:
    """Metric key of the sweep's first estimator (label, else method; the trial default is binning)."""
    ests = (spec.get("base") or {}).get("estimators") or [{}]
    first = ests[0] if isinstance(ests[0], dict) else {}
    return first.get("label") or first.get("method") or "binning"
