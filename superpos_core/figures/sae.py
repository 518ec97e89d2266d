"""Sparse autoencoders' figures: what each learned feature reads, how often it fires, and a pretrained SAE's strongest features.

Static figures return a ``Figure``; ``sae_token_features`` draws on a lent ``lm.TokenHeatmap`` and returns pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from superpos_core.figures.base import DIVERGING, drawable, feature_ticks, fixed_figure, new_figure, place, tile_grid
from superpos_core.figures.lm import TokenHeatmap


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
    ax.set_xticks(feature_ticks(n))
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("feature" + (" (× = fires on no token)" if dead.any() else ""))
    ax.set_ylabel("mean activation")
    return figure


def sae_token_features(panel: TokenHeatmap, feature_acts: np.ndarray, token_labels: Sequence[str]) -> np.ndarray:
    """Tokens (rows) × learned features (columns), as pixels: which features fire on which token.

    ``panel``: a ``TokenHeatmap(min(T, 48), "viridis", diverging=False, colorbar_label=SAE_LABEL)``.
    """
    T, n = feature_acts.shape
    return panel.update(feature_acts, token_labels, [(t, str(t)) for t in feature_ticks(n)], "", "feature", "token")


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
