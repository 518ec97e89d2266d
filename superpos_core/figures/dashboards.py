"""A feature's dashboard as pictures: its contexts as shaded tokens (HTML), its activation histogram, and the
whole SAE's feature-density histogram (Towards Monosemanticity's picture of dead, rare and dense features)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from superpos_core.figures.base import drawable, new_figure

SHADE = (255, 140, 0)  # the colour of a firing token, at full strength for the strongest activation shown


def _visible(token: str) -> str:
    """A token as the page shows it: newlines as ⏎ (the context stays on one line), tabs as →."""
    return token.replace("\n", "⏎").replace("\t", "→")


def shaded_tokens(tokens: Sequence[str], activations: Sequence[float], top: float, mark: int | None = None) -> str:
    """One context as HTML: each token's background shaded by its activation over ``top`` (0: none), the token
    ``mark`` underlined and bold, each token's value in its tooltip."""
    parts = []
    for i, (token, value) in enumerate(zip(tokens, activations)):
        strength = min(max(value / top, 0.0), 1.0) if top > 0 else 0.0
        style = f"background: rgba({SHADE[0]}, {SHADE[1]}, {SHADE[2]}, {strength:.2f});"
        if i == mark:
            style += " font-weight: bold; text-decoration: underline;"
        parts.append(
            f'<span style="{style}" title="{value:.3g}">{html.escape(_visible(token))}</span>'.replace("  ", " ")
        )
    return "".join(parts)


def example_rows(examples: Sequence[tuple[Sequence[str], Sequence[float]]], top: float) -> str:
    """Several contexts, one a line, each with its peak value first and its strongest token marked."""
    lines = []
    for tokens, activations in examples:
        peak = int(np.argmax(activations))
        lines.append(
            f'<div class="superpos-example"><code>{activations[peak]:7.2f}</code> '
            f'<span class="superpos-context">{shaded_tokens(tokens, activations, top, peak)}</span></div>'
        )
    return "\n".join(lines)


def activation_histogram(counts: np.ndarray, bins: np.ndarray, title: str) -> Figure:
    """A feature's non-zero activations counted on log-spaced ``bins`` (counts (len(bins) - 1,))."""
    figure = new_figure(5.0, 2.4)
    ax = figure.add_subplot()
    used = np.nonzero(counts)[0]
    if len(used):
        low, high = max(used[0] - 1, 0), min(used[-1] + 2, len(counts))
        ax.bar(bins[low:high], counts[low:high], width=np.diff(bins)[low:high], align="edge", color="C1")
    ax.set_xscale("log")
    ax.set_xlabel("activation (where it fires, log scale)")
    ax.set_ylabel("tokens")
    ax.set_title(drawable(title), fontsize=9)
    return figure


def density_histogram(density: np.ndarray, title: str, dense_above: float = 0.1) -> Figure:
    """Every latent's firing density (share of tokens where it is above 0) as a histogram of log₁₀ density; dead
    latents (density 0) are counted in the title, dense ones (above ``dense_above``) right of a dashed line."""
    figure = new_figure(6.0, 2.6)
    ax = figure.add_subplot()
    alive = density[density > 0]
    if len(alive):
        ax.hist(np.log10(alive), bins=50, color="C0")
    ax.axvline(np.log10(dense_above), color="0.4", linestyle="--", linewidth=1)
    ax.set_xlabel("log₁₀ of the share of corpus tokens where the feature fires")
    ax.set_ylabel("features")
    dead = int((density == 0).sum())
    ax.set_title(drawable(f"{title}: {len(density):,} features, {dead:,} never fire"), fontsize=9)
    return figure
