import numpy as np
import pytest
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


def test_the_token_table_gives_the_latents_firing_most_on_each_token_id():
    rows = np.array([[1.0, 0.0], [3.0, -1.0], [0.0, -4.0], [2.0, 2.0]], dtype=np.float32)
    row_tokens = np.array([7, 7, 3, 9])
    stats = dashboards.feature_stats(signed_pairs_sae(2), rows, chunk=3, row_tokens=row_tokens)
    assert stats.token_ids.tolist() == [3, 7, 9] and stats.token_counts.tolist() == [1, 2, 1]
    # token 7: relu(x0) averages 2.0 over its two rows, relu(-x1) 0.5
    assert stats.token_latents[1, :2].tolist() == [0, 3] and np.allclose(stats.token_means[1, :2], [2.0, 0.5])
    assert stats.token_latents[0, 0] == 3 and stats.token_means[0, 0] == 4.0  # token 3: relu(-x1) = 4


def test_interval_rows_draw_each_band_of_a_latents_range_only_from_rows_in_it():
    values = np.linspace(0.01, 1.0, 400).astype(np.float32)  # latent 0 (relu(x0)) takes each value once
    rows = np.stack([values, np.zeros_like(values)], axis=1)
    sae = signed_pairs_sae(2)
    chosen = dashboards.interval_rows(sae, rows, np.array([1.0, 0, 0, 0]), per=5, chunk=64)
    assert chosen.shape == (4, 4, 5)
    for band, (low, high) in enumerate(zip(dashboards.INTERVALS, dashboards.INTERVALS[1:])):
        picked = values[chosen[0, band]]
        assert ((picked > low) & (picked <= high)).all() and len(set(chosen[0, band].tolist())) == 5
    assert (chosen[1] == -1).all()  # a latent that never fires has no rows to show
    again = dashboards.interval_rows(sae, rows, np.array([1.0, 0, 0, 0]), per=5, chunk=400)
    assert (np.sort(values[again[0, 3]]) > 0.75).all()  # a different chunking still draws from the band
    other = dashboards.interval_rows(sae, rows, np.array([1.0, 0, 0, 0]), per=5, chunk=64, seed=1)
    assert not np.array_equal(other[0], chosen[0])  # drawn at random, not the first rows met


def test_saved_dashboards_read_back_feature_by_feature(tmp_path):
    tokens = np.array([[99, 10, 11, 12, 13], [99, 20, 21, 22, 23]])
    rows = np.zeros((8, 2), dtype=np.float32)
    rows[:, 0] = [0.1, 0.0, 5.0, 0.2, 0.0, 3.0, 0.0, 0.0]
    sae = signed_pairs_sae(2)
    stats = dashboards.feature_stats(sae, rows, top=3, row_tokens=tokens[:, 1:].reshape(-1))
    top = dashboards.top_examples(stats, sae, rows, tokens, half=1)
    chosen = dashboards.interval_rows(sae, rows, stats.top_values[:, 0], per=2)
    intervals = dashboards.examples_at(chosen.reshape(4, -1), sae, rows, tokens, half=1)
    read = dashboards.output_tokens(sae, torch.eye(2), k=2)
    path = dashboards.save_dashboards(tmp_path, stats, top, intervals, read, {"model": "m"})
    shown = dashboards.FeatureDashboards(path)
    assert shown.d_sae == 4 and shown.about == {"model": "m"}
    best = shown.top_examples(0)
    assert [e.token_ids for e in best] == [[11, 12, 13], [20, 21, 22], [12, 13]]  # the padding left out
    assert best[0].activations[:2] == [0.0, 5.0] and best[0].peak == best[0].position == 1
    assert best[2].position == 1 and best[2].activations[1] > 0.19  # token 13, its right neighbour beyond the window
    assert abs(best[0].activations[2] - 0.2) < 1e-3  # float16 on disk
    assert shown.top_examples(1) == []  # never fires
    assert shown.density(0) == 0.5
    bands = shown.interval_examples(0)
    assert [(low, high) for low, high, _ in bands] == [(0.75, 1.0), (0.5, 0.75), (0.25, 0.5), (0.0, 0.25)]
    assert [e.token_ids[e.peak] for e in bands[0][2]] == [12]  # 5.0, the only activation above 3.75
    assert shown.features_on_token(12)[0] == 1 and shown.features_on_token(12)[1][0] == (0, 5.0)
    assert shown.features_on_token(555) == (0, [])
    up, down = shown.logits(0)
    assert up[0] == (0, 1.0)
    for bad in (4, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="features 0 to 3"):
            shown.check(bad)
