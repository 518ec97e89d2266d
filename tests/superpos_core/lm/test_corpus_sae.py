import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from superpos_core import lm
from superpos_core.lm import corpus_activations, corpus_sae
from superpos_core.sae import load_pretrained_sae
from superpos_core.sae.train import SAE, SAETrainConfig
from tests.helpers import TINY_D_MODEL, build_tiny_corpus, save_tiny_gpt2, signed_pairs_sae


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return lm.load(save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2")), allow_any=True)


def test_stored_rows_are_drawn_from_the_file_reproducibly(tmp_path):
    acts = np.arange(3 * 4 * 2, dtype=np.float16).reshape(3, 4, 2)  # 12 rows of 2
    np.save(tmp_path / "acts.npy", acts)
    draw = corpus_sae.stored_rows(tmp_path / "acts.npy", seed=5)
    batch = draw(50)
    assert batch.shape == (50, 2) and batch.dtype == torch.float32
    assert set(map(tuple, batch.tolist())) <= set(map(tuple, acts.reshape(-1, 2).astype(np.float32).tolist()))
    assert torch.equal(batch, corpus_sae.stored_rows(tmp_path / "acts.npy", seed=5)(50))


def test_the_scale_gives_a_mean_squared_norm_of_d_model_and_folds_into_the_weights(tmp_path):
    rows = np.random.default_rng(0).normal(3.0, 10.0, (1, 500, 6)).astype(np.float16)
    np.save(tmp_path / "acts.npy", rows)
    scale = corpus_sae.activation_scale(tmp_path / "acts.npy")
    scaled = corpus_sae.stored_rows(tmp_path / "acts.npy", scale=scale)(4000)
    assert float(scaled.pow(2).sum(1).mean()) == pytest.approx(6.0, rel=0.1)
    sae = SAE(SAETrainConfig(d_in=6, n_latents=12), torch.Generator().manual_seed(1))
    with torch.no_grad():
        sae.b_dec.normal_(generator=torch.Generator().manual_seed(2))
        sae.b_enc.normal_(generator=torch.Generator().manual_seed(3))
    x = torch.as_tensor(rows[0, :50], dtype=torch.float32)
    reconstruction, features = sae(x * scale)
    corpus_sae.fold_scale(sae, scale)
    folded_reconstruction, folded_features = sae(x)
    torch.testing.assert_close(folded_features, features)  # the same features
    torch.testing.assert_close(folded_reconstruction, reconstruction / scale)  # of the stream as it is


def test_measure_counts_l0_dead_and_dense_latents():
    rows = np.array([[1.0, 0.0, -2.0], [3.0, 0.0, 0.5], [-1.0, 0.0, 4.0], [2.0, 0.0, 1.0]], dtype=np.float32)
    measured = corpus_sae.measure(signed_pairs_sae(3), rows, batch=3)
    assert measured["explained_variance"] == pytest.approx(1.0)
    assert measured["l0"] == pytest.approx(2.0)  # two non-zero coordinates per row
    # latent densities: relu(x0) on 3 of 4 rows, relu(x1) never, relu(x2) 3/4, relu(-x0) 1/4, relu(-x1) never, relu(-x2) 1/4
    np.testing.assert_allclose(measured["density"], [0.75, 0, 0.75, 0.25, 0, 0.25])
    assert measured["dead"] == 2 and measured["dense"] == 4 and measured["rows"] == 4


def test_ce_loss_recovered_is_one_for_a_perfect_reconstruction_and_zero_for_none(tiny):
    windows = np.array([[tiny.tokenizer.eos_token_id, 5, 9, 30, 2, 7, 11, 40]] * 3)
    blocks = corpus_activations.blocks_of(tiny.model, tiny.n_layers - 1)
    before = [list(b._forward_hooks) for b in blocks]
    perfect = corpus_sae.ce_loss_recovered(tiny, signed_pairs_sae(TINY_D_MODEL), 1, windows, batch=2)
    assert perfect["spliced"] == pytest.approx(perfect["clean"], abs=1e-5)  # rebuilt exactly: the model is unchanged
    assert perfect["zeroed"] != pytest.approx(perfect["clean"])  # the splice does reach the model
    nothing = corpus_sae.ce_loss_recovered(tiny, signed_pairs_sae(TINY_D_MODEL, scale_decoder=0.0), 1, windows)
    assert nothing["spliced"] == pytest.approx(nothing["zeroed"], abs=1e-5)  # a reconstruction of 0 is the layer zeroed
    for result in (perfect, nothing):
        gap = result["zeroed"] - result["clean"]  # a random model may even do better zeroed: then it is undefined
        expected = (result["zeroed"] - result["spliced"]) / gap if gap > 0 else None
        assert result["recovered"] == (pytest.approx(expected) if expected is not None else None)
    assert [list(b._forward_hooks) for b in blocks] == before  # the splice is gone


@pytest.mark.slow
def test_build_trains_measures_and_saves_an_sae_our_loader_reads(tiny, tmp_path):
    build_tiny_corpus(tmp_path / "corpus", documents=40, repeats=4)
    corpus_activations.build(tiny, tmp_path / "corpus", 1, tmp_path / "acts", context=16, log=lambda _: None)
    provenance = corpus_sae.build(
        tmp_path / "acts",
        tmp_path / "sae",
        tmp_path / "corpus",
        tiny,
        expansion=2,
        steps=60,
        batch_size=64,
        penalties=(0.01, 0.5),
    )
    assert [c["penalty"] for c in provenance["candidates"]] == [0.01, 0.5]
    assert (
        provenance["held_out"]
        == provenance["candidates"][corpus_sae.chosen([c["measured"] for c in provenance["candidates"]])]["measured"]
    )
    assert provenance["layer"] == 1 and provenance["recipe"]["n_latents"] == 2 * TINY_D_MODEL
    assert provenance["activation_scale"]["factor"] > 0
    held_out = provenance["held_out"]
    assert 0 < held_out["explained_variance"] <= 1 and held_out["l0"] > 0
    assert set(provenance["ce_loss"]) == {"windows", "clean", "spliced", "zeroed", "recovered"}
    assert json.loads((tmp_path / "sae" / "provenance.json").read_text()) == provenance
    loaded = load_pretrained_sae(tmp_path / "sae")
    assert loaded.d_sae == 2 * TINY_D_MODEL and loaded.d_in == TINY_D_MODEL
    assert np.load(tmp_path / "sae" / "feature_density.npy").shape == (2 * TINY_D_MODEL,)
    weights = tmp_path / "sae" / "sae_weights.safetensors"
    with safe_open(str(weights), "pt") as stored:
        assert {stored.get_tensor(name).dtype for name in stored.keys()} == {torch.float16}  # half the file
    assert provenance["sha256"]["sae_weights.safetensors"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    # What was measured is the file's SAE: its held-out figures again, from the weights as read back.
    rows = corpus_sae.flat_rows(tmp_path / "acts" / "acts_eval.npy")[: corpus_sae.EVAL_ROWS]
    x = torch.as_tensor(np.asarray(rows, dtype=np.float32))
    again = 1 - (loaded(x) - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert float(again) == pytest.approx(held_out["explained_variance"], abs=1e-4)


def test_the_kept_sae_is_the_least_penalised_one_sparse_enough():
    assert corpus_sae.chosen([{"l0": 90.0}, {"l0": 50.0}, {"l0": 20.0}]) == 1
    assert corpus_sae.chosen([{"l0": 10.0}, {"l0": 5.0}]) == 0
    assert corpus_sae.chosen([{"l0": 200.0}, {"l0": 100.0}, {"l0": 70.0}]) == 2  # none is: the sparsest
