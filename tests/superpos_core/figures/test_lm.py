import numpy as np

from superpos_core.figures import lm as lm_figures


def test_a_long_texts_heatmap_names_each_row_it_draws_with_its_own_token():
    rng = np.random.default_rng(0)
    T = 200
    labels = [f"t{i}" for i in range(T)]
    panel = lm_figures.TokenHeatmap(T)
    pixels = lm_figures.lm_token_heatmap(panel, rng.normal(size=(T, 40)), labels, None, "long text")
    drawn = panel.image.get_array()
    assert (
        drawn.shape[0] == lm_figures.TokenHeatmap.MAX_ROWS == 64
    )  # the first 64 tokens, not 200 squeezed into 64 rows' height
    assert "the first 64 of 200" in panel.ax.get_ylabel()
    assert [(row, name) for row, _, name in panel.row_names] == [(i, labels[i]) for i in range(64)]
    for row, y, _ in panel.row_names:  # each name sits on its own row's band of colour
        top, bottom = panel.row_band(row, pixels.shape[0])
        assert top < y < bottom and bottom - top >= 10
    short = lm_figures.TokenHeatmap(5)
    lm_figures.lm_token_heatmap(short, rng.normal(size=(5, 40)), labels[:5], None, "short")
    assert short.image.get_array().shape[0] == 5 and [name for _, _, name in short.row_names] == labels[:5]


def test_heatmaps_are_lent_in_a_few_heights_and_kept():
    assert [lm_figures.heatmap_rows(t) for t in (1, 8, 9, 40, 64, 1000)] == [8, 8, 16, 40, 64, 64]
    with lm_figures.lend_heatmap("activations", 13) as first:
        assert first.image.get_cmap().name == "coolwarm"
    with lm_figures.lend_heatmap("activations", 15) as again, lm_figures.lend_heatmap("activations", 14) as other:
        assert again is first and other is not first  # the same height, lent again; two at once, two panels
    with lm_figures.lend_heatmap("sae", 13) as sae:
        assert sae is not first and sae.image.get_cmap().name == "viridis"
