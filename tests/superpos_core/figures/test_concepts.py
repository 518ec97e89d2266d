import matplotlib.colors
import matplotlib.text
import numpy as np

from superpos_core.figures import concepts as concept_figures
from superpos_core.figures.base import to_rgb


def test_concept_bars_draw_each_value_in_its_label_colour():
    raw = np.array([[0.9, 0.8, 0.85], [0.6, 0.7, 0.65]])
    centred = np.array([[0.2, -0.1, -0.1], [-0.15, 0.25, -0.1]])
    figure = concept_figures.concept_correlation_bars(["warm", "cold"], ["pos", "neg", "neu"], raw, centred, "test")
    colours = concept_figures.label_colours(["pos", "neg", "neu"])
    for ax, values in zip(figure.axes, (raw, centred)):
        bars = sorted(ax.patches, key=lambda bar: bar.get_x())  # concept by concept, labels in order within each
        np.testing.assert_allclose([bar.get_height() for bar in bars], values.ravel())
        assert [tuple(bar.get_facecolor()) for bar in bars[:3]] == [
            matplotlib.colors.to_rgba(colours[label]) for label in ("pos", "neg", "neu")
        ]
        assert [tick.get_text() for tick in ax.get_xticklabels()] == ["warm", "cold"]
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["pos", "neg", "neu"]
    assert to_rgb(figure).shape[1] == 760


def test_concept_pca_puts_each_sentence_at_its_coordinates():
    coordinates = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, -3.0]])
    figure = concept_figures.concept_pca_scatter(
        coordinates, ["b", "a", "b"], [0.61, 0.2], ["first sentence", "second", "third one"], "test"
    )
    ax = figure.axes[0]
    points = {collection.get_label(): collection.get_offsets() for collection in ax.collections}
    assert list(points) == ["b (2)", "a (1)"]  # labels in order of first appearance, with their counts
    np.testing.assert_allclose(points["b (2)"], coordinates[[0, 2]])
    assert "61%" in ax.get_xlabel() and "20%" in ax.get_ylabel()
    assert sorted(text.get_text() for text in ax.texts) == ["first sentence", "second", "third one"]
    many = concept_figures.concept_pca_scatter(np.zeros((40, 2)), ["x"] * 40, [0.5, 0.1], ["s"] * 40, "test")
    assert not many.axes[0].texts  # past 32 sentences the words would pile up: the points alone


def test_crowded_pca_labels_do_not_overlap():

    rng = np.random.default_rng(0)
    texts = [f"sentence number {i} is quite long" for i in range(32)]
    for coordinates in (
        rng.normal(size=(32, 2)) * 0.01,
        np.zeros((32, 2)),
        np.r_[np.zeros((16, 2)), rng.normal(size=(16, 2))],
    ):
        figure = concept_figures.concept_pca_scatter(
            coordinates, ["a", "b", "c", "d"] * 8, [0.5, 0.2], texts, "crowded"
        )
        to_rgb(figure)
        renderer = figure.canvas.get_renderer()
        ax = figure.axes[0]
        boxes = [
            matplotlib.text.Text.get_window_extent(text, renderer) for text in ax.texts
        ]  # the words, without their leader lines
        assert len(boxes) == 32  # every sentence found a place
        assert not [(i, j) for i in range(32) for j in range(i) if boxes[i].overlaps(boxes[j])]
        frame = ax.get_window_extent(renderer)
        assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
        legend = figure.legends[0].get_window_extent(renderer)
        assert not any(legend.overlaps(b) for b in boxes)
