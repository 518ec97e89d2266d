import numpy as np

from superpos_core import toy
from superpos_core.figures import toy as toy_figures


def test_dimensionality_reference_lines_are_the_shapes_they_name():
    """Each labelled line sits at the dimensionality its shape really gives (the triangle was once drawn at 1/3)."""

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
    lines = dict(
        (name.split("  ", 1)[1].split(" (")[0], value) for value, name in toy_figures.DIMENSIONALITY_GEOMETRIES
    )
    assert set(lines) == set(shapes)
    for name, W in shapes.items():
        D = toy.feature_dimensionality(W)
        np.testing.assert_allclose(D, lines[name], atol=1e-12, err_msg=name)  # every feature of the shape alike
    toy_figures.toy_dimensionality(np.full(5, 0.4), 3.4)  # and the figure draws with them
