"""The language-model tab's figures: a layer's activations token by token, and effective rank layer by layer.

Both are live panels (``TokenHeatmap``, ``RankByLayer``), redrawn for each text and lent to a
request by ``lend_heatmap`` and ``lend_rank_plot``; ``update`` returns pixels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from superpos_core.figures.base import DIVERGING, drawable, feature_ticks, fixed_figure, label_room, place
from superpos_core.figures.live import LivePanel, PanelPool, pillow_font, pixels_from_top


def _robust_limit(values: np.ndarray) -> float:
    """A colour limit at the 99th percentile of |values| over all rows but the longest one.

    Language models park huge values on one token (usually the first, an "attention sink"); scaled
    to that row, every other token would be one flat colour. That row saturates instead.
    """
    if values.shape[0] > 2:
        values = np.delete(values, int(np.argmax(np.linalg.norm(values, axis=1))), axis=0)
    limit = float(np.percentile(np.abs(values), 99)) if values.size else 1.0
    return limit if limit > 0 else 1.0


class TokenHeatmap(LivePanel):
    """Tokens (rows, in reading order) × columns (hidden dimensions, or SAE features) as a heatmap.

    Built once and redrawn for each text: creating the axes and their ticks cost more than the
    drawing, so panels are kept and lent, one per height (``lend_heatmap``; ``update`` returns pixels).
    Its axes take the width its token names leave, so it is drawn whole each time (nothing animated).
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
        super().__init__(fixed_figure(self.WIDTH, self.height))
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
        # 1) the picture, drawn whole: the axes moved to leave room for these names
        pixels = self.render()
        # 2) the names, stamped where the rows and columns are: every row its own token's
        height = pixels.shape[0]
        row_ends = self.positions("rows", self.ax.transData, [(-0.5, r) for r in range(T)], height)  # left edges
        self.row_names = [(i, y, token_labels[i]) for i, (_, y) in enumerate(row_ends)]
        rows = [((x - 4, y), token_labels[i]) for i, (x, y) in enumerate(row_ends)]
        pixels = self.stamp(pixels, rows, font, fill="black", anchor="rm")
        feet = self.positions("columns", self.ax.transData, [(c, T - 0.5) for c, _ in column_labels], height)
        columns = [((x, y + 3), text) for (x, y), (_, text) in zip(feet, column_labels)]
        return self.stamp(pixels, columns, self.fonts[self.SMALL], fill="black", anchor="mt")

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
        ticks = feature_ticks(d_model)
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


class RankByLayer(LivePanel):
    """Effective rank of the token matrix at every layer, the ceiling min(tokens, d_model) drawn.

    Built once and redrawn for each text, lent by ``lend_rank_plot``; drawn whole (its axes' limits
    and ticks follow the text and the model), ``update`` returns pixels.
    """

    def __init__(self):
        super().__init__(fixed_figure(7.0, 3.0))
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
            self.ax.set_xticks(feature_ticks(len(ranks)))
        self.ax.set_title(title, fontsize=9)
        return self.render()


def _new_heatmap(key: tuple[str, int]) -> TokenHeatmap:
    kind, rows = key
    if kind == "sae":
        return TokenHeatmap(rows, "viridis", diverging=False, colorbar_label=SAE_LABEL)
    return TokenHeatmap(rows, colorbar_label=ACTIVATION_LABEL)


# Figures reused from one text to the next (building them costs more than drawing), lent to one request at a time.
_heatmaps = PanelPool(_new_heatmap)
_rank_plots = PanelPool(lambda _key: RankByLayer())


def heatmap_rows(tokens: int) -> int:
    """The height, in rows, of the heatmap lent for a text of ``tokens``: steps of 8, so a few figures, not one per length."""
    return min(TokenHeatmap.MAX_ROWS, 8 * -(-tokens // 8))


@contextmanager
def lend_heatmap(kind: str, tokens: int) -> Iterator[TokenHeatmap]:
    """A ``TokenHeatmap`` sized for a text of ``tokens``, lent for one drawing.

    Args:
        kind: ``"activations"`` (coolwarm, centred at 0, for ``lm_token_heatmap``) or ``"sae"``
            (viridis from 0, for ``sae.sae_token_features``).
        tokens: how many tokens the text has.
    """
    with _heatmaps.borrow((kind, heatmap_rows(tokens))) as panel:
        yield panel


@contextmanager
def lend_rank_plot() -> Iterator[RankByLayer]:
    """A ``RankByLayer`` plot, lent for one drawing."""
    with _rank_plots.borrow() as panel:
        yield panel
