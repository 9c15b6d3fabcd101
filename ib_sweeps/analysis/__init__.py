"""Robustness analysis of a sweep: read its MLflow runs, compute per-trial statistics, judge its claims.

Reads MLflow only (runs, metric histories, artifacts); never imports
TensorFlow or Ray. Information is in bits everywhere. Public API::

    from ib_sweeps import analysis
    runs = analysis.load_runs("activations")           # one row per trial (child run)
    trace = analysis.load_trace("activations")         # one row per trial x epoch x layer x estimator
    table = analysis.compression_table(trace)          # one row per trial x layer x estimator
    verdicts = analysis.evaluate_claims("activations")  # one verdict per claim in the sweep file
    analysis.write_report("activations", "report/")    # HTML + markdown + JSON, logged on the parent run

Every loader takes the sweep as a sweep (experiment) name, an experiment id or
a parent run id, and ``tracking_uri=`` (default: ``$MLFLOW_TRACKING_URI``, else
``./mlflow.db``). A name reads one invocation: the latest run without a profile
(never a ``quick`` one when a full one exists; rules in
:mod:`ib_sweeps.analysis.source`), said on stderr. To read another::

    analysis.invocations("activations")                       # every invocation, newest first
    src = analysis.locate("activations", profile="quick")     # or invocation="3f2a9c1b"
    runs = analysis.load_runs(src)                            # every loader takes the located source
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_runs": "tables",
    "load_trace": "tables",
    "load_history": "tables",
    "locate": "source",
    "invocations": "source",
    "choose": "source",
    "compression_table": "stats",
    "evaluate_claims": "verdicts",
    "Verdict": "verdicts",
    "verdict_table": "verdicts",
    "write_report": "report",
    "condition_order": "report",
    "CLAIMS": "claims",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):  # lazy: importing the package does not import pandas, scipy or matplotlib
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ib_sweeps.analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ib_sweeps.analysis.{_EXPORTS[name]}"), name)
