import numpy as np

from superpos_core.figures import lm as lm_figures
from superpos_core.figures import sae as sae_figures


def test_feature_grid_folds_each_encoder_row_into_a_named_tile():
    rows = np.random.default_rng(0).normal(size=(70, 768))
    figure = sae_figures.sae_feature_grid(rows, most=64)
    ax = figure.axes[0]
    assert [text.get_text() for text in ax.texts] == [f"feature {i}" for i in range(64)]
    assert "768 dimensions folded 24×32 (first 64 of 70)" in ax.get_title()
    (image,) = ax.images
    tiles = image.get_array()
    assert np.nanmax(np.abs(tiles)) == 1.0  # each tile on its own symmetric scale


def test_activation_bars_mark_the_features_that_never_fire():
    mean = np.array([0.5, 0.0, 1.2, 0.0, 0.3])
    ax = sae_figures.sae_activation_bars(mean).axes[0]
    marks = [text.get_position()[0] for text in ax.texts if text.get_text() == "×"]
    assert marks == [1, 3] and "fires on no token" in ax.get_xlabel()
    np.testing.assert_allclose([bar.get_height() for bar in ax.patches], mean)


def test_token_features_draw_on_a_lent_heatmap():
    acts = np.abs(np.random.default_rng(1).normal(size=(9, 30)))
    with lm_figures.lend_heatmap("sae", 9) as panel:
        pixels = sae_figures.sae_token_features(panel, acts, [f"t{i}" for i in range(9)])
        np.testing.assert_array_equal(panel.image.get_array(), acts)
        assert panel.image.get_clim()[0] == 0  # features are silent or positive: viridis from 0
    assert pixels.dtype == np.uint8 and pixels.shape[2] == 3
