import matplotlib.colors
import numpy as np

from superpos_core import figures, rank


def full_redraw(panel: figures.LivePanel) -> np.ndarray:
    """Draw the panel's current state from scratch, with nothing cached."""
    for artist in panel.animated:
        artist.set_animated(False)
    try:
        return figures.to_rgb(panel.figure)
    finally:
        for artist in panel.animated:
            artist.set_animated(True)


def test_blitted_panel_equals_a_full_redraw():
    rng = np.random.default_rng(0)
    panel = figures.ActivationPanel(limit=5.0)
    first = panel.update({"fc1": rng.normal(size=128), "fc2": rng.normal(size=64), "fc3": rng.normal(size=10)})
    values = {"fc1": rng.normal(size=128), "fc2": rng.normal(size=64), "fc3": rng.normal(size=10)}
    blitted = panel.update(values)
    assert not np.array_equal(first, blitted)  # the update really changed the picture
    np.testing.assert_array_equal(blitted, full_redraw(panel))


def test_polysemanticity_picks_the_most_active_neurons():
    class_means = np.abs(np.random.default_rng(1).normal(size=(10, 128)))
    panel = figures.PolysemanticityPanel(class_means, rows=6)
    firing = np.zeros(128)
    firing[[5, 77, 3]] = [3.0, 9.0, 1.0]
    image, top = panel.update(firing)
    assert top[:3] == [77, 5, 3]
    assert image.ndim == 3 and image.shape[2] == 3
    # The row labels are stamped on the pixels: outside their boxes the picture is a full redraw
    # (static text may land a sub-pixel apart when the layout engine re-runs; anything more is a
    # bug); inside each box is dark ink on what was blank paper.
    boxes = []
    for (x, y), neuron in zip(panel.label_anchors, top):
        left, upper, right, lower = panel.font.getbbox(f"#{neuron} ({firing[neuron]:.1f})", anchor="rm")
        boxes.append((slice(int(y + upper) - 1, int(y + lower) + 2), slice(int(x + left) - 1, int(x + right) + 2)))
    redrawn = full_redraw(panel)
    outside = np.ones(image.shape[:2], bool)
    for rows, columns in boxes:
        outside[rows, columns] = False
        assert image[rows, columns].min() < 80 and redrawn[rows, columns].min() > 200  # ink here, blank paper beneath
    assert np.abs(image[outside].astype(int) - redrawn[outside].astype(int)).max() <= 8
    again, _ = panel.update(np.where(np.arange(128) == 77, 9.0, 0.0))
    assert not np.array_equal(again[boxes[1]], image[boxes[1]])  # the second label changed: #5 is no longer there


def test_static_figures_render():
    weight = np.random.default_rng(2).normal(size=(128, 784))
    trained = {"fc1": rank.summarize(weight)}
    baseline = {"fc1": rank.random_baseline(weight.shape)}
    for figure in (
        figures.spectrum(trained, baseline, 0.99),
        figures.neuron_weight_grid(weight),
        figures.weight_heatmaps({"fc1": weight}),
    ):
        rgb = figures.to_rgb(figure)
        assert rgb.dtype == np.uint8 and rgb.shape[1] == 700  # 7 inches at 100 dpi


def test_tile_grid_layout():
    tiles = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)
    mosaic = figures.tile_grid(tiles, columns=2, gap=1)
    assert mosaic.shape == (5, 5)
    np.testing.assert_array_equal(mosaic[3:5, 0:2], tiles[2])
    assert np.isnan(mosaic[2]).all()


def test_concept_bars_draw_each_value_in_its_label_colour():
    raw = np.array([[0.9, 0.8, 0.85], [0.6, 0.7, 0.65]])
    centred = np.array([[0.2, -0.1, -0.1], [-0.15, 0.25, -0.1]])
    figure = figures.concept_correlation_bars(["warm", "cold"], ["pos", "neg", "neu"], raw, centred, "test")
    colours = figures.label_colours(["pos", "neg", "neu"])
    for ax, values in zip(figure.axes, (raw, centred)):
        bars = sorted(ax.patches, key=lambda bar: bar.get_x())  # concept by concept, labels in order within each
        np.testing.assert_allclose([bar.get_height() for bar in bars], values.ravel())
        assert [tuple(bar.get_facecolor()) for bar in bars[:3]] == [
            matplotlib.colors.to_rgba(colours[label]) for label in ("pos", "neg", "neu")
        ]
        assert [tick.get_text() for tick in ax.get_xticklabels()] == ["warm", "cold"]
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["pos", "neg", "neu"]
    assert figures.to_rgb(figure).shape[1] == 760


def test_concept_pca_puts_each_sentence_at_its_coordinates():
    coordinates = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, -3.0]])
    figure = figures.concept_pca_scatter(
        coordinates, ["b", "a", "b"], [0.61, 0.2], ["first sentence", "second", "third one"], "test"
    )
    ax = figure.axes[0]
    points = {collection.get_label(): collection.get_offsets() for collection in ax.collections}
    assert list(points) == ["b (2)", "a (1)"]  # labels in order of first appearance, with their counts
    np.testing.assert_allclose(points["b (2)"], coordinates[[0, 2]])
    assert "61%" in ax.get_xlabel() and "20%" in ax.get_ylabel()
    assert sorted(text.get_text() for text in ax.texts) == ["first sentence", "second", "third one"]
    many = figures.concept_pca_scatter(np.zeros((40, 2)), ["x"] * 40, [0.5, 0.1], ["s"] * 40, "test")
    assert not many.axes[0].texts  # past 32 sentences the words would pile up: the points alone


def test_a_panel_pool_lends_each_figure_to_one_drawing_at_a_time():
    import threading

    made = []
    pool = figures.PanelPool(lambda key: made.append(key) or object())
    with pool.borrow("a") as first:
        with pool.borrow("a") as second:
            assert first is not second  # two drawings at once: two figures
        with pool.borrow("a") as third:
            assert third is second  # given back, lent again: not built anew
    assert made == ["a", "a"] and pool.count() == 2
    with pool.borrow("b", make=lambda key: "special") as other:
        assert other == "special"

    # Drawings on twenty different threads, one after another, reuse the same figures: no copy per thread.
    def draw():
        with pool.borrow("a"):
            pass

    for _ in range(20):
        thread = threading.Thread(target=draw)
        thread.start()
        thread.join()
    assert made == ["a", "a"] and pool.count() == 3  # two for "a", one for "b"


def test_a_panel_pool_can_build_its_figures_ahead():
    made = []
    pool = figures.PanelPool(lambda key: made.append(key) or len(made))
    pool.prepare(3)
    pool.prepare(2)  # already there: nothing more is built
    assert made == [None, None, None] and pool.count() == 3
    with pool.borrow() as first, pool.borrow() as second, pool.borrow() as third:
        assert {first, second, third} == {1, 2, 3} and len(made) == 3  # three drawings at once, none waits on a build


def test_figures_built_ahead_are_drawn_ahead():
    """A crowd's first drawings only draw what changed: the layout, axes and labels were drawn when the pool built the set."""
    rng = np.random.default_rng(3)
    pool = figures.PanelPool(
        lambda _key: {
            "activations": figures.ActivationPanel(limit=5.0),
            "histograms": figures.HistogramPanel({"fc1": rng.normal(size=(50, 128)), "fc2": rng.normal(size=(50, 64))}),
        }
    )
    pool.prepare(2)

    def must_not_draw_it_all(*args, **kwargs):
        raise AssertionError("a whole figure was drawn while a request waited")

    with pool.borrow() as panels:
        for panel in panels.values():
            panel.figure.canvas.draw = must_not_draw_it_all
        picture = panels["activations"].update(
            {"fc1": rng.normal(size=128), "fc2": rng.normal(size=64), "fc3": rng.normal(size=10)}
        )
        panels["histograms"].update({"fc1": rng.normal(size=128), "fc2": rng.normal(size=64)})
    assert picture.shape[2] == 3


def _changed_box(first: np.ndarray, second: np.ndarray) -> tuple[int, int, int, int]:
    rows, columns = np.nonzero(np.any(first != second, axis=2))
    return rows.min(), rows.max(), columns.min(), columns.max()


def test_feature_map_title_is_stamped_above_the_grid():
    panel = figures.FeatureMapPanel(side=7)
    maps = np.random.default_rng(3).random((16, 7, 7))
    first = panel.update(maps, list(range(16)), "layer1.0.conv1: the 16 strongest of 64 channels")
    second = panel.update(maps, list(range(16)), "layer4.1.conv2: the 16 strongest of 512 channels")
    top, bottom, _, _ = _changed_box(first, second)  # only the title changed, and only the title's band moved
    grid_top = first.shape[0] - panel.ax.transData.transform((0, -0.5))[1]
    assert 0 <= top and bottom < grid_top
    assert first[top : bottom + 1].min() < 80  # dark words


def test_layer_rank_panel_names_the_marked_layer():
    from types import SimpleNamespace

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
    panel = figures.LayerRankPanel(rows, "test")
    first, second = panel.update("conv1"), panel.update("conv1")
    np.testing.assert_array_equal(first, second)  # the same layer draws the same picture
    renamed = panel.update("conv3")
    top, bottom, left, right = _changed_box(first, renamed)
    assert right - left > 100  # the marker moved in both plots
    red = np.array(matplotlib.colors.to_rgb("C3")) * 255
    x, y = (int(v) for v in panel._name_at)
    corner = renamed[y - 12 : y + 3, x : x + 60].reshape(-1, 3)
    assert (np.abs(corner - red).sum(axis=1) < 60).sum() > 10  # the layer's name, in the marker's red


def test_dimensionality_reference_lines_are_the_shapes_they_name():
    """Each labelled line sits at the dimensionality its shape really gives (the triangle was once drawn at 1/3)."""
    from superpos_core import toy

    def polygon(k):
        angles = 2 * np.pi * np.arange(k) / k
        return np.stack([np.cos(angles), np.sin(angles)])  # (2, k)

    tetrahedron = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float).T / np.sqrt(3)  # (3, 4)
    square = np.arange(4) * np.pi / 2
    ring = np.concatenate([square, square + np.pi / 4])  # two squares, one turned by 45°
    height = np.repeat([1, -1], 4) / np.sqrt(3)  # the height at which the 8 directions share space evenly
    antiprism = np.stack([np.sqrt(2 / 3) * np.cos(ring), np.sqrt(2 / 3) * np.sin(ring), height])  # (3, 8)
    shapes = {
        "own dimension": np.eye(1),
        "tetrahedron": tetrahedron,
        "triangle": polygon(3),
        "antipodal pair": np.array([[1.0, -1.0]]),
        "pentagon": polygon(5),
        "square antiprism": antiprism,
        "hexagon": polygon(6),
    }
    lines = dict((name.split("  ", 1)[1].split(" (")[0], value) for value, name in figures.DIMENSIONALITY_GEOMETRIES)
    assert set(lines) == set(shapes)
    for name, W in shapes.items():
        D = toy.feature_dimensionality(W)
        np.testing.assert_allclose(D, lines[name], atol=1e-12, err_msg=name)  # every feature of the shape alike
    figures.toy_dimensionality(np.full(5, 0.4), 3.4)  # and the figure draws with them


def test_layer_rank_panel_draws_the_centred_count_beside_the_courses():
    from types import SimpleNamespace

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
    panel = figures.LayerRankPanel(rows, "test")
    for ax, expected in zip(panel.axes, ([6, 8, 10, 12, 14], [6 / 16, 8 / 16, 10 / 16, 12 / 16, 14 / 16])):
        (centred,) = [line for line in ax.get_lines() if line.get_label().startswith("centred")]
        np.testing.assert_allclose(centred.get_ydata(), expected)
    labels = [text.get_text() for text in panel.axes[0].get_legend().get_texts()]
    assert labels == ["course's (uncentred)", "centred (channel means removed)", "channels"]


def test_a_long_texts_heatmap_names_each_row_it_draws_with_its_own_token():
    rng = np.random.default_rng(0)
    T = 200
    labels = [f"t{i}" for i in range(T)]
    panel = figures.TokenHeatmap(T)
    pixels = figures.lm_token_heatmap(panel, rng.normal(size=(T, 40)), labels, None, "long text")
    drawn = panel.image.get_array()
    assert (
        drawn.shape[0] == figures.TokenHeatmap.MAX_ROWS == 64
    )  # the first 64 tokens, not 200 squeezed into 64 rows' height
    assert "the first 64 of 200" in panel.ax.get_ylabel()
    assert [(row, name) for row, _, name in panel.row_names] == [(i, labels[i]) for i in range(64)]
    for row, y, _ in panel.row_names:  # each name sits on its own row's band of colour
        top, bottom = panel.row_band(row, pixels.shape[0])
        assert top < y < bottom and bottom - top >= 10
    short = figures.TokenHeatmap(5)
    figures.lm_token_heatmap(short, rng.normal(size=(5, 40)), labels[:5], None, "short")
    assert short.image.get_array().shape[0] == 5 and [name for _, _, name in short.row_names] == labels[:5]


def test_labels_the_font_cannot_draw_are_spelled_out():
    assert figures.drawable("␣was↵") == "␣was↵"  # DejaVu Sans has these
    assert figures.drawable("␣🧠") == "␣:brain:" and figures.drawable("本") == "U+672C"
    assert figures.drawable("⋯") == "⋯"


def test_crowded_pca_labels_do_not_overlap():
    import matplotlib.text

    rng = np.random.default_rng(0)
    texts = [f"sentence number {i} is quite long" for i in range(32)]
    for coordinates in (
        rng.normal(size=(32, 2)) * 0.01,
        np.zeros((32, 2)),
        np.r_[np.zeros((16, 2)), rng.normal(size=(16, 2))],
    ):
        figure = figures.concept_pca_scatter(coordinates, ["a", "b", "c", "d"] * 8, [0.5, 0.2], texts, "crowded")
        figures.to_rgb(figure)
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
