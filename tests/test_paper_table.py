"""The paper table (ib_sweeps/analysis/paper_table.py): one row per claim, from synthetic sweeps in MLflow."""

from __future__ import annotations

import numpy as np

from ib_sweeps.analysis import paper_table
from ib_sweeps.analysis import synthetic as syn

EPOCHS = np.r_[0, np.unique(np.geomspace(1, 300, 12).astype(int))]
ACT = "model.activation"


def _trial(act: str, seed: int, compression: float) -> syn.Trial:
    ixt = {("binning", layer): syn.rise_fall(EPOCHS, 30, 8.0, 8.0 - (compression if layer == "layer_1" else 0), 1.0)
           for layer in ("layer_1", "layer_2")}  # fmt: skip
    iyt = {key: syn.rise_fall(EPOCHS, 30, 0.9, 0.95, 0.1) for key in ixt}
    return syn.Trial({ACT: act, "seed": seed}, EPOCHS, ixt, iyt)


CLAIMS = [
    {"name": "tanh compresses (Saxe et al. 2018)", "kind": "compresses", "where": {ACT: "tanh"}},
    {"name": "ReLU compresses (Chelombiev et al. 2019)", "kind": "compresses", "where": {ACT: "relu"}},
    {"kind": "depends_on", "axis": ACT},
]


def _store(tracking_uri) -> str:
    trials = [_trial(a, s, 3.0 if a == "tanh" else 0.0) for a in ("tanh", "relu") for s in range(5)]
    spec = {"base": {"estimators": [{"method": "binning"}]}, "grid": {ACT: ["tanh", "relu"]}, "claims": CLAIMS}
    return syn.write_sweep(tracking_uri, "acts", trials, spec)


def test_paper_of_splits_the_cited_paper_from_the_statement():
    assert paper_table.paper_of("tanh compresses (Saxe et al. 2018)") == ("tanh compresses", "Saxe et al. 2018")
    assert paper_table.paper_of("layer_1 compresses (binning)") == ("layer_1 compresses (binning)", "")


def test_one_row_per_claim_with_verdict_numbers_and_parent(tracking_uri, tmp_path):
    parent = _store(tracking_uri)
    out = paper_table.write_page(
        ["acts", "absent"], tmp_path / "docs" / "paper-table.md", tracking_uri, commit="abc1234"
    )
    page = out.read_text()
    rows = [line for line in page.splitlines() if line.startswith("| acts |")]
    assert len(rows) == len(CLAIMS)
    tanh, relu, depends = rows
    assert "| Saxe et al. 2018 | tanh compresses | **supported** | last_hidden: 5/5 trials compress" in tanh
    assert "| Chelombiev et al. 2019 | ReLU compresses | **refuted** | last_hidden: 0/5 trials compress" in relu
    assert "| — |" in depends and "**supported**" in depends and "p = " in depends
    assert all(f"`{parent}`" in r and "| 5 |" in r for r in rows)
    assert "| absent | | | **not run** | no sweep 'absent'" in page
    assert "at commit `abc1234`" in page
    summary = "3 claims in 1 sweeps; of the 2 that name a paper, 1 agree with it, 1 disagree, 0 undecided"
    assert summary + "; not run: absent." in page
    assert "- Chelombiev et al. 2019: ReLU compresses — acts, refuted" in page.split("## Disagreements")[1]
    assert "![Information planes of acts](paper-table-figures/acts.png)" in page
    assert (tmp_path / "docs" / "paper-table-figures" / "acts.png").stat().st_size > 0


def test_render_is_a_function_of_its_results():
    results = [paper_table.SweepResult("snr", why="no sweep 'snr'")]
    page = paper_table.render(results, commit="c0ffee0", generated="2026-01-01 00:00 UTC")
    assert page == paper_table.render(results, commit="c0ffee0", generated="2026-01-01 00:00 UTC")
    assert "| snr | | | **not run** | no sweep 'snr' | | |" in page and "## Figures" not in page


def test_reproduce_lists_its_sweeps_and_writes_the_page_from_the_store(tracking_uri, tmp_path, capsys):
    from ib_sweeps import cli

    assert cli.main(["reproduce", "--sweeps", "smoke", "--profile", "quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "== smoke" in out and "smoke: 4 trials" in out and "then: the paper table of 1 sweeps" in out
    assert cli.main(["reproduce", "--sweeps", "nope"]) == 2
    page = tmp_path / "table.md"
    assert cli.main(["reproduce", "--sweeps", "smoke", "--page-only", "--out", str(page), "--tracking-uri",
                     tracking_uri]) == 0  # fmt: skip
    assert "| smoke | | | **not run** |" in page.read_text()
