"""What every figure shares: how a figure is made and placed, turned into pixels, and labelled.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas of their own (never pyplot,
whose global state two users of a server would share) and turned into RGB arrays with ``to_rgb``.
"""

from __future__ import annotations

import functools
import io
import unicodedata
from collections.abc import Sequence

import numpy as np
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

DIVERGING = "coolwarm"  # red = positive, blue = negative, white = 0
DPI = 100


class NotebookFigure(Figure):
    """A figure that Jupyter shows when a cell returns it, without pyplot or ``%matplotlib inline``.

    IPython asks an object for ``_repr_png_``; a plain ``Figure`` made outside pyplot has none, so a
    notebook would print ``<Figure size 640x480 with 1 Axes>`` instead of the picture.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` × ``height`` inches whose constrained layout places its axes."""
    figure = NotebookFigure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def fixed_figure(width: float, height: float) -> Figure:
    """A figure without a layout engine: its axes are placed by hand (``place``).

    For figures redrawn on every request. The constrained layout measures every label before it
    draws, which for a heatmap with 64 token labels cost more than the drawing itself.
    """
    figure = NotebookFigure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def place(figure: Figure, left: float, right: float, bottom: float, top: float, colorbar: bool = False):
    """Axes with margins given in inches (and, with ``colorbar``, a thin colour-bar axes at its right).

    Returns the axes, or (axes, colour-bar axes).
    """
    width, height = figure.get_size_inches()
    bar_room = 0.9 if colorbar else 0.0  # the bar, its ticks and its label
    ax = figure.add_axes(
        (left / width, bottom / height, (width - left - right - bar_room) / width, (height - bottom - top) / height)
    )
    if not colorbar:
        return ax
    cax = figure.add_axes(
        ((width - right - bar_room + 0.15) / width, bottom / height, 0.14 / width, (height - bottom - top) / height)
    )
    return ax, cax


def label_room(labels: Sequence[str], fontsize: float) -> float:
    """Inches a column of tick labels needs: about 0.6 em per character, as DejaVu Sans sets them."""
    longest = max((len(str(label)) for label in labels), default=1)
    return 0.6 * fontsize / 72 * longest + 0.1


def feature_ticks(n: int) -> list[int]:
    """Which of ``n`` numbered columns (features, layers) get a tick: all of a few, every 5th or 10th of many."""
    step = 1 if n <= 12 else (5 if n <= 40 else 10)
    return list(range(0, n, step))


def to_rgb(figure: Figure) -> np.ndarray:
    """Render a figure to an (H, W, 3) uint8 array."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def tile_grid(tiles: np.ndarray, columns: int, gap: int = 1, fill: float = np.nan) -> np.ndarray:
    """Lay (N, h, w) tiles out as one (rows*(h+gap)-gap, columns*(w+gap)-gap) mosaic."""
    count, h, w = tiles.shape
    rows = -(-count // columns)
    mosaic = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), fill, dtype=np.float32)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        mosaic[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    return mosaic


# --- characters the figures' font can draw ----------------------------------------------------------
# Here, not with the live panels' stamped text: static figures write tokens and sentences through
# matplotlib with the same DejaVu Sans, and the same characters are missing there.

_NO_SUCH_CHARACTER = "\U0010fffd"  # a private-use code point no font draws: the font's "missing glyph" box


def _glyph_pixels(font: ImageFont.FreeTypeFont, char: str) -> bytes:
    picture = Image.new("L", (32, 32))
    ImageDraw.Draw(picture).text((4, 4), char, font=font, fill=255)
    return picture.tobytes()


@functools.lru_cache(maxsize=4096)
def _has_glyph(font_path: str, char: str) -> bool:
    font = ImageFont.truetype(font_path, 16)  # a font of its own: FreeType faces are not shared between threads
    return char.isspace() or _glyph_pixels(font, char) != _glyph_pixels(font, _NO_SUCH_CHARACTER)


def drawable(text: str, font: ImageFont.FreeTypeFont | None = None) -> str:
    """``text`` with each character the font cannot draw spelled out, so a label never shows an empty box.

    The server's figures use matplotlib's DejaVu Sans, which has no emoji and no CJK: a symbol becomes its
    Unicode name (🧠 -> ``:brain:``), another character its code point (本 -> ``U+672C``), and invisible
    joiners and variation selectors are dropped. The browser, with its own fonts, shows the characters.
    """
    path = font.path if font is not None else font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    if text.isascii():
        return text
    spelled = []
    for char in text:
        if _has_glyph(path, char):
            spelled.append(char)
        elif unicodedata.category(char) in (
            "Cf",
            "Mn",
            "Me",
        ):  # zero-width joiners, variation selectors, combining marks
            continue
        elif unicodedata.category(char).startswith("S"):
            spelled.append(f":{unicodedata.name(char, f'U+{ord(char):04X}').lower()}:")
        else:
            spelled.append(f"U+{ord(char):04X}")
    return "".join(spelled)
