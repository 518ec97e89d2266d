"""Live panels: figures built once and redrawn on every request, the pools that lend them, and their stamped text.

One contract for every panel: ``update(...)`` takes the new numbers and returns the picture as
(H, W, 3) uint8 pixels; ``figure`` holds the last drawing. A panel whose changing artists are
``animate``-d redraws only those, on top of a cached background (blitting): that is what makes a
redraw take about a millisecond instead of tens. A panel whose layout changes with its numbers (a
heatmap as tall as its text) animates nothing and is drawn whole.

Text that changes on every update is stamped on the rendered pixels with Pillow through
``LivePanel.stamp``, at positions measured by ``LivePanel.positions``: Pillow sets a short label in
a few microseconds, matplotlib in about a millisecond, and matplotlib's drawing also gives up
Python's interpreter lock glyph by glyph, so on a busy server each label waited its turn again and
again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from PIL import Image, ImageDraw, ImageFont

from superpos_core.figures.base import DPI, to_rgb


def pillow_font(points: float, bold: bool = False) -> ImageFont.FreeTypeFont:
    """Matplotlib's own DejaVu Sans for Pillow, at ``points`` on a figure of ``DPI``: for text stamped on rendered pixels.

    A new font object each time: a panel keeps its own, as a FreeType face is not shared between threads.
    """
    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal"))
    return ImageFont.truetype(path, round(points * DPI / 72))


def pixels_from_top(transform, points: Sequence[tuple[float, float]], height: float) -> list[tuple[float, float]]:
    """Where ``points`` (in ``transform``'s coordinates) land on a rendered picture ``height`` pixels tall, as (x, y) from its top left.

    Matplotlib counts display pixels up from the bottom; Pillow, stamping on the picture, down from the top.
    """
    return [(x, height - y) for x, y in transform.transform(points)]


class LivePanel:
    """A figure redrawn for each request; subclasses build it in ``__init__`` and draw it in ``update``."""

    def __init__(self, figure: Figure):
        self.figure = figure
        self.animated: list = []
        self._background = None
        self._positions: dict[str, list[tuple[float, float]]] = {}  # name -> label positions, see ``positions``

    def animate(self, artist):
        if isinstance(artist, AxesImage):
            # A blitted image is painted over the cached frame lines; hide them so that a blitted
            # frame is pixel-for-pixel what a full redraw would give.
            artist.axes.spines[:].set_visible(False)
        artist.set_animated(True)
        self.animated.append(artist)
        return artist

    def draw_background(self) -> None:
        """Draw everything that is not animated, once (the layout, axes and labels: most of the cost)."""
        if self._background is None and self.animated:
            self.figure.canvas.draw()
            self._background = self.figure.canvas.copy_from_bbox(self.figure.bbox)

    def render(self) -> np.ndarray:
        """The figure as (H, W, 3) uint8 pixels: the animated artists over the cached background, or all of it."""
        if not self.animated:  # drawn whole, and perhaps laid out anew: labels must be measured again
            self._positions.clear()
            return to_rgb(self.figure)
        canvas = self.figure.canvas
        self.draw_background()
        canvas.restore_region(self._background)
        for artist in self.animated:
            self.figure.draw_artist(artist)
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    def positions(
        self, name: str, transform, points: Sequence[tuple[float, float]], height: int
    ) -> list[tuple[float, float]]:
        """Where ``points`` land on the rendered picture (``pixels_from_top``), measured once and kept under ``name``.

        The panel's one cache of label positions. A blitted panel's layout is fixed once its
        background is drawn, so its labels are measured at the first update only; a panel drawn
        whole forgets them at each ``render``.

        Args:
            name: which labels (a panel may stamp several sets).
            transform: the coordinates ``points`` are given in, e.g. ``ax.transData``.
            points: (x, y) pairs in those coordinates.
            height: the rendered picture's height in pixels.
        """
        if name not in self._positions:
            self._positions[name] = pixels_from_top(transform, points, height)
        return self._positions[name]

    @staticmethod
    def stamp(
        pixels: np.ndarray, labels: Sequence[tuple[tuple[float, float], str]], font: ImageFont.FreeTypeFont, **style
    ) -> np.ndarray:
        """Write each ``(x, y), text`` label (pixels from the top left) on an RGB picture with Pillow; ``style`` goes to ``ImageDraw.text``."""
        picture = Image.fromarray(pixels)
        draw = ImageDraw.Draw(picture)
        for xy, text in labels:
            draw.text(xy, text, font=font, **style)
        return np.asarray(picture)


class PanelPool:
    """Figures kept for reuse by a server: one is lent to each drawing in progress and given back after.

    Building a figure costs more than drawing it, so they are kept; but kept per thread, a server
    that runs requests on dozens of threads ends up with dozens of copies. Lent out, there are only
    ever as many as drawings at the same moment. ``make(key)`` builds one for ``key`` (a model, a size).
    """

    def __init__(self, make: Callable | None = None):
        self.make = make
        self.free: dict = {}  # key -> figures not lent out now
        self.lock = threading.Lock()

    @contextmanager
    def borrow(self, key=None, make: Callable | None = None) -> Iterator:
        """Lend a figure for ``key``, built by ``make`` (default: the pool's) when none is free."""
        with self.lock:
            spare = self.free.get(key)
            panel = spare.pop() if spare else None
        if panel is None:
            panel = (make or self.make)(key)
        try:
            yield panel
        finally:
            with self.lock:
                self.free.setdefault(key, []).append(panel)

    def prepare(self, count: int, key=None, make: Callable | None = None) -> None:
        """Build figures ahead, up to ``count`` free ones for ``key``: the first requests to arrive
        together (a class opening the page at once) then draw at once instead of each building its own."""
        with self.lock:
            missing = count - len(self.free.get(key, []))
        built = [_drawn((make or self.make)(key)) for _ in range(max(0, missing))]
        with self.lock:
            self.free.setdefault(key, []).extend(built)

    def count(self) -> int:
        """Figures kept, lent out or not (lent ones come back)."""
        with self.lock:
            return sum(len(v) for v in self.free.values())


def _drawn(made):
    """A panel, or a dict of panels, with every live panel's background drawn (built ahead, ready to blit)."""
    for panel in made.values() if isinstance(made, dict) else [made]:
        if isinstance(panel, LivePanel):
            panel.draw_background()
    return made
