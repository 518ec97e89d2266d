import numpy as np

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
