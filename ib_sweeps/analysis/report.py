"""The sweep report: verdicts first, then the numbers and figures behind them.

:func:`write_report` writes ``report.html`` (self-contained, figures embedded
as PNG), ``report.md`` (summary) and ``verdicts.json`` into a folder and logs
them on the sweep's parent run under ``report/``, with one tag per claim
(``ib_sweeps.claim.<n>`` = verdict).

The report names the invocation it read (parent run, profile, overrides,
trial counts, start time) and why that one (:mod:`ib_sweeps.analysis.source`).
Conditions appear in one order everywhere, tables and figures alike: the
sweep file's axis-value order (:func:`condition_order`).
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ib_sweeps import records
from ib_sweeps.analysis import figures
from ib_sweeps.analysis.artefacts import artefact_warnings
from ib_sweeps.analysis.intervals import t_mean
from ib_sweeps.analysis.source import locate
from ib_sweeps.analysis.stats import compression_table
from ib_sweeps.analysis.tables import condition_name, load_runs, load_trace
from ib_sweeps.analysis.verdicts import default_estimator, judge, resolved_sweep

REPLICATION = (
    "Seeds are the unit of replication: every statistic is computed per trial (one seed of one condition), "
    "and every interval is over seeds."
)
WARNINGS = "Warnings: possible estimator artefacts"  # :mod:`ib_sweeps.analysis.artefacts`
_COLOURS = {"supported": "#1b7837", "refuted": "#b2182b", "inconclusive": "#8c6d00"}


@dataclass(frozen=True)
class Report:
    """Where the report went and what it concluded."""

    folder: Path
    html: Path
    markdown: Path
    json: Path
    verdicts: list
    parent_run_id: str
    invocation: str = ""  # which invocation was read and why (Source.describe)


def safe_name(name: str) -> str:
    """``name`` as one harmless path component: letters, digits, ``_`` and ``-`` only (``../../x`` gives ``x``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_-") or "sweep"


def condition_order(spec: dict, conditions) -> list[str]:
    """``conditions`` in the sweep file's order: its grid axes' values as listed, axes in file order.

    Conditions the grid does not produce (a search sweep, a changed file)
    follow in sorted order.
    """
    grid = spec.get("grid") or {}
    axes = [k for k in grid if k != "seed"]
    declared = [
        condition_name(dict(zip(axes, values, strict=True))) for values in itertools.product(*(grid[k] for k in axes))
    ]
    present = set(conditions)
    return [c for c in dict.fromkeys(declared) if c in present] + sorted(present - set(declared))


def write_report(
    sweep,
    out_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    log: bool = True,
    *,
    invocation: str | None = None,
    profile: str | None = None,
    announce: bool = True,
):
    """Write the report of ``sweep`` (name, experiment id or parent run id).

    A name reads the invocation ``invocation`` (parent run id or prefix), else
    the latest with ``profile``, else the default of
    :mod:`ib_sweeps.analysis.source` (never a profile run when a full one
    exists). ``out_dir``: default ``reports/<sweep>-<parent run id[:8]>`` (the
    name made safe for a path); ``log``: also log it on the parent run;
    ``announce``: say on stderr which invocation was read. Returns a :class:`Report`.
    """
    src = locate(sweep, tracking_uri, invocation=invocation, profile=profile, announce=announce)
    try:
        spec = resolved_sweep(src)
    except LookupError:
        spec = {}
    runs = load_runs(src)
    trace = load_trace(src)
    table = compression_table(trace)
    primary = default_estimator(spec)
    verdicts = judge(spec.get("claims", []), trace, primary)
    folder = Path(out_dir or Path("reports") / f"{safe_name(src.experiment_name)}-{src.parent_run_id[:8]}")
    folder.mkdir(parents=True, exist_ok=True)
    order = condition_order(spec, runs["condition"] if len(runs) else [])
    warnings = artefact_warnings(runs, table, order)
    facts = _facts(src, spec, runs, table) | {"condition_order": order, "warnings": warnings}
    summary = _summary_rows(table, order)
    figs = _figures(trace, table, primary, order)
    paths = folder / "report.html", folder / "report.md", folder / "verdicts.json"
    paths[0].write_text(_html(facts, verdicts, summary, figs, runs))
    paths[1].write_text(_markdown(facts, verdicts, summary))
    payload = {**facts, "replication": REPLICATION, "verdicts": [v.to_dict() for v in verdicts]}
    paths[2].write_text(json.dumps(payload, indent=2, default=str))
    if log:
        client = src.client
        client.log_artifact(src.parent_run_id, str(paths[0]), "report")
        client.log_artifact(src.parent_run_id, str(paths[1]), "report")
        client.log_artifact(src.parent_run_id, str(paths[2]), "report")
        for v in verdicts:
            client.set_tag(src.parent_run_id, records.claim_tag(v.index + 1), v.verdict)
    return Report(folder, *paths, verdicts, src.parent_run_id, src.describe())


def _facts(src, spec, runs, table) -> dict:
    finished = runs[runs["status"] == "FINISHED"] if len(runs) else runs
    per_cond = finished.groupby("condition")["seed"].nunique() if len(finished) else None
    params = src.parent.data.params
    return {
        "sweep": src.experiment_name,
        "description": (spec.get("description") or "").strip(),
        "parent_run_id": src.parent_run_id,
        "invocation": {
            "run_name": src.parent.info.run_name,
            "status": src.parent.info.status,
            "profile": params.get("profile", ""),
            "overrides": json.loads(params.get("overrides", "[]")),
            "chosen_because": src.chosen_because,
            "other_invocations": src.others,
            "text": src.describe(),
        },
        "tracking_uri": src.uri,
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime((src.parent.info.start_time or 0) / 1000)),
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": {s: int((runs["status"] == s).sum()) for s in ("FINISHED", "FAILED", "KILLED")} if len(runs) else {},
        "conditions": int(per_cond.size) if per_cond is not None else 0,
        "seeds_per_condition": sorted({int(v) for v in per_cond}) if per_cond is not None else [],
        "estimators": sorted(table["estimator"].unique()) if len(table) else [],
    }


def _summary_rows(table, order: list[str]) -> list[dict]:
    """Last hidden layer, per condition (in ``order``) and estimator: seeds, mean compression [95 % CI], fraction."""
    rows = []
    if not len(table):
        return rows
    sub = table[table["is_last_hidden"] & ~table["is_output"]]
    rank = {c: i for i, c in enumerate(order)}
    groups = sorted(sub.groupby(["condition", "estimator"], sort=False), key=lambda kv: rank.get(kv[0][0], len(rank)))
    for (cond, est), g in groups:
        vals = g["compression"].to_numpy(float)
        mean, lo, hi = t_mean(vals[np.isfinite(vals)])
        rows.append({
            "condition": cond, "estimator": est, "seeds": int(g["seed"].nunique()),
            "ixt_peak": float(g["ixt_peak"].mean()), "compression": mean, "ci_low": lo, "ci_high": hi,
            "compresses": f"{int(g['compresses'].sum())}/{len(g)}", "iyt_final": float(g["iyt_final"].mean()),
        })  # fmt: skip
    return rows


def _figures(trace, table, primary: str, order: list[str]) -> list[tuple[str, str]]:
    """(caption, base64 PNG) of each figure; none when no trial finished."""
    if not len(trace):
        return []
    ests = list(dict.fromkeys([primary, *table["estimator"]]))
    primary = primary if primary in set(trace["estimator"].unique()) else ests[-1]  # unique: not a set of 10^5 strings
    ests = [e for e in ests if e in set(table["estimator"])]
    out = []
    for caption, make in (
        (
            "Compression of the last hidden layer by condition",
            lambda: figures.compression_by_condition(table, ests, order=order),
        ),
        (f"Information planes ({primary})", lambda: figures.plane_grid(trace, primary, order)),
        (f"Information against epoch ({primary})", lambda: figures.information_vs_epoch(trace, primary, order)),
        (
            "Phase timing: loss, gradient SNR, compression onset",
            lambda: figures.timing(trace, table, primary, order=order),
        ),
    ):
        try:
            image = figures.png(make(), dpi=90)  # no pyplot: nothing to close
        except Exception as err:  # one bad figure must not cost the verdicts
            out.append((f"{caption}: could not be drawn ({type(err).__name__}: {err})", ""))
            continue
        out.append((caption, base64.b64encode(image).decode()))
    return out


def _f(x, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def _headline(facts: dict, verdicts: list) -> str:
    counts = {k: sum(v.verdict == k for v in verdicts) for k in _COLOURS}
    runs = facts["runs"]
    seeds = "/".join(str(s) for s in facts["seeds_per_condition"]) or "0"
    return (
        f"{len(verdicts)} claims: {counts['supported']} supported, {counts['refuted']} refuted, "
        f"{counts['inconclusive']} inconclusive. Trials: {runs.get('FINISHED', 0)} finished "
        f"({facts['conditions']} conditions x {seeds} seeds), {runs.get('FAILED', 0)} failed, "
        f"{runs.get('KILLED', 0)} killed."
    )


def _markdown(facts: dict, verdicts: list, summary: list[dict]) -> str:
    inv = facts["invocation"]["text"].replace("\n  ", "; ")
    lines = [f"# Sweep `{facts['sweep']}`: report", "", _headline(facts, verdicts), "", f"Read: {inv}", ""]
    lines += [REPLICATION, ""]
    if facts["description"]:
        lines += [f"> {facts['description']}", ""]
    lines += ["| # | claim | verdict | numbers |", "|---|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v.index + 1} | {v.title} | **{v.verdict}** | {v.reason} |")
    if facts.get("warnings"):
        lines += ["", f"## {WARNINGS}", ""] + [f"- **{w['code']}**: {w['message']}" for w in facts["warnings"]]
    lines += ["", "## Compression of the last hidden layer (bits)", ""]
    lines += ["| condition | estimator | seeds | peak I(X;T) | compression [95 % CI] | compress | final I(Y;T) |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in summary:
        lines.append(
            f"| {r['condition']} | {r['estimator']} | {r['seeds']} | {_f(r['ixt_peak'])} | {_f(r['compression'])} "
            f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}] | {r['compresses']} | {_f(r['iyt_final'], 3)} |"
        )
    lines += ["", f"Parent run `{facts['parent_run_id']}` in {facts['tracking_uri']}; started {facts['started']}, "
              f"report generated {facts['generated']}.", ""]  # fmt: skip
    return "\n".join(lines)


def _html_warnings(warnings: list[dict]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li><code>{html.escape(w['code'])}</code>: {html.escape(w['message'])}</li>" for w in warnings)
    return f'<h2>{WARNINGS}</h2><ul class="warnings">{items}</ul>'


def _html(facts: dict, verdicts: list, summary: list[dict], figs: list, runs) -> str:
    e = html.escape
    badge = '<span class="badge" style="background:{c}">{v}</span>'
    verdict_rows = "".join(
        f"<tr><td>{v.index + 1}</td><td>{e(v.title)}</td>"
        f"<td>{badge.format(c=_COLOURS[v.verdict], v=v.verdict)}</td><td>{e(v.reason)}</td>"
        f"<td>{len(v.trials)}</td></tr>"
        for v in verdicts
    )
    summary_rows = "".join(
        f"<tr><td>{e(r['condition'])}</td><td>{e(r['estimator'])}</td><td>{r['seeds']}</td><td>{_f(r['ixt_peak'])}</td>"
        f"<td>{_f(r['compression'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]</td><td>{r['compresses']}</td>"
        f"<td>{_f(r['iyt_final'], 3)}</td></tr>"
        for r in summary
    )
    fig_html = "".join(
        f'<figure><img src="data:image/png;base64,{b64}" alt="{e(cap)}"><figcaption>{e(cap)}</figcaption></figure>'
        if b64
        else f"<p><em>{e(cap)}</em></p>"
        for cap, b64 in figs
    )
    details = "".join(
        f"<details><summary>#{v.index + 1} {e(v.kind)}: {v.verdict}</summary><pre>"
        f"{e(json.dumps({'claim': v.claim, 'numbers': v.numbers, 'trials': v.trials}, indent=1, default=str))}"
        f"</pre></details>"
        for v in verdicts
    )
    failed = runs[runs["status"] != "FINISHED"] if len(runs) else runs
    failed_rows = "".join(
        f"<tr><td>{e(str(r.run_name))}</td><td>{e(r.status)}</td><td>{e(str(r.error))}</td></tr>"
        for r in failed.itertuples()
    )
    failed_html = (f"<h2>Trials that did not finish</h2><table><tr><th>run</th><th>status</th><th>error</th></tr>"
                   f"{failed_rows}</table>" if failed_rows else "")  # fmt: skip
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ib-sweeps report: {e(facts["sweep"])}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.2em}} td,th{{border:1px solid #ccc;padding:.25em .5em;
font-size:.9em;vertical-align:top}} th{{background:#f3f3f3}}
.badge{{color:#fff;padding:.1em .5em;border-radius:.6em;font-weight:600}}
.lead{{font-size:1.1em}} figure{{margin:1em 0}} img{{max-width:100%}} pre{{font-size:.8em;overflow:auto}}
</style></head><body>
<h1>Sweep <code>{e(facts["sweep"])}</code></h1>
<p class="lead">{e(_headline(facts, verdicts))}</p>
<p class="invocation">Read: {e(facts["invocation"]["text"]).replace(chr(10), "<br>")}</p>
<p>{e(facts["description"])}</p>
<h2>Verdicts</h2>
<table><tr><th>#</th><th>claim</th><th>verdict</th><th>numbers that decided it</th><th>trials</th></tr>
{verdict_rows or '<tr><td colspan="5">the sweep declares no claims</td></tr>'}</table>
<p><em>{e(REPLICATION)}</em></p>
{_html_warnings(facts.get("warnings", []))}
<h2>Compression of the last hidden layer (bits)</h2>
<table><tr><th>condition</th><th>estimator</th><th>seeds</th><th>peak I(X;T)</th><th>compression [95 % CI]</th>
<th>compress</th><th>final I(Y;T)</th></tr>{summary_rows}</table>
<h2>Figures</h2>{fig_html or "<p>No finished trial: nothing to draw.</p>"}
<h2>Claim details</h2>{details}
{failed_html}
<p><small>Parent run {e(facts["parent_run_id"])} in {e(facts["tracking_uri"])}; started {e(facts["started"])};
report generated {e(facts["generated"])}. Information in bits.</small></p>
</body></html>
"""
