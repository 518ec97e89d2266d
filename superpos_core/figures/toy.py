"""The toy model of superposition's figures: which features share directions, how much of a dimension each gets, the phase
change; and how an SAE trained on its hidden layer matches the true features.

Each function returns a ``Figure``.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from superpos_core.figures.base import DIVERGING, feature_ticks, new_figure


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
    ticks = feature_ticks(n)
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


def toy_feature_bars(norms: np.ndarray, interference: np.ndarray) -> Figure:
    """‖Wᵢ‖ per feature (is it represented?) coloured by Σ_{j≠i}(Ŵᵢ·Wⱼ)² (is it in superposition?)."""
    n = len(norms)
    figure = new_figure(4.6, 3.0)
    ax = figure.add_subplot()
    colour_scale = Normalize(0, max(1.0, float(interference.max())))
    colours = matplotlib.colormaps["plasma"](colour_scale(interference))
    ax.bar(np.arange(n), norms, color=colours, edgecolor="0.3", linewidth=0.4)
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xticks(feature_ticks(n))
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
    ax.set_xticks(feature_ticks(n))
    ax.set_xlabel("feature")
    ax.set_ylabel("dimensionality Dᵢ")
    ax.set_title(f"{features_per_dimension:.2f} features per dimension (‖W‖²_F / m)", fontsize=10)
    return figure


def _feature_arrows(ax, W: np.ndarray) -> np.ndarray:
    """Draw each feature's column of W (m = 2) as an arrow from 0 on ``ax``, inside the unit circle; returns the colours."""
    n = W.shape[1]
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
    return colours


def toy_arrows(W: np.ndarray) -> Figure:
    """For m = 2: each feature's column of W as an arrow in the hidden plane."""
    figure = new_figure(3.6, 3.6)
    ax = figure.add_subplot()
    _feature_arrows(ax, W)
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


# --- an SAE on the hidden layer, graded against the true features ----------------------------------------


def matched_first(partner: np.ndarray, latents: int) -> np.ndarray:
    """The latents in the order the cosine matrix shows them: feature 0's partner, feature 1's, …, then the unmatched."""
    rest = [j for j in range(latents) if j not in set(partner.tolist())]
    return np.concatenate([partner, np.asarray(rest, dtype=int)])


def toy_sae_cosines(cosines: np.ndarray, partner: np.ndarray, recovered_at: float) -> Figure:
    """Signed cosine of each true feature (row) with each SAE latent's decoder direction (column), partners outlined.

    Args:
        cosines: (n, latents) signed cosines.
        partner: (n,) each feature's latent in the one-to-one matching; those columns come first, in feature order.
        recovered_at: the cosine a partner needs for its feature to count as recovered (outlined solid, else dashed).
    """
    n, latents = cosines.shape
    order = matched_first(partner, latents)
    figure = new_figure(min(2.2 + 0.32 * latents, 9.0), min(1.6 + 0.3 * n, 6.0))
    ax = figure.add_subplot()
    image = ax.imshow(cosines[:, order], cmap=DIVERGING, vmin=-1, vmax=1, interpolation="nearest", aspect="auto")
    for i in range(n):
        found = cosines[i, partner[i]] >= recovered_at
        ax.add_patch(
            matplotlib.patches.Rectangle(
                (i - 0.5, i - 0.5),
                1,
                1,
                fill=False,
                edgecolor="black",
                lw=1.4 if found else 0.9,
                ls="-" if found else "--",
            )
        )
        if n * latents <= 400:  # the number itself, where the cells are big enough to hold it
            ax.text(i, i, f"{cosines[i, partner[i]]:.2f}", ha="center", va="center", fontsize=6)
    columns = feature_ticks(latents)
    ax.set_xticks(columns, [str(order[j]) for j in columns], fontsize=7)
    ax.set_yticks(feature_ticks(n), [str(i) for i in feature_ticks(n)])
    ax.set_xlabel("SAE latent (partners first, in feature order)")
    ax.set_ylabel("true feature i")
    figure.colorbar(image, ax=ax, label="cosine with Wᵢ")
    return figure


def toy_sae_directions(W: np.ndarray, W_dec: np.ndarray, partner: np.ndarray, recovered: int) -> Figure:
    """For m = 2: the true features' arrows, and each SAE decoder direction (W_dec: (latents, 2)) as a dashed line of length 1.

    A latent paired with a feature (``partner``: (n,)) is black, ending in that feature's colour; the others are grey.
    ``recovered``, the count of features found, goes in the title.
    """
    figure = new_figure(3.8, 3.8)
    ax = figure.add_subplot()
    colours = _feature_arrows(ax, W)
    directions = W_dec / np.maximum(np.linalg.norm(W_dec, axis=1, keepdims=True), 1e-12)  # (latents, 2)
    owner = {int(j): i for i, j in enumerate(partner)}
    for j, (x, y) in enumerate(directions):
        # Black over the arrows, so that a direction lying on its feature's arrow still shows; the dot says whose it is.
        paired = j in owner
        ax.plot([0, x], [0, y], ls="--", lw=1.0, color="black" if paired else "0.6", zorder=3 if paired else 2)
        ax.plot([x], [y], "o", ms=5, color=colours[owner[j]] if paired else "0.6", mec="black", mew=0.6, zorder=4)
    ax.set_title(f"SAE directions (dashed): {recovered} of {W.shape[1]} features found", fontsize=9)
    return figure


def toy_sae_sweep(
    penalties: np.ndarray, recovered: Sequence[int], explained_variance: Sequence[float], n: int, recovered_at: float
) -> Figure:
    """Features recovered and explained variance against the SAE's sparsity penalty (log scale)."""
    figure = new_figure(6.4, 3.0)
    ax = figure.add_subplot()
    ax.plot(penalties, recovered, "o-", color="C3", label="features recovered")
    ax.axhline(n, color="0.5", ls="--", lw=1)
    ax.text(penalties[0], n, f" all {n}", va="bottom", fontsize=8, color="0.4")
    ax.set_ylim(-0.3, n * 1.15 + 0.5)
    ax.set_ylabel(f"features recovered (cos ≥ {recovered_at:g})", color="C3")
    ax.set_xscale("log")
    ax.set_xlabel("sparsity penalty (log scale)")
    right = ax.twinx()
    right.plot(penalties, explained_variance, "s-", color="C0", label="explained variance")
    right.set_ylim(min(0.0, float(np.min(explained_variance))) - 0.02, 1.05)
    right.set_ylabel("explained variance", color="C0")
    return figure
