from types import SimpleNamespace

import matplotlib.colors
import numpy as np

from superpos_core.figures import live
from superpos_core.figures import resnet as resnet_figures


def _changed_box(first: np.ndarray, second: np.ndarray) -> tuple[int, int, int, int]:
    rows, columns = np.nonzero(np.any(first != second, axis=2))
    return rows.min(), rows.max(), columns.min(), columns.max()


def test_feature_map_title_is_stamped_above_the_grid():
    panel = resnet_figures.FeatureMapPanel(side=7)
    maps = np.random.default_rng(3).random((16, 7, 7))
    first = panel.update(maps, list(range(16)), "layer1.0.conv1: the 16 strongest of 64 channels")
    second = panel.update(maps, list(range(16)), "layer4.1.conv2: the 16 strongest of 512 channels")
    top, bottom, _, _ = _changed_box(first, second)  # only the title changed, and only the title's band moved
    grid_top = first.shape[0] - panel.ax.transData.transform((0, -0.5))[1]
    assert 0 <= top and bottom < grid_top
    assert first[top : bottom + 1].min() < 80  # dark words


def test_layer_rank_panel_names_the_marked_layer():

    rows = [
        SimpleNamespace(
            layer=f"conv{i}",
            effective_rank=4 + i,
            ratio=0.5,
            channels=16,
            sample_bound=False,
            centred_effective_rank=6 + i,
        )
        for i in range(5)
    ]
    panel = resnet_figures.LayerRankPanel(rows, "test")
    first, second = panel.update("conv1"), panel.update("conv1")
    np.testing.assert_array_equal(first, second)  # the same layer draws the same picture
    renamed = panel.update("conv3")
    top, bottom, left, right = _changed_box(first, renamed)
    assert right - left > 100  # the marker moved in both plots
    red = np.array(matplotlib.colors.to_rgb("C3")) * 255
    ((x, y),) = live.pixels_from_top(
        panel.axes[1].transAxes, [(0.02, 0.04)], renamed.shape[0]
    )  # the second plot's corner
    x, y = int(x), int(y)
    corner = renamed[y - 12 : y + 3, x : x + 60].reshape(-1, 3)
    assert (np.abs(corner - red).sum(axis=1) < 60).sum() > 10  # the layer's name, in the marker's red


def test_layer_rank_panel_draws_the_centred_count_beside_the_courses():

    rows = [
        SimpleNamespace(
            layer=f"conv{i}",
            effective_rank=4 + i,
            ratio=(4 + i) / 16,
            channels=16,
            sample_bound=False,
            centred_effective_rank=6 + 2 * i,
        )
        for i in range(5)
    ]
    panel = resnet_figures.LayerRankPanel(rows, "test")
    for ax, expected in zip(panel.axes, ([6, 8, 10, 12, 14], [6 / 16, 8 / 16, 10 / 16, 12 / 16, 14 / 16])):
        (centred,) = [line for line in ax.get_lines() if line.get_label().startswith("centred")]
        np.testing.assert_allclose(centred.get_ydata(), expected)
    labels = [text.get_text() for text in panel.axes[0].get_legend().get_texts()]
    assert labels == ["course's (uncentred)", "centred (channel means removed)", "channels"]
