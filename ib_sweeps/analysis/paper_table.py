"""The paper table: one markdown page with every claim of the given sweeps, the paper, our verdict and its numbers.

Reads MLflow only (each sweep's invocation, its resolved sweep file, its
trials) and judges the claims as :mod:`ib_sweeps.analysis.verdicts` does; what
is written depends on the store and on the ``commit`` and ``generated`` date
passed in, nothing else. A claim names its paper in parentheses at the end of
its ``name`` ("tanh compresses (Saxe et al. 2018)"): supported then means we
agree with the paper, refuted that we disagree, inconclusive that the trials
do not decide. A sweep absent from the store is listed as "not run".
Information in bits.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ib_sweeps.analysis.source import locate
from ib_sweeps.analysis.verdicts import INCONCLUSIVE, REFUTED, SUPPORTED

NOT_RUN = "not run"
# The paper a claim's name cites: its last parenthesis, when it holds a year.
_PAPER = re.compile(r"\s*\(([^()]*\b(?:19|20)\d\d\b[^()]*)\)\s*$")
_AGREEMENT = {SUPPORTED: "agrees", REFUTED: "disagrees", INCONCLUSIVE: "undecided"}


@dataclass
class SweepResult:
    """What the store holds for one sweep: its invocation and the verdicts on its claims."""

    sweep: str
    parent_run_id: str | None = None  # None: not in the store
    why: str = ""  # why not run (the lookup error)
    started: str = ""  # the parent run's start, UTC
    profile: str = ""
    seeds: list[int] = field(default_factory=list)  # distinct numbers of FINISHED seeds per condition
    verdicts: list = field(default_factory=list)  # ib_sweeps.claims.base.Verdict
    figure: str | None = None  # the information-plane PNG, relative to the page


def paper_of(title: str) -> tuple[str, str]:
    """(statement, paper) of a claim title: the paper is its trailing parenthesis with a year, else ``""``."""
    m = _PAPER.search(title)
    return (title[: m.start()], m.group(1)) if m else (title, "")


def sweep_result(sweep: str, tracking_uri: str | None = None, *, profile: str | None = None,
                 figure: Path | None = None, page_dir: Path | None = None) -> SweepResult:  # fmt: skip
    """The :class:`SweepResult` of ``sweep``: its invocation with ``profile`` (else the default one, see
    :mod:`ib_sweeps.analysis.source`), its verdicts and, when ``figure`` is given, its information planes
    saved there as PNG (linked relative to ``page_dir``)."""
    from ib_sweeps.analysis.report import condition_order
    from ib_sweeps.analysis.tables import load_runs, load_trace
    from ib_sweeps.analysis.verdicts import default_estimator, judge, resolved_sweep

    try:
        src = locate(sweep, tracking_uri, profile=profile or None, announce=False)
    except LookupError as err:
        return SweepResult(sweep, why=str(err))
    try:
        spec = resolved_sweep(src)
    except LookupError:
        spec = {}
    runs, trace = load_runs(src), load_trace(src)
    primary = default_estimator(spec)
    finished = runs[runs["status"] == "FINISHED"] if len(runs) else runs
    seeds = sorted({int(n) for n in finished.groupby("condition")["seed"].nunique()}) if len(finished) else []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime((src.parent.info.start_time or 0) / 1000))
    result = SweepResult(sweep, src.parent_run_id, "", started, src.parent.data.params.get("profile", ""), seeds,
                         judge(spec.get("claims", []), trace, primary))  # fmt: skip
    if figure is not None and len(trace):
        order = condition_order(spec, runs["condition"] if len(runs) else [])
        if _save_planes(trace, primary, order, figure):
            result.figure = str(figure.relative_to(page_dir)) if page_dir else str(figure)
    return result


def _save_planes(trace, estimator: str, order: list[str], path: Path) -> bool:
    from ib_sweeps.analysis import figures

    plt = figures._plt()
    try:
        fig = figures.plane_grid(trace, estimator, order)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=72)
        plt.close(fig)
        return True
    except Exception:  # a figure that cannot be drawn must not cost the table
        plt.close("all")
        return False


def render(results: list[SweepResult], *, commit: str = "", generated: str = "") -> str:
    """The page (markdown): summary, one row per claim (one per sweep not run), agreements, figures."""
    rows, agree, disagree, undecided = [], [], [], []
    for r in results:
        if r.parent_run_id is None:
            rows.append(f"| {r.sweep} | | | **{NOT_RUN}** | {_cell(r.why)} | | |")
            continue
        run = f"`{r.parent_run_id}`<br>{r.started}" + (f"<br>profile {r.profile}" if r.profile else "")
        seeds = f"{r.seeds[0]}–{r.seeds[-1]}" if len(r.seeds) > 1 else str(r.seeds[0]) if r.seeds else "0"
        if not r.verdicts:
            rows.append(f"| {r.sweep} | | (the sweep declares no claims) | | | {seeds} | {run} |")
        for v in r.verdicts:
            statement, paper = paper_of(v.title)
            rows.append(f"| {r.sweep} | {_cell(paper) or '—'} | {_cell(statement)} | **{v.verdict}** | "
                        f"{_cell(v.reason)} | {seeds} | {run} |")  # fmt: skip
            if paper:
                line = f"- {paper}: {statement} — {r.sweep}, {v.verdict}: {v.reason}"
                {SUPPORTED: agree, REFUTED: disagree}.get(v.verdict, undecided).append(line)
    not_run = [r.sweep for r in results if r.parent_run_id is None]
    quick = [r.sweep for r in results if r.profile]
    n_claims = sum(len(r.verdicts) for r in results)
    out = [
        "# Paper table",
        "",
        f"Generated {generated or 'now'} from the MLflow store" + (f" at commit `{commit}`" if commit else "") + ".",
        "Each row is one claim as a sweep file states it, with the paper it comes from, the verdict ib-sweeps",
        "reaches on the sweep's trials and the numbers that decide it. Supported: we agree with the paper;",
        "refuted: we disagree; inconclusive: the trials do not decide (usually: more seeds needed).",
        "",
        f"**Summary:** {n_claims} claims in {len(results) - len(not_run)} sweeps; of the "
        f"{len(agree) + len(disagree) + len(undecided)} that name a paper, {len(agree)} agree with it, "
        f"{len(disagree)} disagree, {len(undecided)} undecided"
        + (f"; not run: {', '.join(not_run)}" if not_run else "")
        + ".",
    ]
    if quick:
        out += ["", f"**Not full length:** {', '.join(quick)} ran a profile (shortened runs, fewer seeds)."]
    out += ["", "| Sweep | Paper | Claim | Verdict | Deciding numbers | Seeds | Parent run |", "|---" * 7 + "|", *rows]
    for head, lines in (("Agreements", agree), ("Disagreements", disagree), ("Undecided", undecided)):
        out += ["", f"## {head}", "", *(lines or ["(none)"])]
    figs = [r for r in results if r.figure]
    if figs:
        out += ["", "## Figures"]
        for r in figs:
            out += ["", f"### {r.sweep}", "", f"![Information planes of {r.sweep}]({r.figure})"]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_page(sweeps: list[str], out: str | Path, tracking_uri: str | None = None, *, profile: str | None = None,
               commit: str = "", figures: bool = True) -> Path:  # fmt: skip
    """Write the paper table of ``sweeps`` to ``out`` (markdown), figures in ``<out stem>-figures/``; return it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig_dir = out.parent / f"{out.stem}-figures"
    results = [
        sweep_result(s, tracking_uri, profile=profile, figure=fig_dir / f"{s}.png" if figures else None,
                     page_dir=out.parent)
        for s in sweeps
    ]  # fmt: skip
    out.write_text(render(results, commit=commit, generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    return out
