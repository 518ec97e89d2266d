import numpy as np
import pytest

from superpos_core import rank
from superpos_core.figures import live
from superpos_core.figures import mnist as mnist_figures
from superpos_core.figures.base import to_rgb


def full_redraw(panel: live.LivePanel) -> np.ndarray:
    """Draw the panel's current state from scratch, with nothing cached."""
    for artist in panel.animated:
        artist.set_animated(False)
    try:
        return to_rgb(panel.figure)
    finally:
        for artist in panel.animated:
            artist.set_animated(True)


def test_blitted_panel_equals_a_full_redraw():
    rng = np.random.default_rng(0)
    panel = mnist_figures.ActivationPanel(limit=5.0)
    first = panel.update({"fc1": rng.normal(size=128), "fc2": rng.normal(size=64), "fc3": rng.normal(size=10)})
    values = {"fc1": rng.normal(size=128), "fc2": rng.normal(size=64), "fc3": rng.normal(size=10)}
    blitted = panel.update(values)
    assert not np.array_equal(first, blitted)  # the update really changed the picture
    np.testing.assert_array_equal(blitted, full_redraw(panel))


def test_polysemanticity_picks_the_most_active_neurons():
    class_means = np.abs(np.random.default_rng(1).normal(size=(10, 128)))
    panel = mnist_figures.PolysemanticityPanel(class_means, rows=6)
    firing = np.zeros(128)
    firing[[5, 77, 3]] = [3.0, 9.0, 1.0]
    image = panel.update(firing)
    top = panel.neurons
    assert top[:3] == [77, 5, 3]
    assert image.ndim == 3 and image.shape[2] == 3
    # The row labels are stamped on the pixels: outside their boxes the picture is a full redraw
    # (static text may land a sub-pixel apart when the layout engine re-runs; anything more is a
    # bug); inside each box is dark ink on what was blank paper.
    boxes = []
    anchors = live.pixels_from_top(
        panel.ax.transData, [(-0.6, r) for r in range(6)], image.shape[0]
    )  # left of each row
    for (x, y), neuron in zip(anchors, top):
        left, upper, right, lower = panel.font.getbbox(f"#{neuron} ({firing[neuron]:.1f})", anchor="rm")
        boxes.append((slice(int(y + upper) - 1, int(y + lower) + 2), slice(int(x + left) - 1, int(x + right) + 2)))
    redrawn = full_redraw(panel)
    outside = np.ones(image.shape[:2], bool)
    for rows, columns in boxes:
        outside[rows, columns] = False
        assert image[rows, columns].min() < 80 and redrawn[rows, columns].min() > 200  # ink here, blank paper beneath
    assert np.abs(image[outside].astype(int) - redrawn[outside].astype(int)).max() <= 8
    again = panel.update(np.where(np.arange(128) == 77, 9.0, 0.0))
    assert not np.array_equal(again[boxes[1]], image[boxes[1]])  # the second label changed: #5 is no longer there


def test_static_figures_render():
    weight = np.random.default_rng(2).normal(size=(128, 784))
    trained = {"fc1": rank.summarize(weight)}
    baseline = {"fc1": rank.random_baseline(weight.shape)}
    for figure in (
        mnist_figures.spectrum(trained, baseline, 0.99),
        mnist_figures.neuron_weight_grid(weight),
        mnist_figures.weight_heatmaps({"fc1": weight}),
    ):
        rgb = to_rgb(figure)
        assert rgb.dtype == np.uint8 and rgb.shape[1] == 700  # 7 inches at 100 dpi


@pytest.mark.slow
def test_sae_feature_panel_shows_each_feature_as_its_picture_and_blanks_the_rest():
    pictures = np.zeros((40, 28, 28))
    for index in range(40):
        pictures[index, index % 28, :] = 1.0  # feature i: a line across row i % 28
    panel = mnist_figures.SAEFeaturePanel(pictures, slots=8)
    features = [(5, 3.5), (12, 2.0), (30, 0.4)]
    image = panel.update(features, [7, 1, 9], [9, 7, 7], prediction=7, explained_variance=0.91)
    assert image.dtype == np.uint8 and image.shape[1] == 700 and image.shape[2] == 3
    tiles = []
    for slot in range(8):  # each slot's tile, from where its corners land on the picture
        x, y = panel._cell(slot)
        (left, top), (right, bottom) = live.pixels_from_top(
            panel.ax.transData, [(x - 0.5, y - 0.5), (x + 27.5, y + 27.5)], image.shape[0]
        )
        tiles.append(image[int(top) + 2 : int(bottom) - 2, int(left) + 2 : int(right) - 2])
    assert all(t.min() < 100 for t in tiles[:3])  # a line of ink in each shown feature's tile
    assert all(t.min() > 240 for t in tiles[3:])  # blank paper in the slots left over
    fewer = panel.update(features[:1], [7], [9], prediction=7, explained_variance=0.5)
    assert not np.array_equal(fewer, image)
    assert (
        panel.update(features, [7, 1, 9], [9, 7, 7], prediction=7, explained_variance=0.91).tolist() == image.tolist()
    )


def test_concentration_figure_draws_both_distributions():
    rng = np.random.default_rng(3)
    neurons = rng.uniform(0.1, 1.0, 128)
    neurons[:5] = np.nan  # not counted
    rgb = to_rgb(mnist_figures.concentration(neurons, rng.uniform(0.1, 1.0, 512), chance=0.26, top=20))
    assert rgb.dtype == np.uint8 and rgb.shape[1] == 700


@pytest.mark.slow
def test_sae_feature_panel_shows_each_features_strongest_digits_under_its_tile():
    pictures = np.zeros((10, 28, 28))
    strips = np.zeros((10, 3, 14, 14))
    strips[4, :2] = 1.0  # feature 4: two strongest digits (solid ink), then none
    panel = mnist_figures.SAEFeaturePanel(pictures, slots=6, top_digits=strips)
    image = panel.update([(4, 2.0), (7, 1.0)], [3, 3], [3, 3], prediction=3, explained_variance=0.8)

    def digit_at(slot: int, k: int) -> np.ndarray:
        """The picture's pixels where the k-th strip digit of ``slot`` lies (a margin in from its edges)."""
        row, column = divmod(slot, panel.COLUMNS)
        x0 = column * panel.CELL_W + (panel.CELL_W - 44) // 2 + 15 * k
        y0 = row * panel.cell_h + panel.strip_top + panel.STRIP_GAP
        (left, top), (right, bottom) = live.pixels_from_top(
            panel.ax.transData, [(x0 - 0.5, y0 - 0.5), (x0 + 13.5, y0 + 13.5)], image.shape[0]
        )
        return image[int(top) + 2 : int(bottom) - 2, int(left) + 2 : int(right) - 2]

    assert digit_at(0, 0).max() < 60 and digit_at(0, 1).max() < 60  # feature 4's two digits: ink
    assert digit_at(0, 2).min() > 240  # it fires on no third digit: paper
    assert all(digit_at(1, k).min() > 240 for k in range(3))  # feature 7 has none
    plain = mnist_figures.SAEFeaturePanel(pictures, slots=6)  # without strips, the cells are shorter
    assert plain.cell_h < panel.cell_h
