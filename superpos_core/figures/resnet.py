"""The ResNet tab's figures: one layer's feature maps, where they fire on the picture, and effective rank against depth.

``heat_overlay`` blends pixels (no matplotlib); ``FeatureMapPanel`` and ``LayerRankPanel`` are live
panels, lent to a request by ``lend_feature_maps`` and ``lend_layer_ranks``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import matplotlib
import numpy as np

from superpos_core.figures.base import new_figure, tile_grid
from superpos_core.figures.live import LivePanel, PanelPool, pillow_font


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
        self.font = pillow_font(self.LABEL_POINTS, bold=True)
        self.title_font = pillow_font(self.TITLE_POINTS)

    def update(self, maps: np.ndarray, channels: list[int], title: str) -> np.ndarray:
        top = max(float(np.max(maps)), 1e-9)  # one scale for the grid: channels compare
        tiles = np.zeros((self.tiles, self.side, self.side), dtype=np.float32)
        tiles[: len(channels)] = maps[: len(channels)]
        self.image.set_data(tile_grid(tiles, self.columns, gap=self.gap))
        self.image.set_clim(0, top)
        pixels = self.render()
        step, height = self.side + self.gap, pixels.shape[0]
        corners = [((i % self.columns) * step - 0.5, (i // self.columns) * step - 0.5) for i in range(self.tiles)]
        corners = self.positions("tile corners", self.ax.transData, corners, height)  # each tile's top left
        labels = [((x + 2, y + 1), f"ch {channel}") for (x, y), channel in zip(corners, channels[: self.tiles])]
        pixels = self.stamp(
            pixels, labels, self.font, fill="white", stroke_width=1, stroke_fill=(40, 40, 40)
        )  # legible on yellow too
        (title_at,) = self.positions("title", self.title.get_transform(), [self.title.get_position()], height)
        return self.stamp(pixels, [(title_at, title)], self.title_font, fill="black", anchor="ms")  # centre, baseline


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

    def update(self, layer: str) -> np.ndarray:
        index = next(i for i, r in enumerate(self.rows) if r.layer == layer)
        row = self.rows[index]
        for marker, line, value in zip(self.markers, self.lines, (row.effective_rank, row.ratio)):
            marker.set_data([index], [value])
            line.set_xdata([index, index])
        pixels = self.render()
        (name_at,) = self.positions("layer name", self.axes[1].transAxes, [(0.02, 0.04)], pixels.shape[0])
        return self.stamp(pixels, [(name_at, layer)], self.font, fill=matplotlib.colors.to_hex("C3"), anchor="ls")


# Figures reused from one picture to the next (building one costs more than drawing it), lent to one
# request at a time: the feature-map grids by tile side, each model's rank plot by what its rows are.
_feature_maps = PanelPool(FeatureMapPanel)
_layer_ranks = PanelPool()


@contextmanager
def lend_feature_maps(side: int) -> Iterator[FeatureMapPanel]:
    """A ``FeatureMapPanel`` for maps ``side`` pixels square, lent for one drawing."""
    with _feature_maps.borrow(side) as panel:
        yield panel


@contextmanager
def lend_layer_ranks(key, rows: Sequence, title: str) -> Iterator[LayerRankPanel]:
    """A ``LayerRankPanel`` of ``rows`` and ``title``, lent for one drawing.

    Args:
        key: what names these rows (a model, its weights, the reference set): the same key always
            comes with the same rows and title, as a panel built for it is kept and lent again.
        rows: the model's ``LayerRank`` rows, input to output; used only when no panel is free.
        title: the plots' title.
    """
    with _layer_ranks.borrow(key, make=lambda _key: LayerRankPanel(rows, title)) as panel:
        yield panel
