import numpy as np

from superpos_core.figures import base


def test_tile_grid_layout():
    tiles = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)
    mosaic = base.tile_grid(tiles, columns=2, gap=1)
    assert mosaic.shape == (5, 5)
    np.testing.assert_array_equal(mosaic[3:5, 0:2], tiles[2])
    assert np.isnan(mosaic[2]).all()


def test_labels_the_font_cannot_draw_are_spelled_out():
    assert base.drawable("␣was↵") == "␣was↵"  # DejaVu Sans has these
    assert base.drawable("␣🧠") == "␣:brain:" and base.drawable("本") == "U+672C"
    assert base.drawable("⋯") == "⋯"
