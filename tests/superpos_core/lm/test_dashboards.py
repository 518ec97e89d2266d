import numpy as np
import torch

from superpos_core.lm import dashboards
from tests.helpers import signed_pairs_sae


def test_feature_stats_find_each_latents_strongest_rows_density_and_histogram():
    rows = np.array([[0.5, 0], [2.0, 0], [-3.0, 0], [7.0, 0], [0.02, 0]], dtype=np.float32)  # (5, 2)
    stats = dashboards.feature_stats(signed_pairs_sae(2), rows, top=3, chunk=2)  # chunks of 2: merged across them
    np.testing.assert_allclose(stats.density, [4 / 5, 0, 1 / 5, 0])
    assert stats.top_rows[0].tolist() == [3, 1, 0] and np.allclose(stats.top_values[0], [7.0, 2.0, 0.5])
    assert stats.top_rows[2].tolist() == [2, -1, -1] and np.allclose(stats.top_values[2], [3.0, 0, 0])
    assert (stats.top_rows[1] == -1).all() and stats.histogram[1].sum() == 0  # never fires
    assert stats.histogram[0].sum() == 4 and stats.histogram[2].sum() == 1
    for value in (0.5, 2.0, 7.0, 0.02):  # each activation counted in the bin whose edges hold it
        bin_ = np.searchsorted(dashboards.BINS, value, side="right") - 1
        assert stats.histogram[0, bin_] >= 1
    again = dashboards.feature_stats(signed_pairs_sae(2), rows, top=3, chunk=100)
    assert np.array_equal(again.top_rows, stats.top_rows) and np.array_equal(again.histogram, stats.histogram)


def test_output_tokens_are_the_decoder_directions_through_the_unembedding():
    sae = signed_pairs_sae(4)
    unembedding = torch.randn(30, 4, generator=torch.Generator().manual_seed(1))  # (vocab, d_in)
    read = dashboards.output_tokens(sae, unembedding, k=5, chunk=3)
    logits = (sae.W_dec @ unembedding.T).detach().numpy()  # (8, 30)
    for latent in range(8):
        order = np.argsort(-logits[latent])
        assert read.promoted[latent].tolist() == order[:5].tolist()
        assert read.suppressed[latent].tolist() == order[::-1][:5].tolist()
        np.testing.assert_allclose(read.promoted_by[latent], logits[latent, order[:5]], rtol=1e-6)
    # latent 4 is latent 0 backwards: what one raises most, the other lowers most
    assert read.suppressed[4].tolist() == read.promoted[0].tolist()
    np.testing.assert_allclose(read.suppressed_by[4], -read.promoted_by[0], rtol=1e-6)


def test_top_examples_are_the_strongest_tokens_in_their_context():
    # Two windows of BOS + 4 tokens: rows 0-3 are window 0's text tokens, rows 4-7 window 1's.
    tokens = np.array([[99, 10, 11, 12, 13], [99, 20, 21, 22, 23]])
    rows = np.zeros((8, 2), dtype=np.float32)
    rows[:, 0] = [0.1, 0.0, 5.0, 0.2, 0.0, 3.0, 0.0, 0.0]  # latent 0 (relu(x0)) is strongest on token 12, then 21
    sae = signed_pairs_sae(2)
    stats = dashboards.feature_stats(sae, rows, top=3)
    ids, acts = dashboards.top_examples(stats, sae, rows, tokens, half=1)
    assert ids.shape == acts.shape == (4, 3, 3)
    assert ids[0, 0].tolist() == [11, 12, 13] and np.allclose(acts[0, 0], [0.0, 5.0, 0.2])
    assert ids[0, 1].tolist() == [20, 21, 22] and np.allclose(acts[0, 1], [0.0, 3.0, 0.0])
    assert ids[0, 2].tolist() == [12, 13, dashboards.PAD]  # token 13 (0.2): its right neighbour is past the window
    assert (ids[1] == dashboards.PAD).all() and (acts[1] == 0).all()  # latent 1 never fires
