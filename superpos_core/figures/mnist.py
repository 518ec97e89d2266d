"""The MNIST tab's figures: the network's weights and spectra, its training, and the panels redrawn per stroke.

Static figures (``weight_heatmaps``, ``neuron_weight_grid``, ``spectrum``, ``concentration``,
``training_progress``) return a ``Figure``; the live panels (``ActivationPanel``, ``SaliencyPanel``,
``PolysemanticityPanel``, ``HistogramPanel``, ``SAEFeaturePanel``) return pixels from ``update``.
``MnistExplorer`` owns a pool of the live panels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from superpos_core.figures.base import DIVERGING, fixed_figure, new_figure, tile_grid
from superpos_core.figures.live import LivePanel, pillow_font
from superpos_core.rank import RankSummary

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


def concentration(neurons: np.ndarray, features: np.ndarray, chance: float, top: int) -> Figure:
    """Two distributions on one axis: how much of each fc1 neuron's and each SAE feature's ``top`` strongest digits are one class.

    Args:
        neurons: (128,) each neuron's share (``mnist_sae.class_concentration``); NaN for a neuron not counted.
        features: (n,) the same for each SAE feature.
        chance: the share that ``top`` digits drawn at random reach on average.
        top: how many strongest digits each share counts.
    """
    figure = new_figure(7.0, 2.8)
    ax = figure.add_subplot()
    edges = (np.arange(top + 2) - 0.5) / top  # one bin per possible share k/top
    for values, colour, name in ((neurons, "C0", "fc1 neurons"), (features, "C3", "SAE features")):
        counted = values[np.isfinite(values)]
        ax.hist(
            counted,
            bins=edges,
            weights=np.full(len(counted), 1 / max(len(counted), 1)),
            histtype="stepfilled" if colour == "C0" else "step",
            color=colour,
            alpha=0.45 if colour == "C0" else 1.0,
            lw=2,
            label=f"{name}: {len(counted)} of {len(values)} counted, median {np.median(counted):.2f}",
        )
    ax.axvline(chance, color="0.4", ls=":", lw=1.2, label=f"{top} digits drawn at random: {chance:.2f}")
    ax.set_xlim(0, 1.02)
    ax.set_xlabel(f"share of its {top} strongest test digits that are its most common class")
    ax.set_ylabel("share of the units")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Is one unit one digit? fc1's neurons against the SAE's features", fontsize=10)
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


# --- live panels, redrawn per stroke -------------------------------------------------------------


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
        self.neurons: list[int] = []  # the rows of the last drawing, most active first

    def update(self, firing: np.ndarray) -> np.ndarray:
        """Draw the ``rows`` most active of ``firing`` (units,), each row named with its number and firing; ``neurons`` lists them."""
        top = [int(i) for i in np.argsort(firing)[::-1][: self.rows]]
        self.neurons = top
        table = self.class_means[:, top].T  # (rows, 10)
        self.image.set_data(table / np.maximum(table.max(1, keepdims=True), 1e-9))
        pixels = self.render()
        # each label's right-middle point: just left of its row
        anchors = self.positions("rows", self.ax.transData, [(-0.6, r) for r in range(self.rows)], pixels.shape[0])
        labels = [(xy, f"#{neuron} ({firing[neuron]:.1f})") for xy, neuron in zip(anchors, top)]
        return self.stamp(pixels, labels, self.font, fill="black", anchor="rm")


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


class SAEFeaturePanel(LivePanel):
    """A digit's active SAE features, strongest first: each the mean of the test digits that activate it most,
    with its activation above and, below, the digit it votes for (and the answer without it, where that changes),
    then a strip of its strongest test digits themselves.

    All the tiles are one image (a mosaic redrawn per digit): one blitted artist costs about a millisecond, twelve
    cost twelve.
    """

    COLUMNS = 6
    # A feature's cell in the mosaic, in tile pixels: its 28x28 picture at (LEFT, TOP_ROOM), the vote's line below
    # it (VOTE_ROOM), then its strongest digits at 14x14, one pixel apart, STRIP_GAP below.
    CELL_W, LEFT, TOP_ROOM, VOTE_ROOM, STRIP_GAP = 50, 11, 8, 11, 2
    HEADING = 0.42  # inches above the mosaic, for the stamped heading

    def __init__(self, pictures: np.ndarray, slots: int, top_digits: np.ndarray | None = None):
        """Args:
        pictures: (n, 28, 28) each feature's picture, in [0, 1] (``mnist_sae.feature_pictures``).
        slots: the most features shown (a TopK SAE's k).
        top_digits: (n, count, 14, 14) each feature's strongest digits at half size (``mnist_sae.top_digits``),
            or None for no strip.
        """
        self.pictures = pictures
        self.top_digits = top_digits
        self.slots = slots
        self.strip_top = self.TOP_ROOM + 28 + self.VOTE_ROOM  # the strip's top row within a cell
        self.cell_h = self.strip_top + (0 if top_digits is None else self.STRIP_GAP + 14 + 3)  # 3: room below
        self.rows = -(-slots // self.COLUMNS)
        width = 7.0
        mosaic_height = width * self.rows * self.cell_h / (self.COLUMNS * self.CELL_W)  # square tile pixels
        height = self.HEADING + mosaic_height
        figure = fixed_figure(width, height)
        super().__init__(figure)
        self.ax = figure.add_axes((0, 0, 1, mosaic_height / height))
        self.ax.set_axis_off()
        self.mosaic = np.zeros((self.rows * self.cell_h, self.COLUMNS * self.CELL_W))
        self.image = self.animate(
            self.ax.imshow(self.mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
        )
        self.heading_font, self.font = pillow_font(9, bold=True), pillow_font(8)

    def _cell(self, slot: int) -> tuple[int, int]:
        """The top-left corner (x, y) of a slot's tile in the mosaic."""
        row, column = divmod(slot, self.COLUMNS)
        return column * self.CELL_W + self.LEFT, row * self.cell_h + self.TOP_ROOM

    def _strip(self, slot: int, index: int) -> None:
        """Paint feature ``index``'s strongest digits under its tile in ``slot``, centred in the cell."""
        digits = self.top_digits[index]  # (count, 14, 14)
        row, column = divmod(slot, self.COLUMNS)
        width = len(digits) * 15 - 1
        x0 = column * self.CELL_W + (self.CELL_W - width) // 2
        y0 = row * self.cell_h + self.strip_top + self.STRIP_GAP
        for k, digit in enumerate(digits):
            self.mosaic[y0 : y0 + 14, x0 + 15 * k : x0 + 15 * k + 14] = digit

    def update(
        self,
        features: Sequence[tuple[int, float]],
        votes_for: Sequence[int],
        without: Sequence[int],
        prediction: int,
        explained_variance: float,
    ) -> np.ndarray:
        """Draw the strongest ``slots`` of ``features`` ((latent, activation), strongest first).

        Args:
            votes_for: per feature, the digit whose score falls most without it.
            without: per feature, the network's answer from the reconstruction without it.
            prediction: the network's answer for the digit.
            explained_variance: how much of the digit's fc1 firing the features rebuild (about the training mean).
        """
        shown = list(features)[: self.slots]
        self.mosaic[:] = 0
        for slot, (index, _value) in enumerate(shown):
            x, y = self._cell(slot)
            self.mosaic[y : y + 28, x : x + 28] = self.pictures[index]
            if self.top_digits is not None:
                self._strip(slot, index)
        self.image.set_data(self.mosaic)
        pixels = self.render()
        height = pixels.shape[0]
        cells = [self._cell(slot) for slot in range(self.slots)]
        # each tile's top-centre and bottom-centre, in data coordinates (pixel edges are at -0.5)
        tops = self.positions("tops", self.ax.transData, [(x + 13.5, y - 0.5) for x, y in cells], height)
        bottoms = self.positions("bottoms", self.ax.transData, [(x + 13.5, y + 27.5) for x, y in cells], height)
        above = [((x, y - 3), f"#{index}  {value:.2f}") for (x, y), (index, value) in zip(tops, shown)]
        below = [
            ((x, y + 3), f"for {v}" if w == prediction else f"for {v} · w/o: {w}")
            for (x, y), v, w in zip(bottoms, votes_for, without)
        ]
        heading = f"Your {prediction} is these {len(features)} features: they explain {explained_variance:.0%} of its fc1 firing"
        pixels = self.stamp(pixels, [((8, 8), heading)], self.heading_font, fill="black", anchor="la")
        pixels = self.stamp(pixels, above, self.font, fill="black", anchor="mb")
        return self.stamp(pixels, below, self.font, fill="#444444", anchor="mt")
