"""Figures: one function (or one live panel class) per picture, returning matplotlib Figures.

No pyplot anywhere: pyplot keeps global state that two users of a server would share. Figures
are built on ``matplotlib.figure.Figure`` with an Agg canvas and turned into RGB arrays with
``to_rgb``. Live panels (redrawn on every stroke) build their axes once and afterwards redraw only
the artists that change, on top of a cached background (blitting); that is what makes a redraw
take about a millisecond instead of tens.
"""

from __future__ import annotations

import functools
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")  # a server has no screen; must precede any backend use
# Imported now, on the importing thread, though no figure here uses it: seaborn imports pyplot on its first
# figure, often on a background thread, and gradio wraps every request in ``matplotlib.use``, which calls into
# pyplot if it is in ``sys.modules``: a request that meets it half-imported failed ("partially initialized
# module 'matplotlib.pyplot'"). About 0.4 s of start-up.
import matplotlib.pyplot  # noqa: E402, F401
import numpy as np
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
from PIL import Image, ImageDraw, ImageFont

from superpos_core.rank import RankSummary

DIVERGING = "coolwarm"  # red = positive, blue = negative, white = 0
DPI = 100


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def fixed_figure(width: float, height: float) -> Figure:
    """A figure without a layout engine: its axes are placed by hand (``place``).

    For figures redrawn on every request. The constrained layout measures every label before it
    draws, which for a heatmap with 64 token labels cost more than the drawing itself.
    """
    figure = Figure(figsize=(width, height), dpi=DPI)
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


def pillow_font(points: float, bold: bool = False) -> ImageFont.FreeTypeFont:
    """Matplotlib's own DejaVu Sans for Pillow, at ``points`` on a figure of ``DPI``: for text stamped on rendered pixels.

    A new font object each time: a panel keeps its own, as a FreeType face is not shared between threads.
    """
    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal"))
    return ImageFont.truetype(path, round(points * DPI / 72))


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


def pixels_from_top(transform, points: Sequence[tuple[float, float]], height: float) -> list[tuple[float, float]]:
    """Where ``points`` (in ``transform``'s coordinates) land on a rendered picture ``height`` pixels tall, as (x, y) from its top left.

    Matplotlib counts display pixels up from the bottom; Pillow, stamping on the picture, down from the top.
    """
    return [(x, height - y) for x, y in transform.transform(points)]


def stamp_text(
    pixels: np.ndarray, labels: Sequence[tuple[tuple[float, float], str]], font: ImageFont.FreeTypeFont, **style
) -> np.ndarray:
    """Write each ``(x, y), text`` label (pixels from the top left) on an RGB picture with Pillow; ``style`` goes to ``ImageDraw.text``.

    For labels that change on every update of a live panel: Pillow sets a short label in a few
    microseconds, matplotlib in about a millisecond, and matplotlib's drawing also gives up
    Python's interpreter lock glyph by glyph, so on a busy server each label waited its turn again
    and again.
    """
    picture = Image.fromarray(pixels)
    draw = ImageDraw.Draw(picture)
    for xy, text in labels:
        draw.text(xy, text, font=font, **style)
    return np.asarray(picture)


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


# --- figures computed once ------------------------------------------------------------------------


def weight_heatmaps(weights: Mapping[str, np.ndarray]) -> Figure:
    """Seaborn heatmaps of weight matrices (neurons x inputs), coolwarm centred at 0."""
    import seaborn as sns  # here, not at the top: it pulls in scipy.stats, ~2 s of every start-up for one figure

    figure = new_figure(7.0, 2.0 + 1.6 * len(weights))
    axes = figure.subplots(len(weights), 1, squeeze=False)[:, 0]
    for ax, (name, weight) in zip(axes, weights.items()):
        limit = float(np.percentile(np.abs(weight), 99.5))
        sns.heatmap(
            weight,
            ax=ax,
            cmap=DIVERGING,
            center=0,
            vmin=-limit,
            vmax=limit,
            xticklabels=False,
            yticklabels=False,
            rasterized=True,
            cbar_kws={"label": "weight", "shrink": 0.9},
        )
        ax.set_title(f"{name}: {weight.shape[0]} neurons × {weight.shape[1]} inputs")
        ax.set_ylabel("neuron")
        ax.set_xlabel("input" if name != "fc1" else "input pixel (row by row)")
    return figure


def neuron_weight_grid(fc1_weight: np.ndarray, columns: int = 16) -> Figure:
    """Each fc1 neuron's 784 weights as a 28x28 picture: the pattern that excites it most."""
    tiles = fc1_weight.reshape(-1, 28, 28)
    limits = np.abs(tiles).max(axis=(1, 2), keepdims=True)  # each tile on its own symmetric scale
    mosaic = tile_grid(tiles / np.maximum(limits, 1e-12), columns, gap=2)
    rows = -(-len(tiles) // columns)
    figure = new_figure(7.0, 0.6 + 7.0 * rows / columns)
    ax = figure.add_subplot()
    ax.imshow(mosaic, cmap=DIVERGING, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks([c * 30 + 13.5 for c in range(0, columns, 4)], [str(c) for c in range(0, columns, 4)])
    ax.set_yticks([r * 30 + 13.5 for r in range(rows)], [str(r * columns) for r in range(rows)])
    ax.set_ylabel("first neuron in row")
    ax.set_xlabel("+ column")
    ax.set_title("fc1 neurons' weights as images (red excites, blue inhibits)")
    return figure


def spectrum(trained: Mapping[str, RankSummary], baseline: Mapping[str, RankSummary], threshold: float) -> Figure:
    """Singular values on a log axis, trained vs random initialisation, effective ranks marked."""
    figure = new_figure(7.0, 3.0)
    axes = figure.subplots(1, len(trained), squeeze=False)[0]
    for ax, name in zip(axes, trained):
        ours, rand = trained[name], baseline[name]
        index = np.arange(1, len(ours.singular_values) + 1)
        ax.semilogy(index, ours.singular_values, color="C3", lw=2, label="trained")
        ax.semilogy(index, rand.singular_values, color="0.5", lw=1.5, ls="--", label="random init")
        ax.axvline(ours.effective_rank, color="C3", lw=1, ls=":")
        ax.axvline(rand.effective_rank, color="0.5", lw=1, ls=":")
        ax.set_title(
            f"{name}: effective rank {ours.effective_rank}/{ours.size} = {ours.ratio:.2f}\n(random init {rand.effective_rank}/{rand.size} = {rand.ratio:.2f})",
            fontsize=10,
        )
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("singular value index")
        ax.set_ylabel("singular value (log scale)")
        ax.legend(fontsize=8, loc="lower left")
    figure.suptitle(
        f"Dotted lines: effective rank (singular values whose running share of the energy is still below {threshold:.0%})",
        fontsize=9,
    )
    return figure


def training_progress(
    epochs: Sequence[int],
    accuracy: Sequence[float],
    ranks: Mapping[str, Sequence[int]],
    sizes: Mapping[str, int],
    max_epochs: int,
) -> Figure:
    """Test accuracy and effective rank (as a share of the layer's neurons) after each epoch."""
    figure = new_figure(7.0, 2.6)
    left, right = figure.subplots(1, 2)
    left.plot(epochs, [100 * a for a in accuracy], "o-", color="C2")
    left.set_ylabel("test accuracy (%)")
    left.set_title("accuracy climbs", fontsize=10)
    for i, (name, values) in enumerate(ranks.items()):
        right.plot(epochs, [v / sizes[name] for v in values], "o-", color=f"C{i}", label=f"{name} (/{sizes[name]})")
    right.set_ylabel("effective rank / neurons")
    right.set_title("effective rank of the weights", fontsize=10)
    right.legend(fontsize=8, loc="lower left")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, max_epochs + 0.5)
        ax.set_xticks(range(1, max_epochs + 1))
    return figure


# --- live panels: built once, redrawn per stroke by blitting --------------------------------------


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
    def borrow(self, key=None, make: Callable | None = None):
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


class LivePanel:
    """A figure whose changing artists are ``animated`` and redrawn over a cached background."""

    def __init__(self, figure: Figure):
        self.figure = figure
        self.animated: list = []
        self._background = None

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
        if self._background is None:
            self.figure.canvas.draw()
            self._background = self.figure.canvas.copy_from_bbox(self.figure.bbox)

    def render(self) -> np.ndarray:
        canvas = self.figure.canvas
        self.draw_background()
        canvas.restore_region(self._background)
        for artist in self.animated:
            self.figure.draw_artist(artist)
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class ActivationPanel(LivePanel):
    """fc1 (as a 8x16 grid), fc2 (8x8) and the logits, on one shared, fixed colour scale."""

    def __init__(self, limit: float):
        figure = new_figure(7.0, 2.7)
        grid = figure.add_gridspec(2, 3, width_ratios=[16, 8, 0.5], height_ratios=[8, 1.6])
        super().__init__(figure)
        norm = Normalize(-limit, limit)
        shapes = {"fc1": (8, 16), "fc2": (8, 8), "fc3": (1, 10)}
        places = {"fc1": grid[0, 0], "fc2": grid[0, 1], "fc3": grid[1, 0:2]}
        self.images = {}
        for name, shape in shapes.items():
            ax = figure.add_subplot(places[name])
            self.images[name] = self.animate(
                ax.imshow(np.zeros(shape), cmap=DIVERGING, norm=norm, interpolation="nearest", aspect="equal")
            )
            if name == "fc3":
                ax.set_xticks(range(10))
                ax.set_yticks([])
                ax.set_xlabel("logits: digit 0 … 9", fontsize=9)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{name}: {shape[0] * shape[1]} neurons (row by row)", fontsize=9)
        bar = figure.colorbar(self.images["fc1"], cax=figure.add_subplot(grid[:, 2]), extend="both")
        bar.set_label("activation (before ReLU)", fontsize=8)

    def update(self, activations: Mapping[str, np.ndarray]) -> np.ndarray:
        for name, image in self.images.items():
            image.set_data(np.asarray(activations[name]).reshape(image.get_array().shape))
        return self.render()


class SaliencyPanel(LivePanel):
    """The 28x28 input the network sees, and integrated gradients over it for the answer."""

    def __init__(self):
        figure = new_figure(5.0, 2.8)
        super().__init__(figure)
        left, right = figure.subplots(1, 2)
        self.pixels = self.animate(
            left.imshow(np.zeros((28, 28)), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        )
        left.set_title("what the network sees (28×28)", fontsize=9)
        self.ghost = self.animate(
            right.imshow(np.zeros((28, 28)), cmap="gray_r", vmin=0, vmax=3, interpolation="nearest")
        )
        self.heat = self.animate(right.imshow(np.zeros((28, 28, 4)), interpolation="nearest"))
        right.set_title("why: red pushed towards the answer,\nblue pushed against it", fontsize=9)
        for ax in (left, right):
            ax.set_axis_off()
        self._cmap = matplotlib.colormaps[DIVERGING]

    def update(self, pixels: np.ndarray, attributions: np.ndarray) -> np.ndarray:
        self.pixels.set_data(pixels)
        self.ghost.set_data(pixels)
        limit = max(float(np.abs(attributions).max()), 1e-9)
        rgba = self._cmap(0.5 + 0.5 * attributions / limit)
        rgba[..., 3] = np.clip(np.abs(attributions) / limit * 1.6, 0, 1)  # strong = opaque
        self.heat.set_data(rgba)
        return self.render()


class PolysemanticityPanel(LivePanel):
    """For the digit's most active fc1 neurons: their mean firing for each digit class."""

    def __init__(self, class_means: np.ndarray, rows: int = 6):
        figure = new_figure(5.0, 2.9)
        super().__init__(figure)
        self.class_means = class_means  # (10, units) mean ReLU output per digit class
        self.rows = rows
        ax = figure.add_subplot()
        self.image = self.animate(
            ax.imshow(np.zeros((rows, 10)), cmap="viridis", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        )
        ax.set_xticks(range(10))
        ax.set_xlabel("digit class in the test sample")
        ax.set_yticks([])
        ax.set_title("mean firing per class (each row scaled to its max)", fontsize=9)
        ax.set_ylabel("neuron (its firing now)", labelpad=58)
        figure.colorbar(self.image, ax=ax, label="share of the row's max", shrink=0.9)
        # The row labels change with every drawing, so they are stamped on the rendered pixels with
        # Pillow: through matplotlib, six short labels cost twice the rest of the panel.
        self.ax = ax
        self.font = pillow_font(8)
        self.label_anchors: list[tuple[float, float]] | None = (
            None  # each label's right-middle point, in pixels from the top left
        )

    def update(self, firing: np.ndarray) -> tuple[np.ndarray, list[int]]:
        top = [int(i) for i in np.argsort(firing)[::-1][: self.rows]]
        table = self.class_means[:, top].T  # (rows, 10)
        self.image.set_data(table / np.maximum(table.max(1, keepdims=True), 1e-9))
        pixels = self.render()
        if self.label_anchors is None:
            self.label_anchors = pixels_from_top(
                self.ax.transData, [(-0.6, r) for r in range(self.rows)], pixels.shape[0]
            )
        labels = [(xy, f"#{neuron} ({firing[neuron]:.1f})") for xy, neuron in zip(self.label_anchors, top)]
        return stamp_text(pixels, labels, self.font, fill="black", anchor="rm"), top


class HistogramPanel(LivePanel):
    """Each layer's activations over the test sample (bars), this digit's activations as ticks."""

    def __init__(self, reference: Mapping[str, np.ndarray]):
        figure = new_figure(7.0, 2.3)
        super().__init__(figure)
        axes = figure.subplots(1, len(reference))
        self.rugs = {}
        for ax, (name, values) in zip(axes, reference.items()):
            low, high = np.percentile(values, [0.1, 99.9])
            ax.hist(values.ravel(), bins=60, range=(low, high), color="0.75", density=True)
            ax.set_title(f"{name} ({values.shape[1]} units)", fontsize=9)
            ax.set_xlabel("activation (before ReLU)", fontsize=8)
            ax.set_yticks([])
            ax.set_xlim(low, high)
            self.rugs[name] = self.animate(
                LineCollection([], colors="C3", linewidths=1.0, transform=ax.get_xaxis_transform())
            )
            ax.add_collection(self.rugs[name])
        axes[0].set_ylabel("share of the sample", fontsize=8)

    def update(self, activations: Mapping[str, np.ndarray]) -> np.ndarray:
        for name, rug in self.rugs.items():
            values = np.asarray(activations[name]).ravel()
            rug.set_segments([[(v, 0.0), (v, 0.18)] for v in values])
        return self.render()


# --- toy model of superposition -------------------------------------------------------------------


def toy_gram(W: np.ndarray, b: np.ndarray) -> Figure:
    """WᵀW (which features share directions) beside the bias b."""
    n = W.shape[1]
    gram = W.T @ W
    figure = new_figure(4.6, 3.6)
    grid = figure.add_gridspec(1, 3, width_ratios=[n, 1.2, 0.4])
    ax, bias_ax, bar_ax = (figure.add_subplot(grid[0, i]) for i in range(3))
    limit = max(1.0, float(np.abs(gram).max()), float(np.abs(b).max()))
    image = ax.imshow(gram, cmap=DIVERGING, vmin=-limit, vmax=limit, interpolation="nearest")
    bias_ax.imshow(b[:, None], cmap=DIVERGING, vmin=-limit, vmax=limit, interpolation="nearest", aspect="auto")
    ticks = _feature_ticks(n)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_yticks(ticks, [str(t) for t in ticks])
    ax.set_title("WᵀW", fontsize=10)
    ax.set_xlabel("feature")
    ax.set_ylabel("feature (most important at 0)")
    bias_ax.set_xticks([])
    bias_ax.set_yticks([])
    bias_ax.set_title("b", fontsize=10)
    figure.colorbar(image, cax=bar_ax)
    return figure


def _feature_ticks(n: int) -> list[int]:
    step = 1 if n <= 12 else (5 if n <= 40 else 10)
    return list(range(0, n, step))


def toy_feature_bars(norms: np.ndarray, interference: np.ndarray) -> Figure:
    """‖Wᵢ‖ per feature (is it represented?) coloured by Σ_{j≠i}(Ŵᵢ·Wⱼ)² (is it in superposition?)."""
    n = len(norms)
    figure = new_figure(4.6, 3.0)
    ax = figure.add_subplot()
    colour_scale = Normalize(0, max(1.0, float(interference.max())))
    colours = matplotlib.colormaps["plasma"](colour_scale(interference))
    ax.bar(np.arange(n), norms, color=colours, edgecolor="0.3", linewidth=0.4)
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xticks(_feature_ticks(n))
    ax.set_xlabel("feature (importance falls to the right)")
    ax.set_ylabel("‖Wᵢ‖: is it represented?")
    ax.set_xlim(-0.6, n - 0.4)
    bar = figure.colorbar(matplotlib.cm.ScalarMappable(colour_scale, "plasma"), ax=ax)
    bar.set_label("Σⱼ≠ᵢ (Ŵᵢ·Wⱼ)²: shared?", fontsize=8)
    return figure


# The regular shapes of Elhage et al. (2022) and the share of a dimension each gives its features.
DIMENSIONALITY_GEOMETRIES = (
    (1.0, "1  own dimension"),
    (3 / 4, "¾  tetrahedron"),
    (2 / 3, "⅔  triangle"),
    (1 / 2, "½  antipodal pair"),
    (2 / 5, "⅖  pentagon"),
    (3 / 8, "⅜  square antiprism"),
    (1 / 3, "⅓  hexagon (in a plane)"),
)


def toy_dimensionality(dimensionality: np.ndarray, features_per_dimension: float) -> Figure:
    """Each feature's dimensionality Dᵢ, with the fractions of the regular geometries marked."""
    n = len(dimensionality)
    figure = new_figure(4.6, 3.0)
    ax = figure.add_subplot()
    label_at = np.inf
    for value, name in DIMENSIONALITY_GEOMETRIES:
        ax.axhline(value, color="0.75", lw=0.8, zorder=0)
        # ⅖, ⅜ and ⅓ lie closer than a line of text: their labels step down, each beside its own fraction.
        label_at = min(value, label_at - 0.065)
        ax.text(n - 0.4, label_at, f" {name}", va="center", fontsize=7, color="0.4", clip_on=False)
    ax.plot(np.arange(n), dimensionality, "o", color="C0")
    ax.set_ylim(-0.05, 1.1)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xticks(_feature_ticks(n))
    ax.set_xlabel("feature")
    ax.set_ylabel("dimensionality Dᵢ")
    ax.set_title(f"{features_per_dimension:.2f} features per dimension (‖W‖²_F / m)", fontsize=10)
    return figure


def toy_arrows(W: np.ndarray) -> Figure:
    """For m = 2: each feature's column of W as an arrow in the hidden plane."""
    n = W.shape[1]
    figure = new_figure(3.6, 3.6)
    ax = figure.add_subplot()
    circle = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(circle), np.sin(circle), color="0.85", lw=0.8)
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, n))
    for i in range(n):
        x, y = W[0, i], W[1, i]
        ax.annotate("", xy=(x, y), xytext=(0, 0), arrowprops={"arrowstyle": "-|>", "color": colours[i], "lw": 1.6})
        if np.hypot(x, y) > 0.2:
            ax.text(1.12 * x, 1.12 * y, str(i), ha="center", va="center", fontsize=8, color=colours[i])
    limit = max(1.3, 1.25 * float(np.abs(W).max()))
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xlabel("hidden dimension 1")
    ax.set_ylabel("hidden dimension 2")
    ax.set_title("features as directions (colour: importance)", fontsize=9)
    return figure


def toy_sweep(
    sparsities: np.ndarray, represented: Sequence[int], per_dimension: Sequence[float], n: int, m: int
) -> Figure:
    """Represented features and features per dimension against sparsity: the phase change."""
    density = 1.0 - np.asarray(sparsities)  # plotted on a log axis, sparser to the right
    figure = new_figure(7.0, 2.8)
    left, right = figure.subplots(1, 2)
    left.plot(density, represented, "o-", color="C3")
    left.axhline(m, color="0.5", ls=":", lw=1)
    left.axhline(n, color="0.5", ls="--", lw=1)
    left.text(density[0], m, f" m = {m}", va="bottom", fontsize=8, color="0.4")
    left.text(density[0], n, f" n = {n}", va="bottom", fontsize=8, color="0.4")
    left.set_ylabel("features represented (‖Wᵢ‖ > 0.5)")
    left.set_ylim(0, n * 1.12 + 0.5)
    right.plot(density, per_dimension, "o-", color="C0")
    right.axhline(1.0, color="0.5", ls=":", lw=1)
    right.set_ylabel("features per dimension")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ticks = [t for t in (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001) if density.min() * 0.99 <= t <= 1.0]
        ax.set_xticks(ticks, [f"{1 - t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("sparsity S (log scale of 1 − S)")
    return figure


# --- ResNet layers ------------------------------------------------------------------------------------


def heat_overlay(picture: np.ndarray, heat: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """Blend a (h, w) activation map, stretched to the picture, over an (H, W, 3) uint8 picture."""
    import torch
    import torch.nn.functional as F

    H, W = picture.shape[:2]
    heat = F.interpolate(
        torch.as_tensor(heat, dtype=torch.float32)[None, None], size=(H, W), mode="bilinear", align_corners=False
    )[0, 0].numpy()
    low, high = float(heat.min()), float(heat.max())
    scaled = (heat - low) / (high - low) if high > low else np.zeros_like(heat)
    colour = matplotlib.colormaps["inferno"](scaled)[..., :3]
    alpha = strength * scaled[..., None]
    blended = (1 - alpha) * (picture / 255.0) + alpha * colour
    return (np.clip(blended, 0, 1) * 255).astype(np.uint8)


class FeatureMapPanel(LivePanel):
    """Sixteen channels of one layer as a 4x4 grid, each labelled with its channel index.

    The grid is one mosaic image (drawing one image is much cheaper than sixteen). The sixteen
    labels are stamped on the rendered pixels with Pillow: through matplotlib, setting that much
    bold text cost as much as the rest of the panel.
    """

    LABEL_POINTS, TITLE_POINTS = 8, 10

    def __init__(self, side: int, tiles: int = 16, columns: int = 4):
        figure = new_figure(5.2, 5.6)
        super().__init__(figure)
        self.side, self.columns, self.gap, self.tiles = side, columns, max(1, side // 20), tiles
        ax = figure.add_subplot()
        ax.set_axis_off()
        mosaic = tile_grid(np.zeros((tiles, side, side)), columns, gap=self.gap)
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")  # the gaps between tiles
        self.image = self.animate(ax.imshow(mosaic, cmap=cmap, vmin=0, vmax=1, interpolation="nearest"))
        self.title = ax.set_title(
            " ", fontsize=self.TITLE_POINTS
        )  # a blank title keeps the room; the words are stamped
        self.ax = ax
        self._corners = None  # each tile's top-left corner in pixels, known once the layout is drawn
        self._title_at = None  # the title's centre on its baseline, in pixels
        self.font = pillow_font(self.LABEL_POINTS, bold=True)
        self.title_font = pillow_font(self.TITLE_POINTS)

    def update(self, maps: np.ndarray, channels: list[int], title: str) -> np.ndarray:
        top = max(float(np.max(maps)), 1e-9)  # one scale for the grid: channels compare
        tiles = np.zeros((self.tiles, self.side, self.side), dtype=np.float32)
        tiles[: len(channels)] = maps[: len(channels)]
        self.image.set_data(tile_grid(tiles, self.columns, gap=self.gap))
        self.image.set_clim(0, top)
        pixels = self.render()
        if self._corners is None:
            step, height = self.side + self.gap, pixels.shape[0]
            corners = [
                ((i % self.columns) * step - 0.5, (i // self.columns) * step - 0.5) for i in range(self.tiles)
            ]  # data coords
            self._corners = [(x + 2, y + 1) for x, y in pixels_from_top(self.ax.transData, corners, height)]
            self._title_at = pixels_from_top(self.title.get_transform(), [self.title.get_position()], height)[0]
        labels = [(corner, f"ch {channel}") for corner, channel in zip(self._corners, channels[: self.tiles])]
        pixels = stamp_text(
            pixels, labels, self.font, fill="white", stroke_width=1, stroke_fill=(40, 40, 40)
        )  # legible on yellow too
        return stamp_text(pixels, [(self._title_at, title)], self.title_font, fill="black", anchor="ms")


class LayerRankPanel(LivePanel):
    """The course's two plots: effective rank and rank / channels against depth, one layer marked.

    Beside the course's count (uncentred activations) a second line gives the same count with each
    channel's mean over the sample taken away (``LayerRank.centred_effective_rank``).
    """

    def __init__(self, rows: Sequence, title: str):
        figure = new_figure(7.0, 3.0)
        super().__init__(figure)
        self.rows = list(rows)
        depth = np.arange(len(self.rows))
        ranks = np.array([r.effective_rank for r in self.rows])
        ratios = np.array([r.ratio for r in self.rows])
        channels = np.array([r.channels for r in self.rows])
        centred = np.array([r.centred_effective_rank for r in self.rows])
        bound = np.array([r.sample_bound for r in self.rows])
        self.axes = figure.subplots(1, 2)
        for ax, values, centred_values, label in (
            (self.axes[0], ranks, centred, "effective rank"),
            (self.axes[1], ratios, centred / channels, "effective rank / channels"),
        ):
            ax.plot(depth, values, "-", color="0.7", lw=1, zorder=1)
            ax.scatter(depth[~bound], values[~bound], s=14, color="C0", zorder=2, label="course's (uncentred)")
            if bound.any():
                ax.scatter(
                    depth[bound],
                    values[bound],
                    s=18,
                    facecolors="none",
                    edgecolors="C1",
                    zorder=2,
                    label="bounded by the sample",
                )
            ax.plot(depth, centred_values, "-", color="C2", lw=1, zorder=1, label="centred (channel means removed)")
            ax.set_xlabel("conv layer (input → output)")
            ax.set_ylabel(label)
        self.axes[0].step(depth, channels, where="mid", color="0.5", lw=0.8, ls="--", label="channels")
        self.axes[0].legend(fontsize=7, loc="upper left")
        self.axes[1].set_ylim(0, 1.05)
        figure.suptitle(title, fontsize=9)
        self.markers = [self.animate(ax.plot([], [], "o", ms=9, mfc="none", mec="C3", mew=2)[0]) for ax in self.axes]
        self.lines = [self.animate(ax.axvline(0, color="C3", lw=0.8, ls=":")) for ax in self.axes]
        self.font = pillow_font(8)  # the layer's name is stamped in the corner of the second plot
        self._name_at = None

    def update(self, layer: str) -> np.ndarray:
        index = next(i for i, r in enumerate(self.rows) if r.layer == layer)
        row = self.rows[index]
        for marker, line, value in zip(self.markers, self.lines, (row.effective_rank, row.ratio)):
            marker.set_data([index], [value])
            line.set_xdata([index, index])
        pixels = self.render()
        if self._name_at is None:
            self._name_at = pixels_from_top(self.axes[1].transAxes, [(0.02, 0.04)], pixels.shape[0])[0]
        return stamp_text(pixels, [(self._name_at, layer)], self.font, fill=matplotlib.colors.to_hex("C3"), anchor="ls")


# --- language models ---------------------------------------------------------------------------------


def _robust_limit(values: np.ndarray) -> float:
    """A colour limit at the 99th percentile of |values| over all rows but the longest one.

    Language models park huge values on one token (usually the first, an "attention sink"); scaled
    to that row, every other token would be one flat colour. That row saturates instead.
    """
    if values.shape[0] > 2:
        values = np.delete(values, int(np.argmax(np.linalg.norm(values, axis=1))), axis=0)
    limit = float(np.percentile(np.abs(values), 99)) if values.size else 1.0
    return limit if limit > 0 else 1.0


class TokenHeatmap:
    """Tokens (rows, in reading order) × columns (hidden dimensions, or SAE features) as a heatmap.

    Built once and redrawn for each text: creating the axes and their ticks cost more than the
    drawing, so one instance is kept per server thread and per height (``update`` returns pixels).
    The token names and column numbers are stamped on the pixels with Pillow; through matplotlib,
    64 token names cost as much as the rest of the picture. ``figure`` holds the last drawing
    without them.

    At most ``MAX_ROWS`` tokens are drawn, each row named by its own token: a longer text shows its
    first ``MAX_ROWS`` and the axis says so. (Drawn whole, a 1,000-token text had rows under a pixel
    tall, so the picture dropped rows and every k-th name no longer sat on its row.)
    """

    WIDTH = 7.6
    POINTS = 8  # token names
    SMALL = 7  # column numbers, and token names past 48 rows
    MAX_ROWS = 64

    def __init__(self, rows_shown: int, cmap: str = DIVERGING, diverging: bool = True, colorbar_label: str = ""):
        self.height = float(np.clip(1.2 + 0.2 * min(rows_shown, self.MAX_ROWS), 2.6, 13.0))
        self.figure = fixed_figure(self.WIDTH, self.height)
        self.ax, self.cax = place(self.figure, left=1.0, right=0.1, bottom=0.85, top=0.35, colorbar=True)
        self.diverging = diverging
        self.image = self.ax.imshow(
            np.zeros((2, 2)), cmap=cmap, vmin=-1 if diverging else 0, vmax=1, aspect="auto", interpolation="nearest"
        )
        self.ax.set_yticks([])
        self.ax.set_xticks([])
        self.bar = self.figure.colorbar(self.image, cax=self.cax, extend="both" if diverging else "max")
        self.bar.set_label(colorbar_label, fontsize=8)
        self.fonts = {size: pillow_font(size) for size in (self.POINTS, self.SMALL)}
        self.row_names: list[
            tuple[int, float, str]
        ] = []  # (row, its name's height in pixels from the top, the name) as last stamped

    def update(
        self,
        values: np.ndarray,
        token_labels: Sequence[str],
        column_labels: Sequence[tuple[int, str]],
        title: str,
        xlabel: str,
        ylabel: str,
    ) -> np.ndarray:
        """Draw ``values`` (T, k); ``column_labels`` are (column, text) pairs to write under the columns."""
        T, k = values.shape
        if len(token_labels) != T:
            raise ValueError(f"{T} rows but {len(token_labels)} token names")
        if T > self.MAX_ROWS:  # the first tokens, each on a row tall enough to read its name
            values, token_labels = values[: self.MAX_ROWS], token_labels[: self.MAX_ROWS]
            ylabel = f"{ylabel}: the first {self.MAX_ROWS} of {T:,}"
            T = self.MAX_ROWS
        font = self.fonts[self.POINTS if T <= 48 else self.SMALL]
        token_labels = [drawable(label, font) for label in token_labels]
        left = label_room(token_labels, self.POINTS) + 0.35
        width = self.WIDTH - left - 0.1 - 0.9
        self.ax.set_position(
            (left / self.WIDTH, 0.85 / self.height, width / self.WIDTH, (self.height - 1.2) / self.height)
        )
        limit = _robust_limit(values) if self.diverging else max(_robust_limit(values), 1e-9)
        self.image.set_data(values)
        self.image.set_extent((-0.5, k - 0.5, T - 0.5, -0.5))
        self.image.set_clim(-limit if self.diverging else 0, limit)
        self.ax.set_xlim(-0.5, k - 0.5)
        self.ax.set_ylim(T - 0.5, -0.5)
        self.ax.set_title(title, fontsize=9)
        self.ax.set_xlabel(xlabel, fontsize=9, labelpad=14)
        self.ax.set_ylabel(ylabel, labelpad=(left - 0.35) * 72)
        pixels = to_rgb(self.figure)
        # 2) the names, stamped where the rows and columns are: every row its own token's
        picture = Image.fromarray(pixels)
        draw = ImageDraw.Draw(picture)
        height = pixels.shape[0]
        rows = list(range(T))
        self.row_names = []
        for (x, y), i in zip(pixels_from_top(self.ax.transData, [(-0.5, r) for r in rows], height), rows):
            draw.text((x - 4, y), token_labels[i], font=font, fill="black", anchor="rm")
            self.row_names.append((i, y, token_labels[i]))
        for (x, y), (_, text) in zip(
            pixels_from_top(self.ax.transData, [(c, T - 0.5) for c, _ in column_labels], height), column_labels
        ):
            draw.text((x, y + 3), text, font=self.fonts[self.SMALL], fill="black", anchor="mt")
        return np.asarray(picture)

    def row_band(self, row: int, height: int) -> tuple[float, float]:
        """(top, bottom) in pixels from the picture's top of the last drawing's ``row``: where its colours are."""
        (_, top), (_, bottom) = pixels_from_top(self.ax.transData, [(0, row - 0.5), (0, row + 0.5)], height)
        return min(top, bottom), max(top, bottom)


def lm_token_heatmap(
    panel: TokenHeatmap, activations: np.ndarray, token_labels: Sequence[str], dimensions: np.ndarray | None, title: str
) -> np.ndarray:
    """A layer's activations, tokens × hidden dimensions, coolwarm centred at 0, as pixels.

    Args:
        panel: a ``TokenHeatmap`` (coolwarm) to draw with, e.g. ``TokenHeatmap(min(T, 48))``.
        activations: (T, d_model) the layer's activations.
        token_labels: T labels, whitespace made visible (``lm.token_label``).
        dimensions: the columns to show (e.g. the most variable 64), or None for all of them.
        title: what the picture shows.
    """
    T, d_model = activations.shape
    shown = activations if dimensions is None else activations[:, dimensions]  # (T, k)
    if dimensions is None:
        ticks = _feature_ticks(d_model)
        columns, xlabel = [(t, str(t)) for t in ticks], f"hidden dimension (all {d_model})"
    else:
        # Label columns with the dimensions' own numbers: column 0 is the most variable, not dimension 0.
        step = max(1, len(dimensions) // 16)
        columns = [(c, str(int(dimensions[c]))) for c in range(0, len(dimensions), step)]
        xlabel = (
            f"hidden dimension: the {len(dimensions)} that vary most across tokens, most variable first (of {d_model})"
        )
    return panel.update(shown, token_labels, columns, title, xlabel, "token (as the tokenizer split the text)")


ACTIVATION_LABEL = "activation (clipped at the 99th percentile\nof the other tokens)"
SAE_LABEL = "feature activation (0 = silent; clipped)"


class RankByLayer:
    """Effective rank of the token matrix at every layer, the ceiling min(tokens, d_model) drawn.

    Built once per server thread and redrawn for each text (see ``TokenHeatmap``): ``update``
    returns pixels, ``figure`` holds the last drawing.
    """

    def __init__(self):
        self.figure = fixed_figure(7.0, 3.0)
        ax = self.ax = place(self.figure, left=0.65, right=0.15, bottom=0.5, top=0.3)
        (self.line,) = ax.plot(
            [], [], "o-", color="C0", ms=4, lw=1.2, label="effective rank (values below 99% of the energy)"
        )
        self.ceiling = ax.axhline(0, color="0.4", lw=1, ls="--", label="ceiling")
        self.note = ax.text(
            0.99, 0, "", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=7, color="0.4"
        )
        (self.chosen,) = ax.plot([], [], "o", ms=10, mfc="none", mec="C3", mew=2, label="chosen")
        ax.set_xlabel("layer (0 = embeddings, then one per block)")
        ax.set_ylabel("effective rank")
        self.legend = ax.legend(fontsize=7, loc="lower right")
        self.layers = None

    def update(self, ranks: Sequence[int], bound: int, d_model: int, chosen: int, title: str) -> np.ndarray:
        layers = np.arange(len(ranks))
        self.line.set_data(layers, ranks)
        self.ceiling.set_ydata([bound, bound])
        self.note.set_y(bound)
        self.note.set_text(f"the text is the limit: {bound} tokens < d_model {d_model}" if bound < d_model else "")
        self.chosen.set_data([chosen], [ranks[chosen]])
        texts = self.legend.get_texts()
        texts[1].set_text(f"ceiling min(tokens, d_model) = {bound}")
        texts[2].set_text(f"layer {chosen} (chosen)")
        self.ax.set_ylim(0, bound * 1.12 + 1)
        if self.layers != len(ranks):  # new ticks only for a model with another depth
            self.layers = len(ranks)
            self.ax.set_xlim(-0.5, len(ranks) - 0.5)
            self.ax.set_xticks(_feature_ticks(len(ranks)))
        self.ax.set_title(title, fontsize=9)
        return to_rgb(self.figure)


def _tile_shape(d_in: int) -> tuple[int, int]:
    """A near-square (rows, cols) with rows × cols = d_in: 576 -> 24×24, 768 -> 24×32."""
    rows = max(r for r in range(1, int(np.sqrt(d_in)) + 1) if d_in % r == 0)
    return rows, d_in // rows


def sae_feature_grid(encoder_rows: np.ndarray, most: int = 64) -> Figure:
    """The course's grid of learned features: each feature's encoder row folded into a small heatmap.

    The folding is only a way to fit d_in numbers in a square: neighbouring pixels are neighbouring
    dimension numbers, nothing more. Each tile has its own symmetric colour scale.
    """
    rows = encoder_rows[:most]
    n, d_in = rows.shape
    h, w = _tile_shape(d_in)
    columns = int(np.ceil(np.sqrt(n)))
    # One picture of all the tiles (one imshow, not one axes per feature), each tile on its own scale.
    limits = np.abs(rows).max(axis=1, keepdims=True)  # (n, 1)
    scaled = rows / np.where(limits > 0, limits, 1.0)  # (n, d_in) in [-1, 1]
    gap = max(2, w // 6)
    label_room_px = max(4, h // 3)  # a strip above each tile for its name
    mosaic = tile_grid(
        np.pad(scaled.reshape(n, h, w), ((0, 0), (label_room_px, 0), (0, 0)), constant_values=np.nan), columns, gap=gap
    )
    figure = fixed_figure(7.0, 0.45 + 7.0 * mosaic.shape[0] / mosaic.shape[1])
    ax = place(figure, left=0.05, right=0.05, bottom=0.05, top=0.4)
    ax.set_axis_off()
    colours = matplotlib.colormaps[DIVERGING].with_extremes(bad="white")
    ax.imshow(mosaic, cmap=colours, vmin=-1, vmax=1, interpolation="nearest", aspect="auto")
    for i in range(n):
        r, c = divmod(i, columns)
        ax.text(
            c * (w + gap) + w / 2,
            r * (h + label_room_px + gap) + label_room_px / 2,
            f"feature {i}",
            ha="center",
            va="center",
            fontsize=8,
        )
    more = f" (first {n} of {len(encoder_rows)})" if len(encoder_rows) > n else ""
    ax.set_title(f"What each feature reads: its encoder weights, {d_in} dimensions folded {h}×{w}{more}", fontsize=9)
    return figure


def sae_activation_bars(mean_activation: np.ndarray) -> Figure:
    """Mean activation of each learned feature over the text's tokens; features that never fire marked."""
    n = len(mean_activation)
    figure = fixed_figure(7.0, 2.8)
    ax = place(figure, left=0.7, right=0.15, bottom=0.5, top=0.15)
    dead = mean_activation <= 0
    ax.bar(np.arange(n), mean_activation, color=np.where(dead, "0.75", "C0"), edgecolor="0.3", linewidth=0.4)
    for i in np.flatnonzero(dead):
        ax.text(i, 0, "×", ha="center", va="bottom", fontsize=8, color="0.4")
    ax.set_xticks(_feature_ticks(n))
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("feature" + (" (× = fires on no token)" if dead.any() else ""))
    ax.set_ylabel("mean activation")
    return figure


def sae_token_features(panel: TokenHeatmap, feature_acts: np.ndarray, token_labels: Sequence[str]) -> np.ndarray:
    """Tokens (rows) × learned features (columns), as pixels: which features fire on which token.

    ``panel``: a ``TokenHeatmap(min(T, 48), "viridis", diverging=False, colorbar_label=SAE_LABEL)``.
    """
    T, n = feature_acts.shape
    return panel.update(feature_acts, token_labels, [(t, str(t)) for t in _feature_ticks(n)], "", "feature", "token")


def pretrained_feature_bars(
    indices: Sequence[int],
    activations: Sequence[float],
    token_labels: Sequence[str],
    title: str,
    xlabel: str = "peak activation on the text",
) -> Figure:
    """The strongest features of a pretrained SAE on a text (or one token): one bar each, labelled with where it peaks."""
    k = len(indices)
    figure = new_figure(7.0, 0.8 + 0.32 * max(k, 1))
    ax = figure.add_subplot()
    positions = np.arange(k)[::-1]  # strongest at the top
    ax.barh(positions, activations, color="C2", edgecolor="0.3", linewidth=0.4)
    ax.set_yticks(positions, [f"#{i} @ {drawable(label)}" for i, label in zip(indices, token_labels)], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(drawable(title), fontsize=9)
    return figure


# --- concepts in a language model ------------------------------------------------------------------

# The defaults' labels come in the order positive, negative, neutral: green, red, grey.
LABEL_COLOURS = ("C2", "C3", "0.55", "C0", "C1", "C4", "C5", "C6", "C8", "C9")


def label_colours(labels: Sequence[str]) -> dict[str, str]:
    """One colour per sentence label, the same in every concept figure."""
    return {label: LABEL_COLOURS[i % len(LABEL_COLOURS)] for i, label in enumerate(labels)}


def concept_correlation_bars(
    concepts: Sequence[str], labels: Sequence[str], raw: np.ndarray, centred: np.ndarray, title: str
) -> Figure:
    """Each concept's correlation with each label's sentences as grouped bars: raw (the course's way) beside centred.

    Args:
        concepts: C concept names, one group of bars each.
        labels: L sentence labels, one bar (and colour) each within a group.
        raw: (C, L) Pearson r of concept and sentence vectors, averaged over each label's sentences.
        centred: (C, L) the same after removing the mean concept and the mean sentence vector.
        title: what the picture shows.
    """
    C, L = raw.shape
    colours = label_colours(labels)
    figure = new_figure(float(np.clip(3.0 + 0.28 * C * L, 7.6, 13.0)), 3.6)
    axes = figure.subplots(1, 2)
    width = 0.8 / L
    panels = (("raw hidden states (as in the course)", raw), ("centred: what sets each one apart", centred))
    for ax, (name, values) in zip(axes, panels):
        for j, label in enumerate(labels):
            bars = ax.bar(
                np.arange(C) - 0.4 + width * (j + 0.5),
                values[:, j],
                width,
                color=colours[label],
                edgecolor="0.3",
                linewidth=0.4,
                label=label,
            )
            if C * L <= 16:  # values on the bars while they stay legible
                ax.bar_label(bars, fmt="%.2f", fontsize=6.5, padding=1)
        ax.axhline(0, color="0.3", lw=0.8)
        low, high = min(0.0, float(values.min())), max(0.0, float(values.max()))
        margin = 0.12 * (high - low) or 0.1
        ax.set_ylim(low - (margin if low < 0 else 0), high + margin)
        ax.set_xticks(np.arange(C), list(concepts), fontsize=8)
        ax.set_xlabel("concept (the mean vector of its words)")
        ax.set_title(name, fontsize=9)
    axes[0].set_ylabel("correlation with the label's sentences\n(Pearson r, mean over the sentences)", fontsize=8)
    figure.legend(
        *axes[0].get_legend_handles_labels(),
        title="sentences labelled",
        loc="outside right center",
        fontsize=8,
        title_fontsize=8,
    )
    figure.suptitle(title, fontsize=9)
    return figure


def concept_pca_scatter(
    coordinates: np.ndarray,
    sentence_labels: Sequence[str],
    explained: Sequence[float],
    texts: Sequence[str],
    title: str,
) -> Figure:
    """Sentences as points on their two principal components, coloured by label, each tagged with its first words.

    Args:
        coordinates: (S, 2) each sentence's mean hidden state projected on the two components.
        sentence_labels: S labels; colours follow their order of first appearance.
        explained: the two components' shares of the variance.
        texts: the S sentences; the start of each is written beside its point while there are at most 32.
        title: what the picture shows.
    """
    labels = list(dict.fromkeys(sentence_labels))
    colours = label_colours(labels)
    which = np.asarray(sentence_labels)
    figure = new_figure(7.6, 4.8)
    ax = figure.add_subplot()
    for label in labels:
        rows = which == label
        ax.scatter(
            coordinates[rows, 0],
            coordinates[rows, 1],
            s=40,
            color=colours[label],
            edgecolor="0.2",
            linewidth=0.5,
            label=f"{label} ({int(rows.sum())})",
            zorder=3,
        )
    ax.set_xlabel(f"first principal component ({explained[0]:.0%} of the variance)")
    ax.set_ylabel(f"second principal component ({explained[1]:.0%})")
    ax.margins(x=0.16, y=0.08)  # room for the words written right of the outermost points
    ax.grid(color="0.92", zorder=0)
    # Beside the axes, not inside: a legend that picks its own place at each drawing could land on the words.
    figure.legend(
        *ax.get_legend_handles_labels(),
        title="sentences labelled",
        fontsize=8,
        title_fontsize=8,
        loc="outside right upper",
    )
    ax.set_title(title, fontsize=9)
    if len(texts) <= 32:
        shorts = [drawable(text if len(text) <= 22 else text[:21].rstrip() + "…") for text in texts]
        # Labels are placed in the figure's final pixels: lay it out once, then keep that layout.
        figure.canvas.draw()
        figure.set_layout_engine("none")
        place_labels(ax, coordinates, shorts, fontsize=6.5, color="0.3")
    return figure


def place_labels(ax, points: np.ndarray, texts: Sequence[str], fontsize: float, color: str, pad: float = 3.0) -> list:
    """Write each text beside its point where it overlaps no other label: a simple greedy de-overlap.

    Each label tries the four corners around its point, then the same farther up and down (with a thin
    line back to its point), inside the axes, first avoiding the points too, then only the labels. A
    label with no free place in reach is left out rather than drawn over another. Returns the
    annotations drawn (``ax.texts``), in the order of ``texts``; None for one left out.

    Args:
        ax: axes already laid out (its figure drawn once), whose pixels will not move afterwards.
        points: (N, 2) in data coordinates.
        texts: N labels.
    """
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    at = ax.transData.transform(np.asarray(points, dtype=float).reshape(-1, 2))  # (N, 2) display pixels
    sizes = []
    for text in texts:  # each label's size, measured as matplotlib will draw it
        probe = ax.text(0, 0, text, fontsize=fontsize)
        box = probe.get_window_extent(renderer)
        probe.remove()
        sizes.append((box.width, box.height))
    dot = 4.0  # a marker's half-width in pixels (s=40 is ~6 points across)
    dots = [(x - dot, y - dot, x + dot, y + dot) for x, y in at]
    placed: list[tuple[float, float, float, float]] = []

    def free(box, obstacles) -> bool:
        x0, y0, x1, y1 = box
        inside = frame.x0 <= x0 and x1 <= frame.x1 and frame.y0 <= y0 and y1 <= frame.y1
        return inside and not any(
            x0 < b[2] + 1 and b[0] < x1 + 1 and y0 < b[3] + 1 and b[1] < y1 + 1 for b in obstacles
        )

    drawn = []
    for (x, y), (w, h), text in zip(at, sizes, texts):
        step = h + 1.5
        offsets = [  # (dx, dy) from the point to the label's lower left corner, nearest first
            (dx, dy)
            for ring in range(int(frame.height // step) + 1)
            for dx in (pad, -w - pad)
            for dy in (pad + ring * step, -h - pad - ring * step)
        ]
        choice = None
        for obstacles in (placed + dots, placed):
            choice = next(
                ((dx, dy) for dx, dy in offsets if free((x + dx, y + dy, x + dx + w, y + dy + h), obstacles)), None
            )
            if choice is not None:
                break
        if choice is None:
            drawn.append(None)
            continue
        dx, dy = choice
        placed.append((x + dx, y + dy, x + dx + w, y + dy + h))
        far = abs(dy) > h + pad + 1  # not in the first ring: a thin line says whose label it is
        annotation = ax.annotate(
            text,
            tuple(ax.transData.inverted().transform((x, y))),
            xytext=(dx, dy),
            textcoords="offset pixels",
            ha="left",
            va="bottom",
            fontsize=fontsize,
            color=color,
            annotation_clip=False,
            arrowprops=dict(arrowstyle="-", color="0.7", lw=0.5, shrinkA=0, shrinkB=3) if far else None,
        )
        annotation.set_in_layout(False)
        drawn.append(annotation)
    return drawn
