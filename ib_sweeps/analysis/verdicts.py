"""Judge a sweep's claims: one :class:`Verdict` per claim, with the numbers and trials behind it.

Seeds are the unit of replication: every statistic is computed per trial
(one seed of one condition) and intervals are over trials. A verdict is
``supported``, ``refuted`` or ``inconclusive``; claims over several layers
are refuted when one layer refutes them and supported when all support them.
The rules of each kind are in :mod:`ib_sweeps.analysis.claims`.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field

import numpy as np

from ib_sweeps.analysis import claims as claims_mod
from ib_sweeps.analysis.intervals import bootstrap_mean, welch, wilson
from ib_sweeps.analysis.source import Source, locate
from ib_sweeps.analysis.stats import compression_table, layer_mask
from ib_sweeps.analysis.tables import load_trace

_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
SUPPORTED, REFUTED, INCONCLUSIVE = "supported", "refuted", "inconclusive"


@dataclass
class Verdict:
    """The outcome of one claim: ``verdict``, a one-line ``reason`` and the deciding ``numbers``."""

    index: int
    kind: str
    title: str
    verdict: str
    reason: str
    numbers: dict = field(default_factory=dict)
    trials: list = field(default_factory=list)  # run ids of the trials behind the verdict
    details: list = field(default_factory=list)  # per layer (and per axis value where relevant)
    claim: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=_plain))


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def evaluate_claims(sweep: str | Source, tracking_uri: str | None = None, claims=None, trace=None) -> list[Verdict]:
    """One verdict per claim (the sweep file's ``claims:`` unless ``claims`` is given).

    ``claims``: a list of claim dicts (as in a sweep file) or validated claims;
    ``trace``: a :func:`load_trace` frame to reuse (default: read it).
    """
    src = locate(sweep, tracking_uri)
    spec = resolved_sweep(src)
    raw = spec.get("claims", []) if claims is None else claims
    return judge(raw, load_trace(src) if trace is None else trace, default_estimator(spec))


def judge(claims, trace, default: str) -> list[Verdict]:
    """Verdicts of ``claims`` (dicts or validated claims) on a :func:`load_trace` frame.

    ``default``: the estimator of claims that name none.
    """
    from pydantic import TypeAdapter

    parsed = TypeAdapter(list[claims_mod.Claim]).validate_python(
        [c if isinstance(c, dict) else c.model_dump(by_alias=True) for c in claims]
    )
    tables: dict = {}
    out = []
    for i, claim in enumerate(parsed):
        thresholds = (getattr(claim, "threshold_bits", 0.1), getattr(claim, "threshold_rel", 0.05))
        if thresholds not in tables:
            tables[thresholds] = compression_table(trace, *thresholds)
        verdict = EVALUATORS[claim.kind](claim, tables[thresholds], default)
        verdict.index, verdict.title = i, claims_mod.title(claim, default)
        verdict.claim = claim.model_dump(mode="json", by_alias=True, exclude_defaults=True) | {"kind": claim.kind}
        out.append(verdict)
    return out


def verdict_table(verdicts: list[Verdict]):
    """One row per verdict: claim title, kind, verdict, reason, number of trials (pandas DataFrame)."""
    import pandas as pd

    rows = [
        {"claim": v.title, "kind": v.kind, "verdict": v.verdict, "reason": v.reason, "trials": len(v.trials)}
        for v in verdicts
    ]
    return pd.DataFrame(rows, columns=["claim", "kind", "verdict", "reason", "trials"])


def resolved_sweep(src: Source) -> dict:
    """The sweep as it ran (profile and overrides applied), from the parent run's ``resolved_sweep.yaml``."""
    import yaml
    from mlflow.artifacts import download_artifacts

    before = os.environ.get(_BAR)
    os.environ[_BAR] = "false"  # no progress bar for one small file
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = download_artifacts(
                run_id=src.parent_run_id, artifact_path="resolved_sweep.yaml", tracking_uri=src.uri, dst_path=tmp
            )
            with open(path) as fh:
                return yaml.safe_load(fh) or {}
    except OSError as err:
        raise LookupError(f"parent run {src.parent_run_id} has no resolved_sweep.yaml ({err})") from None
    except Exception as err:
        if type(err).__name__ != "MlflowException":
            raise
        raise LookupError(f"parent run {src.parent_run_id} has no resolved_sweep.yaml ({err})") from None
    finally:
        if before is None:
            os.environ.pop(_BAR, None)
        else:
            os.environ[_BAR] = before


def default_estimator(spec: dict) -> str:
    """Metric key of the sweep's first estimator (label, else method; the trial default is binning)."""
    ests = (spec.get("base") or {}).get("estimators") or [{}]
    first = ests[0] if isinstance(ests[0], dict) else {}
    return first.get("label") or first.get("method") or "binning"


# -- selection -------------------------------------------------------------------------------------


def _select(table, claim, estimator: str):
    rows = table[table["estimator"] == estimator]
    for key, value in claim.where.items():
        if key not in rows:
            return rows.iloc[0:0]
        rows = rows[rows[key].map(lambda v, want=value: _canon(v) == _canon(want))]
    return rows


def _layer_rows(rows, ref: str):
    return rows[layer_mask(rows, ref)]


def _canon(value) -> str:
    return json.dumps(value, sort_keys=True)


def _combine(layer_verdicts: list[str]) -> str:
    if REFUTED in layer_verdicts:
        return REFUTED
    if layer_verdicts and all(v == SUPPORTED for v in layer_verdicts):
        return SUPPORTED
    return INCONCLUSIVE


def _fmt(x: float, digits: int = 2) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


# -- kinds -----------------------------------------------------------------------------------------


def _fraction_rule(k: int, n: int, min_fraction: float, confidence: float) -> tuple[str, float, float]:
    lo, hi = wilson(k, n, confidence)
    if n == 0:
        return INCONCLUSIVE, lo, hi
    if lo >= min_fraction:
        return SUPPORTED, lo, hi
    if hi < min_fraction:
        return REFUTED, lo, hi
    return INCONCLUSIVE, lo, hi


def _compresses(claim, table, default) -> Verdict:
    want = claim.kind == "compresses"
    rows = _select(table, claim, claim.estimator or default)
    details, verdicts, trials = [], [], set()
    for ref in claim.layers:
        sub = _layer_rows(rows, ref)
        n, k = len(sub), int((sub["compresses"] == want).sum())
        verdict, lo, hi = _fraction_rule(k, n, claim.min_fraction, claim.confidence)
        trials.update(sub["run_id"])
        verdicts.append(verdict)
        details.append({
            "layer": ref, "verdict": verdict, "k": k, "n": n, "fraction": k / n if n else math.nan,
            "ci_low": lo, "ci_high": hi, "median_compression": float(sub["compression"].median()) if n else math.nan,
        })  # fmt: skip
    verdict = _combine(verdicts)
    what = "compress" if want else "do not compress"
    parts = [
        f"{d['layer']}: {d['k']}/{d['n']} seeds {what} ({_fmt(d['fraction'])}, "
        f"{claim.confidence:.0%} Wilson [{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}]; "
        f"median compression {_fmt(d['median_compression'])} bits)"
        for d in details
    ]
    reason = "; ".join(parts) + f"; needed >= {claim.min_fraction:g} with the whole interval"
    if not trials:
        reason = "no finished trial matches the claim's conditions and estimator"
    return Verdict(0, claim.kind, "", verdict, reason, _numbers(details), sorted(trials), details)


def _numbers(details: list[dict]) -> dict:
    return details[0] if len(details) == 1 else {"layers": details}


def _groups(sub, axis: str, statistic: str) -> dict:
    """Axis value (canonical JSON) -> (label, values over trials)."""
    out: dict = {}
    for value, stat in zip(sub[axis], sub[statistic], strict=True):
        key = _canon(value)
        label = value if isinstance(value, str) else key
        out.setdefault(key, (label, []))[1].append(float(stat))
    return {k: (label, np.asarray(v)) for k, (label, v) in out.items()}


def _pairwise(groups: dict, confidence: float) -> list[dict]:
    pairs = []
    for (_, (la, a)), (_, (lb, b)) in itertools.combinations(groups.items(), 2):
        diff, lo, hi = welch(a, b, confidence)
        pairs.append({"a": la, "b": lb, "diff": diff, "ci_low": lo, "ci_high": hi})
    return pairs


def _per_value(groups: dict, seed: int) -> list[dict]:
    out = []
    for label, values in groups.values():
        mean, lo, hi = bootstrap_mean(values, 0.95, seed)
        out.append({"value": label, "n": len(values), "mean": mean, "ci_low": lo, "ci_high": hi})
    return out


def _depends_on(claim, table, default) -> Verdict:
    from scipy.stats import kruskal, permutation_test

    rows = _select(table, claim, claim.estimator or default)
    details, verdicts, trials = [], [], set()
    for ref in claim.layers:
        sub = _layer_rows(rows, ref).dropna(subset=[claim.statistic])
        groups = _groups(sub, claim.axis, claim.statistic)
        trials.update(sub["run_id"])
        samples = [v for _, v in groups.values()]
        d = {"layer": ref, "per_value": _per_value(groups, claim.seed), "test": claim.test}
        if len(samples) < 2 or min(len(s) for s in samples) < 2:
            d.update(verdict=INCONCLUSIVE, p_value=math.nan, why="needs >= 2 axis values with >= 2 seeds each")
        else:
            allv = np.concatenate(samples)
            if np.all(allv == allv[0]):
                h, p = 0.0, 1.0
            elif claim.test == "kruskal":
                h, p = kruskal(*samples)
            else:
                res = permutation_test(
                    samples, lambda *s: kruskal(*s).statistic, n_resamples=claim.n_resamples,
                    alternative="greater", rng=claim.seed,
                )  # fmt: skip
                h, p = res.statistic, res.pvalue
            n = len(allv)
            d.update(statistic=float(h), p_value=float(p), epsilon_squared=float(h) / (n - 1) if n > 1 else math.nan)
            if p < claim.alpha:
                d.update(verdict=SUPPORTED, why=f"p = {p:.3g} < alpha = {claim.alpha:g}")
            else:
                pairs = _pairwise(groups, 1 - 2 * claim.alpha)
                d["pairs"] = pairs
                tol = claim.tolerance_bits
                within = tol is not None and all(-tol <= q["ci_low"] and q["ci_high"] <= tol for q in pairs)
                if within:
                    d.update(verdict=REFUTED, why=f"p = {p:.3g}, and every difference is within ±{tol:g} bits")
                else:
                    extra = "" if tol is not None else "; set tolerance_bits to be able to refute"
                    d.update(verdict=INCONCLUSIVE, why=f"p = {p:.3g} >= alpha = {claim.alpha:g}, no equivalence{extra}")
        verdicts.append(d["verdict"])
        details.append(d)
    means = [
        f"{d['layer']}: " + ", ".join(f"{q['value']} {_fmt(q['mean'])} [{_fmt(q['ci_low'])}, {_fmt(q['ci_high'])}]"
                                      for q in d["per_value"]) + f" ({d['why']})"
        for d in details
    ]  # fmt: skip
    return Verdict(0, claim.kind, "", _combine(verdicts), "; ".join(means), _numbers(details), sorted(trials), details)


def _stable_across(claim, table, default) -> Verdict:
    rows = _select(table, claim, claim.estimator or default)
    details, verdicts, trials = [], [], set()
    tol = claim.tolerance_bits
    for ref in claim.layers:
        sub = _layer_rows(rows, ref).dropna(subset=[claim.statistic])
        groups = _groups(sub, claim.axis, claim.statistic)
        trials.update(sub["run_id"])
        pairs = _pairwise(groups, claim.confidence)
        d = {"layer": ref, "per_value": _per_value(groups, 0), "pairs": pairs}
        if len(groups) < 2:
            verdict, why = INCONCLUSIVE, "needs >= 2 axis values"
        elif any(q["ci_low"] > tol or q["ci_high"] < -tol for q in pairs):
            worst = max(pairs, key=lambda q: min(abs(q["ci_low"]), abs(q["ci_high"])))
            verdict, why = (
                REFUTED,
                (
                    f"{worst['a']} vs {worst['b']} differ by {_fmt(worst['diff'])} bits, "
                    f"{claim.confidence:.0%} CI [{_fmt(worst['ci_low'])}, {_fmt(worst['ci_high'])}] outside ±{tol:g}"
                ),
            )
        elif all(-tol <= q["ci_low"] and q["ci_high"] <= tol for q in pairs):
            biggest = max(abs(q["diff"]) for q in pairs)
            verdict, why = SUPPORTED, f"every pairwise {claim.confidence:.0%} CI within ±{tol:g} bits " \
                f"(largest difference {_fmt(biggest)})"  # fmt: skip
        else:
            open_ = [q for q in pairs if not (-tol <= q["ci_low"] and q["ci_high"] <= tol)]
            q = open_[0]
            verdict, why = (
                INCONCLUSIVE,
                (
                    f"{q['a']} vs {q['b']}: difference {_fmt(q['diff'])} bits, CI [{_fmt(q['ci_low'])}, "
                    f"{_fmt(q['ci_high'])}] neither within nor outside ±{tol:g} (more seeds needed)"
                ),
            )
        d.update(verdict=verdict, why=why)
        verdicts.append(verdict)
        details.append(d)
    reason = "; ".join(f"{d['layer']}: {d['why']}" for d in details)
    return Verdict(0, claim.kind, "", _combine(verdicts), reason, _numbers(details), sorted(trials), details)


_GAPS = (("onset_epoch", "loss_kink_epoch"), ("onset_epoch", "snr_drop_epoch"), ("loss_kink_epoch", "snr_drop_epoch"))


def _transition(claim, table, default) -> Verdict:
    rows = _select(table, claim, claim.estimator or default)
    details, verdicts, trials = [], [], set()
    for ref in claim.layers:
        sub = _layer_rows(rows, ref)
        trials.update(sub["run_id"])
        gaps = {f"{a}-{b}": (sub[a] - sub[b]).abs().to_numpy(float) for a, b in _GAPS}
        stack = np.stack(list(gaps.values()), axis=1) if len(sub) else np.zeros((0, 3))
        has_any = np.isfinite(stack).any(axis=1)
        onset = np.isfinite(sub["onset_epoch"].to_numpy(float))
        ok = np.where(np.isfinite(stack), stack <= claim.within_epochs, True).all(axis=1)
        coincide = ok & has_any & onset
        # A seed without compression onset counts against the claim; one with an onset but no loss kink
        # or SNR drop to compare it with cannot be judged and is left out.
        n, k = int((~onset | has_any).sum()), int(coincide.sum())
        verdict, lo, hi = _fraction_rule(k, n, claim.min_fraction, claim.confidence)
        dist = {}
        for name, g in gaps.items():
            g = g[np.isfinite(g)]
            if len(g):
                q1, med, q3 = np.quantile(g, [0.25, 0.5, 0.75])
                dist[name] = {"n": len(g), "median": med, "q1": q1, "q3": q3, "min": g.min(), "max": g.max()}
        d = {
            "layer": ref, "verdict": verdict, "k": k, "n": n, "fraction": k / n if n else math.nan, "ci_low": lo,
            "ci_high": hi, "gaps": dist, "no_onset": int(np.isnan(sub["onset_epoch"].to_numpy(float)).sum()),
            "no_snr": int(np.isnan(sub["snr_drop_epoch"].to_numpy(float)).sum()),
        }  # fmt: skip
        verdicts.append(verdict)
        details.append(d)
    reasons = []
    for d in details:
        gaps = ", ".join(f"{name} median {_fmt(g['median'], 0)} epochs (n={g['n']})" for name, g in d["gaps"].items())
        reasons.append(
            f"{d['layer']}: {d['k']}/{d['n']} seeds within {claim.within_epochs} epochs "
            f"(Wilson [{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}]; {d['no_onset']} without compression onset, "
            f"{d['no_snr']} without an SNR drop); gaps: {gaps or 'none measurable'}"
        )
    return Verdict(0, claim.kind, "", _combine(verdicts), "; ".join(reasons), _numbers(details), sorted(trials),
                   details)  # fmt: skip


def _agreement(claim, table, default) -> Verdict:
    from scipy.stats import rankdata

    a_name, b_name = claim.estimators()
    axis = claim.axis or "condition"
    details, verdicts, trials = [], [], set()
    for ref in claim.layers:
        a = _layer_rows(_select(table, claim, a_name), ref)[["run_id", axis, claim.statistic]]
        b = _layer_rows(_select(table, claim, b_name), ref)[["run_id", claim.statistic]]
        paired = a.merge(b, on="run_id", suffixes=("_a", "_b")).dropna()
        trials.update(paired["run_id"])
        conds: dict = {}
        for value, x, y in zip(paired[axis], paired[claim.statistic + "_a"], paired[claim.statistic + "_b"],
                               strict=True):  # fmt: skip
            conds.setdefault(_canon(value), (value, []))[1].append((x, y))
        labels = [v if isinstance(v, str) else _canon(v) for v, _ in conds.values()]
        data = [np.asarray(pairs) for _, pairs in conds.values()]
        d = {"layer": ref, "conditions": labels, "n_trials": len(paired)}
        if len(data) < 2:
            d.update(verdict=INCONCLUSIVE, rho=math.nan, ci_low=math.nan, ci_high=math.nan,
                     why="needs >= 2 conditions measured by both estimators")  # fmt: skip
        else:
            means = np.array([p.mean(axis=0) for p in data])  # (c, 2)
            rho = _spearman(rankdata(means[:, 0]), rankdata(means[:, 1]))
            rng = np.random.default_rng(claim.seed)
            boot = np.stack(
                [p[rng.integers(0, len(p), size=(claim.n_resamples, len(p)))].mean(axis=1) for p in data], axis=1
            )  # (B, c, 2)
            rhos = _spearman(rankdata(boot[..., 0], axis=1), rankdata(boot[..., 1], axis=1))
            rhos = rhos[np.isfinite(rhos)]
            lo, hi = (np.quantile(rhos, [0.5 - claim.confidence / 2, 0.5 + claim.confidence / 2]) if len(rhos)
                      else (math.nan, math.nan))  # fmt: skip
            d.update(rho=float(rho), ci_low=float(lo), ci_high=float(hi),
                     means={lab: m.tolist() for lab, m in zip(labels, means, strict=True)})  # fmt: skip
            if not np.isfinite(rho):
                d.update(verdict=INCONCLUSIVE, why="a statistic is the same in every condition: no ranking")
            elif lo >= claim.min_rho:
                d.update(verdict=SUPPORTED, why=f"rho {rho:.2f}, bootstrap CI [{lo:.2f}, {hi:.2f}] >= {claim.min_rho}")
            elif hi < claim.min_rho:
                d.update(verdict=REFUTED, why=f"rho {rho:.2f}, bootstrap CI [{lo:.2f}, {hi:.2f}] < {claim.min_rho}")
            else:
                d.update(verdict=INCONCLUSIVE, why=f"rho {rho:.2f}, bootstrap CI [{lo:.2f}, {hi:.2f}] "
                         f"straddles {claim.min_rho}")  # fmt: skip
        verdicts.append(d["verdict"])
        details.append(d)
    reason = "; ".join(f"{d['layer']} over {len(d['conditions'])} conditions: {d['why']}" for d in details)
    return Verdict(0, claim.kind, "", _combine(verdicts), reason, _numbers(details), sorted(trials), details)


def _spearman(ra, rb):
    """Pearson correlation of ranks along the last axis (NaN where either side is constant)."""
    ra = ra - ra.mean(axis=-1, keepdims=True)
    rb = rb - rb.mean(axis=-1, keepdims=True)
    den = np.sqrt((ra * ra).sum(-1) * (rb * rb).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(-1) / np.where(den > 0, den, 1), np.nan)


EVALUATORS = {
    "compresses": _compresses,
    "does_not_compress": _compresses,
    "depends_on": _depends_on,
    "stable_across": _stable_across,
    "transition_coincides": _transition,
    "estimator_agreement": _agreement,
}
