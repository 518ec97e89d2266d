"""Concepts in a language model: each concept against labelled sentences, and the sentences on their principal components.

Each figure function returns a ``Figure``; ``place_labels`` writes words beside points without overlaps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from superpos_core.figures.base import drawable, new_figure

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
