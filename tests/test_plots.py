"""A trial's figures (ib_sweeps/plots.py): the files written, kept frames, legible layout, gradient binning."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ib_sweeps import plot_render, plots, records
from ib_sweeps.trace import Trace

FILES = ["gradients.png", "info_plane_binning.png", "info_plane_kde.png", "info_vs_epoch_binning.png",
         "info_vs_epoch_kde.png", "learning_curves.png"]  # fmt: skip


def _trace(epochs=600, measured=40, layers=3, scale=1.0, seed=0, grad=True, full_batch=False) -> Trace:
    """Two estimators, backtracked epochs, a loss within two decades (minor log labels: 6×10⁻¹), gradient stats."""
    rng = np.random.default_rng(seed)
    e = np.arange(epochs + 1)
    loss = 0.7 * np.exp(-e / (epochs / 3)) + 0.05 + 0.01 * rng.random((2, epochs + 1))
    history = np.column_stack([loss[0], 1 - loss[0], loss[1], 1 - loss[1]])
    t = Trace(["binning", "kde"], [f"layer_{j + 1}" for j in range(layers)], list(records.HISTORY), 12.0, 1.0, history)
    picked = np.unique(np.r_[0, np.geomspace(1, epochs, measured).astype(int)])
    for k, epoch in enumerate(picked):
        rise = 1 - np.exp(-(epoch + 1) / 30)
        ixt = scale * (10 - np.arange(layers)) * rise + 0.1 * rng.standard_normal((2, layers))
        iyt = np.clip(0.9 * rise - 0.05 * np.arange(layers) + 0.02 * rng.standard_normal((2, layers)), 0, 1)
        t.add(epoch, ixt, iyt, "backtracked" if k % 10 == 9 else "scheduled")
    if grad:
        mean = 1 / np.sqrt(e + 10)[:, None] * (1 + np.arange(layers))
        std = np.zeros_like(mean) if full_batch else 0.3 + 0.01 * rng.standard_normal(mean.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            t.grad = np.stack([mean, std, mean / std], axis=-1).astype(np.float32)
        t.grad[0] = np.nan
    return t


def _pixels(path):
    return np.asarray(Image.open(path))


def test_save_all_writes_every_figure_once(tmp_path):
    paths = plots.save_all(_trace(), tmp_path)
    assert sorted(p.name for p in paths) == FILES == sorted(p.name for p in tmp_path.iterdir())
    sizes = {"gradients.png": (1650, 462), "learning_curves.png": (1210, 440)}
    for p in paths:  # written by plot_render.write_png, not savefig: the size in pixels, the DPI and RGBA of savefig's
        with Image.open(p) as im:
            im.load()
            want = sizes.get(p.name, (770, 550) if p.name.startswith("info_plane") else (1210, 440))
            assert (im.size, im.mode) == (want, "RGBA") and im.info["dpi"] == pytest.approx((110, 110), abs=0.01)


def test_kept_glyphs_and_axes_draw_the_pixels_of_plain_matplotlib():
    """Kept glyph layouts and bitmaps and kept axis images (plot_render.canvas_class) change no pixel a reader sees.

    Against the same figure on matplotlib's own Agg canvas, drawn twice (the second time from kept images): an
    axis is drawn onto a layer of its own, which rounds where its texts overlap, at most 1 of 255 in a few pixels.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    t = _trace().sorted()
    for make in (plots.learning_curves, plots.gradients, plots.information_plane, plots.information_vs_epoch):
        ours, plain = make(t), make(t)
        FigureCanvasAgg(plain)
        for ax in plain.axes:
            del ax.xaxis.draw, ax.yaxis.draw  # the class's own draw again
        for fig in (ours, ours, plain):
            fig.canvas.draw()
        diff = np.abs(np.asarray(ours.canvas.buffer_rgba(), int) - np.asarray(plain.canvas.buffer_rgba(), int))
        assert diff.max() <= 1 and np.count_nonzero(diff.max(axis=-1)) <= 10, (make.__name__, diff.max())


def test_without_gradient_statistics_there_is_no_gradient_figure(tmp_path):
    paths = plots.save_all(_trace(grad=False), tmp_path)
    assert sorted(p.name for p in paths) == [f for f in FILES if f != "gradients.png"]


def test_a_kept_frame_draws_the_same_pixels_as_a_new_one(tmp_path):
    """A trace drawn into frames another trace used (other epochs, scales, layers) looks as if drawn alone."""
    first, second = _trace(seed=1), _trace(epochs=400, measured=30, layers=4, scale=0.4, seed=2)
    for name in ("alone", "first", "after"):
        (tmp_path / name).mkdir()
    plots._frame.cache_clear()
    alone = plots.save_all(second, tmp_path / "alone")
    plots.save_all(first, tmp_path / "first")
    hits = plots._frame.cache_info().hits
    after = plots.save_all(second, tmp_path / "after")
    assert plots._frame.cache_info().hits >= hits + 5  # all but the plane (its colour bar ends at another epoch)
    for a, b in zip(alone, after, strict=True):
        assert np.array_equal(_pixels(a), _pixels(b)), a.name


def test_a_kept_legend_draws_as_a_new_one(tmp_path):
    """Traces with the same layers keep their frames' legends (plots._legend), which find their place anew."""
    first, second = _trace(seed=1, scale=3.0), _trace(seed=2)
    for name in ("alone", "first", "after"):
        (tmp_path / name).mkdir()
    plots._frame.cache_clear()
    alone = plots.save_all(second, tmp_path / "alone")
    plots.save_all(first, tmp_path / "first")
    legends = [ax.get_legend() for ax in plots._frame(plots._curves_frame).axes]
    assert None not in legends
    after = plots.save_all(second, tmp_path / "after")
    assert [ax.get_legend() for ax in plots._frame(plots._curves_frame).axes] == legends  # the same objects
    for a, b in zip(alone, after, strict=True):
        assert np.array_equal(_pixels(a), _pixels(b)), a.name


def test_a_kept_frame_has_the_limits_of_a_new_one_to_the_last_bit(tmp_path):
    """The bound lines (H(X), H(Y)) enter the data limits through the current view: after another trace a limit
    differed in its last bit, enough to draw an axes edge on a half pixel one pixel off."""
    first, second = _trace(seed=1, scale=3.0), _trace(seed=2)
    plots._frame.cache_clear()
    plots.save_all(first, tmp_path)
    plots.save_all(second, tmp_path)  # kde drawn last into the kept frame
    for kept, new in (
        (plots._frame(plots._epoch_frame, *plots._epoch_key(second)), plots.information_vs_epoch(second.sorted(), 1)),
        (plots._frame(plots._curves_frame), plots.learning_curves(second.sorted())),
    ):
        new.canvas.draw()
        limits = [[(ax.get_xlim(), ax.get_ylim()) for ax in fig.axes] for fig in (kept, new)]
        assert limits[0] == limits[1]


def test_a_failed_save_leaves_no_data_in_kept_frames(tmp_path):
    t = _trace()
    alone = plots.save_all(t, tmp_path)
    with pytest.raises(FileNotFoundError):
        plots.save_all(_trace(seed=3, layers=5), tmp_path / "missing")  # drawn into, then not written
    (tmp_path / "again").mkdir()
    for a, b in zip(alone, plots.save_all(t, tmp_path / "again"), strict=True):
        assert np.array_equal(_pixels(a), _pixels(b)), a.name


def test_public_figures_match_save_all(tmp_path):
    """information_plane and friends build a frame of their own; the pixels are those save_all writes."""
    t = _trace().sorted()
    plots.save_all(t, tmp_path)
    own = {
        "info_plane_kde.png": plots.information_plane(t, 1),
        "info_vs_epoch_binning.png": plots.information_vs_epoch(t, 0),
        "learning_curves.png": plots.learning_curves(t),
        "gradients.png": plots.gradients(t),
    }
    for name, fig in own.items():
        fig.savefig(tmp_path / "own.png", dpi=plots.DPI, pil_kwargs={"compress_level": plots.PNG_COMPRESSION})
        assert np.array_equal(_pixels(tmp_path / name), _pixels(tmp_path / "own.png")), name


@pytest.mark.parametrize("full_batch", [False, True])
def test_labels_stay_inside_the_figure_and_off_other_axes(full_batch):
    """Fixed margins leave room for every label: none clipped, no axis label over a neighbouring panel."""
    t = _trace(full_batch=full_batch).sorted()
    figs = [
        plots.learning_curves(t),
        plots.gradients(t),
        plots.information_plane(t, 0),
        plots.information_vs_epoch(t, 1),
    ]
    for fig in figs:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        page = fig.bbox
        for ax in fig.axes:
            box = ax.get_tightbbox(renderer)  # what is drawn of it: tick labels, axis labels, title, legend
            assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, (fig, ax)
            for other in fig.axes:
                if other is not ax:
                    for label in (ax.xaxis.label, ax.yaxis.label):
                        if label.get_text():
                            assert not label.get_window_extent(renderer).overlaps(other.bbox), (label, other)
        if fig._suptitle is not None:
            box = fig._suptitle.get_window_extent(renderer)
            assert box.y1 <= page.y1 and all(box.y0 >= ax.bbox.y1 for ax in fig.axes)


def test_full_batch_gradients_say_the_snr_is_undefined():
    fig = plots.gradients(_trace(full_batch=True).sorted())
    ax_norm, ax_snr, _ = fig.axes[:3]
    assert any("SNR undefined" in t.get_text() for t in ax_snr.texts)
    assert ax_snr.get_xscale() == "linear" and ax_norm.get_yscale() == "log"  # an empty panel has no log scale


def _log_binned_reference(epochs, values, n_bins=60):
    """The per-series loop ib-sweeps used before (one column; empty bins dropped)."""
    edges = np.unique(np.geomspace(1, epochs.max() + 1, n_bins + 1).astype(int))
    which = np.digitize(epochs, edges) - 1
    ok = np.isfinite(values) & (values > 0)
    rows = []
    for b in range(len(edges) - 1):
        v = values[ok & (which == b)]
        if len(v):
            rows.append((np.sqrt(edges[b] * edges[b + 1]), np.exp(np.log(v).mean()), *np.percentile(v, [10, 90])))
    return np.asarray(rows).reshape(-1, 4).T


@pytest.mark.parametrize("n", [1, 2, 7, 300, 3000])
def test_log_binned_columns_equal_the_per_series_loop(n):
    rng = np.random.default_rng(n)
    v = rng.lognormal(size=(n, 5)).astype(np.float32)
    v[rng.random((n, 5)) < 0.1] = 0
    v[rng.random((n, 5)) < 0.1] = np.nan
    v[: n // 2, 3] = rng.lognormal(size=n // 2)  # a clean stretch: the NaN-free fast path
    v[:, 4] = 0  # nothing positive: no bins at all
    epochs = np.arange(1, n + 1)
    x, mean, lo, hi = plots._log_binned(epochs, v)
    for k in range(5):
        ok = np.isfinite(mean[:, k])
        want = _log_binned_reference(epochs, v[:, k])
        got = np.array([x[ok], mean[ok, k], lo[ok, k], hi[ok, k]])
        np.testing.assert_allclose(got, want, rtol=1e-5)  # float32 values, float64 statistics


@pytest.mark.parametrize("suffix", ["pdf", "svg"])
def test_public_figures_save_as_vector_graphics(tmp_path, suffix):
    """Kept axis images are for the Agg canvas only: other formats draw every axis as matplotlib does."""
    fig = plots.information_vs_epoch(_trace().sorted())
    fig.canvas.draw()  # kept images exist now
    fig.savefig(tmp_path / f"f.{suffix}")
    text = (tmp_path / f"f.{suffix}").read_bytes()
    assert len(text) > 10_000 and (suffix != "svg" or b"<image" not in text)  # no axis drawn as a picture


@pytest.mark.parametrize("end", [(300.0, 40.0), (130.0, 260.0), (-50.0, 96.0), (112.0, 104.0), (110.0, 100.0)])
def test_leader_lines_end_where_matplotlib_arc3_cuts_them(end):
    """plot_render.leader cuts by arithmetic what arc3 cuts by bisection: out of the label's box, then shortened."""
    from matplotlib.patches import ConnectionStyle, Rectangle
    from matplotlib.transforms import IdentityTransform

    box = Rectangle((80, 90), 60, 20, transform=IdentityTransform())  # the padded label box, display coordinates
    start = (110.0, 100.0)  # the label's centre
    want = ConnectionStyle("arc3")(start, end, shrinkA=2.75, shrinkB=2.75, patchA=box).vertices[[0, -1]]
    got = plot_render.leader(start, end, shrinkA=2.75, shrinkB=2.75, patchA=box).vertices[[0, -1]]
    np.testing.assert_allclose(got, want, atol=0.6)  # arc3 tests the box with its edge line's width
