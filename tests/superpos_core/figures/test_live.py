import threading

import numpy as np

from superpos_core.figures import live
from superpos_core.figures import mnist as mnist_figures
from superpos_core.figures.base import fixed_figure


def test_a_panel_pool_lends_each_figure_to_one_drawing_at_a_time():
    made = []
    pool = live.PanelPool(lambda key: made.append(key) or object())
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
    pool = live.PanelPool(lambda key: made.append(key) or len(made))
    pool.prepare(3)
    pool.prepare(2)  # already there: nothing more is built
    assert made == [None, None, None] and pool.count() == 3
    with pool.borrow() as first, pool.borrow() as second, pool.borrow() as third:
        assert {first, second, third} == {1, 2, 3} and len(made) == 3  # three drawings at once, none waits on a build


def test_figures_built_ahead_are_drawn_ahead():
    """A crowd's first drawings only draw what changed: the layout, axes and labels were drawn when the pool built the set."""
    rng = np.random.default_rng(3)
    pool = live.PanelPool(
        lambda _key: {
            "activations": mnist_figures.ActivationPanel(limit=5.0),
            "histograms": mnist_figures.HistogramPanel(
                {"fc1": rng.normal(size=(50, 128)), "fc2": rng.normal(size=(50, 64))}
            ),
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


class Marker(live.LivePanel):
    """A dot at (x, 5) and its x written at the fixed point (8, 8): blitted if ``animated``, else drawn whole."""

    def __init__(self, animated: bool):
        super().__init__(fixed_figure(3.0, 1.0))
        self.ax = self.figure.add_axes((0.05, 0.05, 0.9, 0.9))
        self.ax.set_axis_off()
        self.ax.set_xlim(0, 10)
        self.ax.set_ylim(0, 10)
        (self.dot,) = self.ax.plot([], [], "o", color="C0")
        if animated:
            self.animate(self.dot)
        self.font = live.pillow_font(10)

    def update(self, x: float) -> np.ndarray:
        self.dot.set_data([x], [5])
        pixels = self.render()
        (at,) = self.positions("label", self.ax.transData, [(8, 8)], pixels.shape[0])
        return self.stamp(pixels, [(at, f"x = {x}")], self.font, fill="black", anchor="mm")


class CountingTransform:
    def __init__(self):
        self.calls = 0

    def transform(self, points):
        self.calls += 1
        return np.asarray(points, dtype=float)


def test_label_positions_are_measured_once_per_layout():
    """A blitted panel's layout is fixed, so it measures once; a panel drawn whole measures again after each drawing."""
    counting = CountingTransform()
    blitted = Marker(animated=True)
    blitted.update(1.0)
    assert blitted.positions("probe", counting, [(3.0, 4.0)], 100) == [(3.0, 96.0)]  # from the top of 100 pixels
    blitted.positions("probe", counting, [(3.0, 4.0)], 100)
    blitted.update(2.0)
    blitted.positions("probe", counting, [(3.0, 4.0)], 100)
    assert counting.calls == 1
    whole = Marker(animated=False)
    whole.update(1.0)
    whole.positions("probe", counting, [(3.0, 4.0)], 100)
    whole.update(2.0)
    whole.positions("probe", counting, [(3.0, 4.0)], 100)
    assert counting.calls == 3


def _ink_column(pixels: np.ndarray) -> float:
    """The mean column of the black (stamped) pixels."""
    return float(np.nonzero((pixels < 60).all(axis=2))[1].mean())


def test_a_panel_drawn_whole_stamps_its_labels_where_its_new_layout_puts_them():
    panel = Marker(animated=False)
    near = _ink_column(panel.update(5.0))
    panel.ax.set_xlim(0, 20)  # the label's point now sits half as far across
    far = _ink_column(panel.update(5.0))
    width = panel.ax.get_window_extent().width
    np.testing.assert_allclose(near - far, 0.4 * width, atol=1)
