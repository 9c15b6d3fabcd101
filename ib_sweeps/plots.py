"""Figures of a trial, drawn from its :class:`~ib_sweeps.trace.Trace` (matplotlib, Agg).

Each figure is a frame (figure, axes, scales, fixed bounds, axis labels) and
the data drawn into it. :func:`save_all` keeps its frames between calls (a few
per process, keyed by what shapes them) and removes the data again after each
save: building a frame's log-axis ticks was most of a figure's cost, and a
process saves the figures of many trials (trial arrays, Ray workers). A reused
frame gives the same pixels as a new one (tests/test_plots.py).

What else recurs from trial to trial is kept too, each with the pixels
matplotlib draws (to 1 of 255 in a few pixels): every axis as an image, by its
view and place (:class:`_KeptAxis`); a legend whose entries recur
(:func:`_legend`); glyph layouts and bitmaps in the renderer
(:func:`_renderer_class`). Files are written by :func:`_write_png`.

Also the colour-blind-safe styles shared with the sweep report (:func:`style`):
Okabe & Ito's eight colours, each paired with its own marker and line style, so
series stay apart in grey print and for every common colour-vision deficiency.
"""

from __future__ import annotations

import functools
import threading
import typing
import warnings

import numpy as np

from ib_sweeps import records

_LOSSES = (records.LOSS_TRAIN, records.LOSS_TEST)

# Okabe & Ito (2008), "Color Universal Design"; yellow last, as it is faint on white.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 2)), (0, (8, 2, 2, 2)))
DPI = 110
PNG_COMPRESSION = 1  # zlib level (_write_png): half the encoding time of the default 6, files ~15 % larger
LABEL_GAP = 0.05  # least vertical distance between two layer labels, as a fraction of the axes height


def style(i: int) -> dict:
    """Colour, marker and line style of the ``i``-th series (distinct for the first 8, then repeating)."""
    n = len(OKABE_ITO)
    return {"color": OKABE_ITO[i % n], "marker": MARKERS[i % n], "linestyle": LINESTYLES[i % n]}


def epoch_norm(epochs):
    """Logarithmic colour scale for ``epochs + 1`` (so epoch 0 is drawn, at 1): log-spaced schedules spread out."""
    from matplotlib.colors import LogNorm

    top = float(np.max(epochs)) + 1 if len(epochs) else 2.0
    return LogNorm(1.0, max(top, 2.0))


def spread_labels(ax, points, names, gap: float = LABEL_GAP) -> list:
    """Label ``points`` (data coordinates, linear axes with limits set) without overlaps.

    Labels sit right of their point (left of it near the right edge), moved
    apart vertically to at least ``gap`` of the axes height, with a leader line
    to the point. Returns the text artists.
    """
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    frac = [((x - x0) / (x1 - x0), (y - y0) / (y1 - y0)) for x, y in points]
    order = sorted(range(len(frac)), key=lambda i: frac[i][1])
    ys: dict[int, float] = {}
    last = -np.inf
    for i in order:
        ys[i] = last = max(frac[i][1], last + gap)
    shift = max(0.0, last - 0.97)  # keep the top label inside the axes
    texts = []
    for i, name in enumerate(names):
        fx, fy = frac[i]
        right = fx > 0.8
        texts.append(
            ax.annotate(
                name,
                (fx, fy),
                xytext=(fx + (-0.06 if right else 0.06), ys[i] - shift),
                xycoords="axes fraction",
                textcoords="axes fraction",
                ha="right" if right else "left",
                va="center",
                fontsize=8,
                arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6, "connectionstyle": _leader},
            )
        )
    return texts


def _leader(posA, posB, shrinkA=0.0, shrinkB=0.0, patchA=None, patchB=None):
    """A straight leader line, as matplotlib's ``arc3`` connection draws it, cut by arithmetic instead of bisection.

    Display coordinates. Starts where the line from ``posA`` (the label's
    centre) leaves ``patchA`` (the padded box of the label), unless ``posB``
    is inside it; then shortened by ``shrinkA`` and ``shrinkB`` pixels at its
    ends. ``arc3`` found these cuts by bisection in Python, 3 ms a label.
    ``patchB`` (never set by ``annotate``) is not used.
    """
    from matplotlib.path import Path

    a, b = np.asarray(posA, float), np.asarray(posB, float)
    d = b - a
    length = float(np.hypot(*d))
    if length == 0:
        return Path([a, b])
    start = 0.0
    if patchA is not None:
        box = patchA.get_window_extent()
        if box.contains(*a) and not box.contains(*b):
            edges = ((box.x0, box.x1), (box.y0, box.y1))
            start = min((edge - a[i]) / d[i] for i in (0, 1) if d[i] for edge in edges[i] if (edge - a[i]) / d[i] > 0)
    # Each cut as arc3's: only where the rest of the line leaves the circle (else its bisection fails: no cut).
    if (1 - start) * length > shrinkA:
        start += shrinkA / length
    stop = 1 - shrinkB / length if (1 - start) * length > shrinkB else 1.0
    return Path([a + start * d, a + stop * d])


@functools.cache
def _canvas_class():
    """An Agg canvas whose renderers share one mathtext parser and keep what text layout they can.

    Each new renderer brings its own parser, and so its own cache of parsed
    log-axis tick labels (``$10^{3}$``): every figure parsed them again (a
    fifth of :func:`save_all`'s time). Shared, they are parsed once a process.
    The renderer (:func:`_renderer_class`) keeps font metrics and glyph layouts.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    shared = {}
    renderer_class = _renderer_class()

    class Canvas(FigureCanvasAgg):
        def get_renderer(self):
            w, h = self.get_width_height(physical=True)
            if self._lastKey != (w, h, self.figure.dpi):  # as FigureCanvasAgg.get_renderer, with our renderer
                self.renderer = renderer_class(w, h, self.figure.dpi)
                self._lastKey = w, h, self.figure.dpi
            self.renderer.mathtext_parser = shared.setdefault("parser", self.renderer.mathtext_parser)
            return self.renderer

    return Canvas


@functools.cache
def _renderer_class():
    """An Agg renderer that keeps, per process, what matplotlib works out anew for every text it draws or measures.

    * the font's line metrics (two font-table reads for every text layout), through the renderer hook
      ``_get_font_height_metrics`` that ``Text`` asks first (matplotlib >= 3.11; the same arithmetic);
    * the glyph layout of a string (``FT2Font._layout``, a third of a millisecond or more a string).

    Where matplotlib lacks these internals (before 3.11) it draws as the plain renderer. Same pixels either way.
    """
    from matplotlib.backends.backend_agg import RendererAgg, get_hinting_flag
    from matplotlib.font_manager import fontManager, get_font
    from matplotlib.ft2font import FT2Font

    layouts: dict = {}  # unbounded: a process draws the same few hundred labels again and again
    heights: dict = {}
    own_layout = hasattr(FT2Font, "_layout") and hasattr(RendererAgg, "_draw_text_glyphs_and_boxes")

    class Renderer(RendererAgg):
        def _get_font_height_metrics(self, prop):
            key = (prop.copy(), self.dpi)
            if key not in heights:
                heights[key] = _font_height_metrics(get_font(fontManager._find_fonts_by_props(prop)), prop, self.dpi)
            return heights[key]

        def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
            if ismath or not own_layout:
                return super().draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)
            features = mtext.get_fontfeatures() if mtext is not None else None
            language = mtext.get_language() if mtext is not None else None
            key = (s, prop.copy(), self.dpi, features, language, threading.get_ident())  # fonts are per thread
            if key not in layouts:
                font = self._prepare_font(prop)
                layouts[key] = font._layout(s, flags=get_hinting_flag(), features=features, language=language)
            size = prop.get_size_in_points()
            glyphs = ((_kept_glyphs(item.ft_object), size, item.glyph_index, 0, 1, item.x, item.y)
                      for item in layouts[key])  # fmt: skip
            self._draw_text_glyphs_and_boxes(gc, x, y, angle, glyphs, [])

        def draw_mathtext(self, gc, x, y, s, prop, angle):
            if not own_layout:
                return super().draw_mathtext(gc, x, y, s, prop, angle)
            parse = self.mathtext_parser.parse(s, self.dpi, prop, antialiased=gc.get_antialiased())
            glyphs = ((_kept_glyphs(font), size, index, 0, 1, dx, dy) for font, size, _, index, dx, dy in parse.glyphs)
            self._draw_text_glyphs_and_boxes(gc, x, y, angle, glyphs, parse.rects)

    return Renderer


@functools.cache
def _kept_glyphs(font):
    """``font`` as ``RendererAgg._draw_text_glyphs_and_boxes`` uses it, each glyph rendered once per sub-pixel place.

    Matplotlib (>= 3.11) renders every glyph of every text at its place in
    1/64 pixel; a glyph at the same fraction of a pixel, another whole pixels
    away, is the same bitmap moved (FreeType adds the offset last), so it is
    kept by that fraction and moved. One per font (matplotlib keeps a font per thread).
    """
    return _KeptGlyphs(font)


class _KeptGlyphs:
    KEEP = 20_000  # bitmaps of a few hundred bytes; the figures of a trial need a few thousand

    def __init__(self, font):
        self.font = font
        self.bitmaps: dict = {}
        self.size = self.matrix = self.offset = None

    def set_size(self, size, dpi):
        self.size = (size, dpi)

    def _set_transform(self, matrix, offset):
        self.matrix, self.offset = matrix, offset

    def _render_glyph(self, index, flags, mode):
        (x, y), matrix = self.offset, self.matrix  # x, y in 1/64 pixel
        key = (self.size, matrix.tobytes(), x % 64, y % 64, index, flags, mode)
        if key not in self.bitmaps:
            if len(self.bitmaps) >= self.KEEP:
                self.bitmaps.clear()
            self.font.set_size(*self.size)
            self.font._set_transform(matrix, [x % 64, y % 64])
            bitmap = self.font._render_glyph(index, flags, mode)
            self.bitmaps[key] = (bitmap.buffer.copy(), bitmap.left, bitmap.top)
        buffer, left, top = self.bitmaps[key]
        return _Bitmap(buffer.copy(), left + x // 64, top + y // 64)  # a copy: the caller may scale it in place


class _Bitmap(typing.NamedTuple):
    buffer: np.ndarray
    left: int
    top: int


def _font_height_metrics(font, prop, dpi: float):
    """Ascent, descent and line gap in pixels from the font's tables, as ``Text._get_layout`` works them out."""
    for table_name, gap, ascent, descent in (("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
                                             ("hhea", "lineGap", "ascent", "descent")):  # fmt: skip
        table = font.get_sfnt_table(table_name)
        if table is not None:
            scale = 1 / font.get_sfnt_table("head")["unitsPerEm"] * prop.get_size_in_points() * dpi / 72
            return table[ascent] * scale, -table[descent] * scale, table[gap] * scale
    return None, None, None


class _KeptAxis:
    """Draws an axis (ticks, tick labels, axis label) from a kept image when its view and place recur.

    Drawing an axis was 40 % of :func:`save_all`'s time, and in a kept frame
    most axes look the same from trace to trace: fixed limits (information
    plane, colour bar) or the same epochs (every epoch axis of a sweep's trials).
    Every draw goes through one layer of its own (``start_filter``), so a kept
    image gives the same pixels as drawing again, and a new frame the same
    pixels as a kept one. The key is all that moves an axis in a kept frame:
    its view interval and the place of its axes on the canvas.
    """

    KEEP = 8  # images kept per axis: a process draws trials of a few sweeps at most

    def __init__(self, axis):
        self.axis = axis
        self.images: dict = {}  # key -> (x, y, RGBA rows bottom up) or None where nothing was drawn

    def __call__(self, renderer):
        axis = self.axis
        if not isinstance(renderer, _renderer_class()):  # vector output (savefig as PDF, SVG): drawn as it is
            return type(axis).draw(axis, renderer)
        if not axis.get_visible():
            return
        key = (tuple(axis.get_view_interval()), tuple(axis.axes.bbox.bounds), renderer.width, renderer.height,
               renderer.dpi)  # fmt: skip
        if key in self.images:
            if self.images[key] is not None:
                x, y, rows = self.images[key]
                gc = renderer.new_gc()
                renderer.draw_image(gc, x, y, rows)
                gc.restore()
        else:
            if len(self.images) >= self.KEEP:
                del self.images[next(iter(self.images))]
            self.images[key] = self._draw(renderer)
        axis.stale = False

    def _draw(self, renderer):
        """Draw the axis onto a clear layer, then that onto the canvas; return what ``draw_image`` drew, or None."""
        from matplotlib.cbook import _get_nonzero_slices

        kept = []

        def keep(_, dpi):  # stop_filter draws what this returns, cropped as here (its argument is a float copy)
            return kept[0], 0, 0

        renderer.start_filter()
        try:
            type(self.axis).draw(self.axis, renderer)
        finally:
            layer = np.asarray(renderer.buffer_rgba())
            rows, cols = _get_nonzero_slices(layer[..., 3])
            kept.append(layer[rows, cols].copy())
            renderer.stop_filter(keep)
        return (cols.start, int(renderer.height) - rows.stop, kept[0][::-1]) if kept[0].size else None


def _keep_axes(fig) -> None:
    """Draw every axis of ``fig`` through a :class:`_KeptAxis` (those not yet)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if not isinstance(axis.draw, _KeptAxis):
                axis.draw = _KeptAxis(axis)


def _figure(width: float, height: float, ncols: int = 1, *, left=0.75, right=0.2, bottom=0.55, top=0.4, gap=0.8):
    """A ``width`` x ``height`` inch Figure on its own Agg canvas, ``ncols`` axes in a row, fixed margins in inches.

    Fixed margins instead of constrained layout, which measured every tick label
    of every axis again at each save (more than half of :func:`save_all`'s time);
    ``gap`` is the space between two axes, room for the right one's y label.
    No pyplot: no global figure registry to close figures in.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    _canvas_class()(fig)
    axes = fig.subplots(1, ncols)
    _keep_axes(fig)
    axes_width = (width - left - right - (ncols - 1) * gap) / ncols
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=gap / axes_width)  # fmt: skip
    return fig, axes


def _legend(ax, **kwargs) -> list:
    """``ax.legend(**kwargs)``, kept in the frame for the next trace where that one's would look the same.

    A new legend lays out its entries anew (a quarter of the time to add a
    figure's data). One of lines only whose entries the next trace's equal
    (labels, colours, line styles, widths, markers, in order) is kept, and
    finds its best place among that trace's data when drawn. Returns what to
    remove after the save: a legend that is not kept, else nothing.
    """
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    look = None
    if all(isinstance(h, Line2D) for h in handles):
        styles = [(h.get_color(), h.get_linestyle(), h.get_linewidth(), h.get_marker(), h.get_markersize(),
                   h.get_alpha()) for h in handles]  # fmt: skip
        look = (labels, sorted(kwargs.items()), styles)
    kept = ax.get_legend()
    if kept is not None and look is not None and getattr(kept, "_ib_look", None) == look:
        return []
    if kept is not None:
        kept.remove()
    legend = ax.legend(handles, labels, **kwargs)
    legend._ib_look = look
    return [] if look is not None else [legend]


def _forget(ax) -> None:
    """Start ``ax`` afresh for new data: data limits from the frame's own lines only, colour cycle from the start.

    The view is first set to one fixed range (autoscaling stays on): a bound line (``axhline``) enters the
    data limits through the current view, so after another trace its limit could differ in the last bit,
    and an axes edge on a half pixel be drawn one pixel off.
    """
    ax.set_xlim(1, 10, auto=None)
    ax.set_ylim(1, 10, auto=None)
    ax.relim()
    ax.set_prop_cycle(None)


def information_plane(trace, estimator: int = 0):
    """I(Y;T) against I(X;T), one curve per layer, points coloured by epoch on a log scale (bits).

    Axes are bounded by H(X) and H(Y) of the measured inputs (dashed lines).
    Each layer has its own marker and a label at its last point, moved clear
    of the others (:func:`spread_labels`).
    """
    fig = _plane_frame(*_plane_key(trace))
    _plane_data(fig, trace, estimator)
    return fig


def _plane_key(trace) -> tuple:
    return float(trace.h_x), float(trace.h_y), int(np.max(trace.epochs, initial=0))


def _plane_frame(h_x: float, h_y: float, last_epoch: int):
    """The information plane without data: limits, bounds H(X) and H(Y), axis labels, colour bar of the epochs."""
    from matplotlib.cm import ScalarMappable

    fig, ax = _figure(7, 5, right=0.1)
    ax.axvline(h_x, ls="--", color="0.5", lw=0.8, zorder=2.5)  # over the points
    ax.axhline(h_y, ls="--", color="0.5", lw=0.8, zorder=2.5)
    ax.set_xlim(0, h_x * 1.03)
    ax.set_ylim(0, h_y * 1.05)
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(Y;T) [bits]")
    fig.colorbar(ScalarMappable(epoch_norm([last_epoch]), "viridis"), ax=ax, label="epoch + 1 (log scale)")
    _keep_axes(fig)  # the colour bar's
    return fig


def _plane_data(fig, trace, estimator: int) -> list:
    """Draw one estimator's curves, points and layer labels into a :func:`_plane_frame`; return what was drawn."""
    ax = fig.axes[0]
    epochs = np.asarray(trace.epochs)
    ixt, iyt = np.stack(trace.ixt)[:, estimator], np.stack(trace.iyt)[:, estimator]
    norm = epoch_norm(epochs)
    drawn: list = []
    for j in range(len(trace.layers)):
        drawn += ax.plot(ixt[:, j], iyt[:, j], color="0.75", lw=0.8, zorder=1)
        drawn.append(ax.scatter(ixt[:, j], iyt[:, j], c=epochs + 1, cmap="viridis", norm=norm, s=14, zorder=2,
                                marker=MARKERS[j % len(MARKERS)], linewidths=0))  # fmt: skip
    last = [np.flatnonzero(np.isfinite(ixt[:, j]) & np.isfinite(iyt[:, j])) for j in range(len(trace.layers))]
    labelled = [j for j in range(len(trace.layers)) if len(last[j])]  # a layer with no finite point has no label
    points = [(ixt[last[j][-1], j], iyt[last[j][-1], j]) for j in labelled]
    drawn += spread_labels(ax, points, [trace.layers[j] for j in labelled])
    ax.set_title(f"Information plane ({trace.estimators[estimator]}); labels at the last epoch")
    return drawn


def information_vs_epoch(trace, estimator: int = 0):
    """I(X;T) and I(Y;T) in bits against epoch (log axis), one line per layer."""
    fig = _epoch_frame(*_epoch_key(trace))
    _epoch_data(fig, trace, estimator)
    return fig


def _epoch_key(trace) -> tuple:
    return float(trace.h_x), float(trace.h_y)


def _epoch_frame(h_x: float, h_y: float):
    """Information against epoch without data: log epoch axes, bounds H(X) and H(Y), axis labels."""
    fig, axes = _figure(11, 4, 2)
    for ax, label, bound in ((axes[0], "I(X;T) [bits]", h_x), (axes[1], "I(Y;T) [bits]", h_y)):
        ax.axhline(bound, ls="--", color="0.5", lw=0.8, zorder=2.5)  # over the curves
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    return fig


def _epoch_data(fig, trace, estimator: int) -> list:
    """Draw one estimator's curves and legend into an :func:`_epoch_frame`; return what was drawn."""
    epochs = np.maximum(np.asarray(trace.epochs), 0.5)  # epoch 0 drawn at 0.5 on the log axis
    back = np.asarray(trace.reasons) == "backtracked"
    drawn: list = []
    for ax, values in zip(
        fig.axes, (np.stack(trace.ixt)[:, estimator], np.stack(trace.iyt)[:, estimator]), strict=True
    ):
        _forget(ax)
        for j, name in enumerate(trace.layers):
            st = style(j)
            drawn += ax.plot(epochs, values[:, j], label=name, lw=1.2, color=st["color"], linestyle=st["linestyle"])
            if back.any():
                drawn += ax.plot(epochs[back], values[back, j], "x", ms=3, color=st["color"])
    drawn += _legend(fig.axes[1], fontsize=8)
    note = "; x: backtracked epochs" if "backtracked" in trace.reasons else ""
    fig.suptitle(f"Information vs epoch ({trace.estimators[estimator]}){note}")
    return drawn


def learning_curves(trace):
    """Per-epoch train/test loss (log scale) and accuracy."""
    fig = _curves_frame()
    _curves_data(fig, trace)
    return fig


def _curves_frame():
    fig, (ax_loss, ax_acc) = _figure(11, 4, 2, top=0.2)
    ax_loss.set_yscale("log")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
    return fig


def _curves_data(fig, trace) -> list:
    ax_loss, ax_acc = fig.axes
    h = np.asarray(trace.history)
    epochs = np.arange(len(h))
    drawn: list = []
    for ax in (ax_loss, ax_acc):
        _forget(ax)
    for i, key in enumerate(trace.history_keys):
        drawn += (ax_loss if key in _LOSSES else ax_acc).plot(epochs, h[:, i], label=key, lw=1)
    return drawn + _legend(ax_loss, fontsize=8) + _legend(ax_acc, fontsize=8)


def _log_binned(epochs, values, n_bins: int = 60):
    """Positive ``values`` (n, k) in log-spaced epoch bins: bin centres (b,), geometric means, 10th, 90th percentiles.

    ``epochs`` (n,) increasing. Values not finite or not positive are left
    out; where none is left in a bin, that column's statistics are NaN. Bins
    without epochs are dropped. The statistics are (b, k) arrays.
    """
    edges = np.unique(np.geomspace(1, epochs.max() + 1, n_bins + 1).astype(int))
    starts = np.searchsorted(epochs, edges)  # epochs increase: bin b holds rows starts[b]:starts[b + 1]
    full = np.flatnonzero(np.diff(starts))
    v = np.where(np.isfinite(values) & (values > 0), values, np.nan).astype(np.float64)
    blocks = [v[starts[b] : starts[b + 1]] for b in full]
    with warnings.catch_warnings():  # a column with no positive value in a bin: NaN there, no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.exp(np.reshape([np.nanmean(np.log(block), axis=0) for block in blocks], (len(full), v.shape[1])))
        pct = np.reshape([_percentiles(block, [10, 90]) for block in blocks], (len(full), 2, v.shape[1]))
    return np.sqrt(edges[full] * edges[full + 1]), mean, pct[:, 0], pct[:, 1]


def _percentiles(block, q):
    """``np.nanpercentile(block, q, axis=0)``; ``np.percentile`` where nothing is NaN (many times faster)."""
    return np.nanpercentile(block, q, axis=0) if np.isnan(block).any() else np.percentile(block, q, axis=0)


def gradients(trace):
    """Per-layer minibatch-gradient mean and std norms, their SNR, and the loss, against epoch (log-log).

    As Shwartz-Ziv & Tishby (2017) Fig. 4. Every epoch's values are summarised
    in log-spaced epoch bins: the geometric mean as a line (mean norm solid,
    std norm dashed), the 10th-90th percentile of the SNR as a band.
    """
    binned = _binned_gradients(trace)
    fig = _gradients_frame(*_gradients_key(trace, binned))
    _gradients_data(fig, trace, binned)
    return fig


def _binned_gradients(trace):
    """Bin centres (b,) and the geometric mean, 10th and 90th percentile (b, n_layers, 3) of every series."""
    g = np.asarray(trace.grad)[1:]  # epoch 0 trained on no batch
    x, *stats = _log_binned(np.arange(1, len(g) + 1), g.reshape(len(g), -1))
    return x, *(a.reshape(len(x), *g.shape[1:]) for a in stats)


def _gradients_key(trace, binned) -> tuple[bool, bool, bool]:
    """Which panels (norms, SNR, loss) have data: only those get log scales (an empty one has no log scale)."""
    mean = binned[1]
    loss = len(trace.history) > 1 and any(key in _LOSSES for key in trace.history_keys)
    return bool(np.isfinite(mean[..., :2]).any()), bool(np.isfinite(mean[..., 2]).any()), loss


def _gradients_frame(norms: bool, snr: bool, loss: bool):
    fig, axes = _figure(15, 4.2, 3, left=0.95, gap=1.15)  # room for minor log labels (6×10⁻¹) and an axis label
    for ax, label, has_data in zip(
        axes, ("gradient norm", "SNR = ||mean|| / ||std||", "loss"), (norms, snr, loss), strict=True
    ):
        if has_data:
            ax.set_xscale("log")
            ax.set_yscale("log")
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    fig.suptitle("Minibatch gradients per layer (kernel weights): drift (SNR high) and diffusion (SNR low)")
    return fig


def _gradients_data(fig, trace, binned) -> list:
    ax_norm, ax_snr, ax_loss = fig.axes[:3]
    x, mean, lo, hi = binned
    drawn: list = []
    for ax in (ax_norm, ax_snr, ax_loss):
        _forget(ax)
    for j, name in enumerate(trace.layers):
        colour = style(j)["color"]
        for ax, k, line, label in ((ax_norm, 0, "-", f"{name} mean"), (ax_norm, 1, "--", f"{name} std"),
                                   (ax_snr, 2, "-", name)):  # fmt: skip
            ok = np.isfinite(mean[:, j, k])  # zeros (full-batch std) have no place on a log axis
            drawn += ax.plot(x[ok], mean[ok, j, k], line, color=colour, lw=1.5, label=label)
            if ax is ax_snr:
                drawn.append(ax.fill_between(x[ok], lo[ok, j, k], hi[ok, j, k], color=colour, alpha=0.15, lw=0))
    if not np.isfinite(np.asarray(trace.grad)[1:, :, 2]).any():
        drawn.append(ax_snr.text(0.5, 0.5, "SNR undefined:\nstd is 0 (one batch per epoch)", ha="center",
                                 transform=ax_snr.transAxes))  # fmt: skip
    h = np.asarray(trace.history)
    for i, key in enumerate(trace.history_keys):
        if key in _LOSSES:
            drawn += ax_loss.plot(np.arange(1, len(h)), h[1:, i], lw=1, label=key)
    return drawn + _legend(ax_norm, fontsize=7, ncol=2) + _legend(ax_snr, fontsize=7) + _legend(ax_loss, fontsize=7)


def _write_png(fig, path) -> None:
    """Draw ``fig`` and write it as an RGBA PNG of its size in pixels, at its DPI, as ``savefig`` would.

    The pixels are ``savefig``'s; the encoding is not Pillow's, which tries
    all five PNG row filters on every row and took twice as long at zlib level
    :data:`PNG_COMPRESSION` for files 0-7 % smaller. Every row here takes the
    "Up" filter (the difference to the row above, computed for the whole image
    at once), which suits figures: mostly rows that repeat the row above.
    """
    import zlib

    import matplotlib

    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    height, width = rgba.shape[:2]
    rows = np.empty((height, 1 + 4 * width), np.uint8)
    rows[:, 0] = 2  # filter type "Up"; the first row's "above" is zeros
    rows[0, 1:] = rgba[0].reshape(-1)
    np.subtract(rgba[1:].reshape(height - 1, -1), rgba[:-1].reshape(height - 1, -1), out=rows[1:, 1:])
    ppm = int(DPI / 0.0254 + 0.5)  # pixels per metre, rounded as Pillow does

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    software = f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 6, 0, 0, 0])))
        f.write(chunk(b"tEXt", b"Software\0" + software.encode("latin-1")))
        f.write(chunk(b"pHYs", ppm.to_bytes(4, "big") * 2 + b"\x01"))
        f.write(chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_COMPRESSION)))
        f.write(chunk(b"IEND", b""))


_FRAMES = threading.Lock()  # a frame is drawn into by one save_all at a time


@functools.lru_cache(maxsize=8)
def _frame(build, *key):
    """``build(*key)``, kept for the next figure of the same kind and key (module docstring)."""
    return build(*key)


def save_all(trace, directory) -> list:
    """Write every figure as PNG into ``directory``; return the paths (reusing kept frames, module docstring)."""
    from pathlib import Path

    trace = trace.sorted()
    out = Path(directory)
    figures = [("learning_curves.png", _curves_frame, (), functools.partial(_curves_data, trace=trace))]
    if trace.grad is not None and len(trace.grad) > 1:
        binned = _binned_gradients(trace)
        figures.append(("gradients.png", _gradients_frame, _gradients_key(trace, binned),
                        functools.partial(_gradients_data, trace=trace, binned=binned)))  # fmt: skip
    for i, name in enumerate(trace.estimators):
        figures.append((f"info_plane_{name}.png", _plane_frame, _plane_key(trace),
                        functools.partial(_plane_data, trace=trace, estimator=i)))  # fmt: skip
        figures.append((f"info_vs_epoch_{name}.png", _epoch_frame, _epoch_key(trace),
                        functools.partial(_epoch_data, trace=trace, estimator=i)))  # fmt: skip
    with _FRAMES:
        for filename, build, key, draw in figures:
            fig = _frame(build, *key)
            try:
                drawn = draw(fig)
                _write_png(fig, out / filename)
                for artist in drawn:
                    artist.remove()
            except BaseException:
                _frame.cache_clear()  # a frame something went wrong in is not drawn into again
                raise
    return [out / filename for filename, *_ in figures]
