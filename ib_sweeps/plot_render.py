"""Agg rendering for :mod:`ib_sweeps.plots` that keeps what recurs from figure to figure, with matplotlib's pixels.

A process draws the figures of many trials (trial arrays, Ray workers), and
most of a figure's drawing time went to what looks the same each time:

* every axis (ticks, tick labels, axis label) is drawn onto a layer of its own
  and kept as an image by its view and place (:class:`KeptAxis`, :func:`keep_axes`);
* the renderer (:func:`canvas_class`) keeps font line metrics, glyph layouts and
  glyph bitmaps per sub-pixel place (matplotlib >= 3.11 internals; plain
  drawing where they are missing);
* layer labels' leader lines are cut by arithmetic (:func:`leader`);
* PNGs are written with one row filter (:func:`write_png`).

The pixels are matplotlib's to 1 of 255 in a few pixels (tests/test_plots.py
compares them with plain matplotlib's; benchmarks/bench_plots.py prints the
differences and the time).
"""

from __future__ import annotations

import functools
import threading
import typing

import numpy as np


def leader(posA, posB, shrinkA=0.0, shrinkB=0.0, patchA=None, patchB=None):
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
def canvas_class():
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


class KeptAxis:
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


def keep_axes(fig) -> None:
    """Draw every axis of ``fig`` through a :class:`KeptAxis` (those not yet)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if not isinstance(axis.draw, KeptAxis):
                axis.draw = KeptAxis(axis)


def write_png(fig, path, compress_level: int = 1) -> None:
    """Draw ``fig`` and write it as an RGBA PNG of its size in pixels, at its DPI, as ``savefig`` would.

    The pixels are ``savefig``'s; the encoding is not Pillow's, which tries
    all five PNG row filters on every row and took twice as long at zlib level
    zlib level 1 for files 0-7 % smaller. Every row here takes the
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
    ppm = int(fig.dpi / 0.0254 + 0.5)  # pixels per metre, rounded as Pillow does

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    software = f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 6, 0, 0, 0])))
        f.write(chunk(b"tEXt", b"Software\0" + software.encode("latin-1")))
        f.write(chunk(b"pHYs", ppm.to_bytes(4, "big") * 2 + b"\x01"))
        f.write(chunk(b"IDAT", zlib.compress(rows.tobytes(), compress_level)))
        f.write(chunk(b"IEND", b""))
