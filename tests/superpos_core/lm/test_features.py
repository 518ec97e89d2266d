"""The features module on an SAE made by the whole pipeline (corpus, activations, SAE, dashboards) for a tiny model."""

import hashlib

import numpy as np
import pytest
import torch

from superpos_core import lm
from superpos_core.lm import corpus_activations, corpus_sae, dashboards, features
from tests.helpers import build_tiny_corpus, save_tiny_gpt2, tiny_gpt2_release


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """(loaded tiny model, FeatureSAE) built as the bundled SAE is, on a tiny corpus."""
    root = tmp_path_factory.mktemp("features")
    loaded = lm.load(save_tiny_gpt2(root / "tiny-gpt2"), allow_any=True)
    build_tiny_corpus(root / "corpus", documents=40, repeats=4)
    corpus_activations.build(loaded, root / "corpus", 1, root / "acts", context=48, log=lambda _: None)
    corpus_sae.build(
        root / "acts", root / "sae", root / "corpus", None, expansion=2, steps=80, batch_size=64, penalties=(0.01,)
    )
    unembedding = loaded.model.get_output_embeddings().weight.detach()
    dashboards.build_dashboards(
        features.saes.load_pretrained_sae(root / "sae"), root / "acts", unembedding, root / "sae", log=lambda _: None
    )
    dashboards.record_in_provenance(root / "sae" / "dashboards.npz", 1.0)
    return loaded, features.read_feature_sae(root / "sae", loaded.name)


def test_a_texts_features_have_the_api_keys_and_agree_with_the_sae(pipeline):
    loaded, found = pipeline
    text = "the cat sat on the mat"  # one window of the SAE's context: read as the analysis read it
    summary = features.text_features(found, loaded, text)
    assert {"sae", "layer", "d_sae", "tokens", "explained_variance", "l0", "top_features", "per_token"} <= set(summary)
    assert summary["layer"] == 1 and summary["d_sae"] == found.d_sae
    assert "".join(summary["tokens"]) == text  # decoded tokens join back into the text
    assert len(summary["per_token"]) == len(summary["tokens"])
    analysis = lm.analyse_text(loaded, text, 1)
    with torch.no_grad():
        codes = found.sae.encode(analysis.hidden_states[1])  # read after the BOS, one window: the analysis's own
    for position, hits in enumerate(summary["per_token"]):
        for index, activation in hits:
            assert activation == pytest.approx(float(codes[position, index]), abs=1e-3)
    for index, activation, position in summary["top_features"]:
        assert activation == pytest.approx(float(codes[:, index].max()), abs=1e-3)
        assert position == int(codes[:, index].argmax())
    assert summary["l0"] == pytest.approx(float((codes > 0).sum(1).float().mean()), abs=0.01)
    shown = [index for index, _, _ in summary["top_features"]]
    table = features.features_on_tokens(found, loaded, text, shown)  # the tokens x features view
    np.testing.assert_allclose(table, codes[:, shown].numpy(), atol=1e-4)
    assert summary["explained_variance"] is not None and summary["explained_variance"] <= 1


def test_the_provenance_names_the_dashboards_and_the_corpus(pipeline):
    _, found = pipeline
    recorded = found.provenance["dashboards"]
    assert recorded["rows"] == int(found.dashboards.arrays["rows"]) and len(recorded["sha256"]) == 64
    assert recorded["sha256"] == hashlib.sha256(found.dashboards.path.read_bytes()).hexdigest()
    assert found.provenance["data"]["corpus"]["sources"][0]["licence"] == "public domain"


def test_a_dashboards_top_example_fires_again_when_its_text_is_read(pipeline):
    loaded, found = pipeline
    fired = found.dashboards.arrays["density"] > 0
    checked = 0
    for feature in np.flatnonzero(fired)[:5]:
        shown = features.feature_dashboard(found, loaded.tokenizer, int(feature))
        assert {"feature", "density", "top_examples", "top_logits", "bottom_logits"} <= set(shown)
        assert shown["feature"] == feature and shown["density"] > 0
        strongest = [e["activations"][e["position"]] for e in shown["top_examples"]]
        # Strongest first (to float16's rounding, in which the contexts' activations are stored).
        assert all(a >= b * (1 - 2e-3) for a, b in zip(strongest, strongest[1:]))
        example = shown["top_examples"][0]
        peak = example["position"]
        again = features.text_features(found, loaded, "".join(example["tokens"]), k=found.d_sae)
        assert again["tokens"] == example["tokens"]  # the same tokens, read afresh after the BOS
        at_peak = dict(map(tuple, again["per_token"][peak]))
        assert at_peak.get(int(feature), 0) > 0  # it fires there again (its context is shorter, so not as much)
        checked += 1
    assert checked


def test_the_dashboards_logits_are_the_decoder_directions_through_the_unembedding(pipeline):
    loaded, found = pipeline
    shown = features.feature_dashboard(found, loaded.tokenizer, 0)
    logits = found.sae.W_dec[0] @ loaded.model.get_output_embeddings().weight.detach().T  # (vocab,)
    best = int(logits.argmax())
    assert shown["top_logits"][0][0] == lm.readable_token(loaded.tokenizer, best)
    assert shown["top_logits"][0][1] == pytest.approx(float(logits.max()), abs=1e-4)
    assert shown["bottom_logits"][0][1] == pytest.approx(float(logits.min()), abs=1e-4)


def test_search_finds_the_features_of_a_word_in_the_corpus(pipeline):
    loaded, found = pipeline
    results = features.search_word(found, loaded.tokenizer, "cat")
    assert results and all(r["count"] > 0 for r in results)
    assert results[0]["features"] == sorted(results[0]["features"], key=lambda pair: -pair[1])
    with pytest.raises(ValueError, match="Type a word"):
        features.search_word(found, loaded.tokenizer, "   ")


def test_a_feature_that_does_not_exist_is_named_with_the_range(pipeline):
    loaded, found = pipeline
    for bad in (-1, found.d_sae, 2.5, "x"):
        with pytest.raises(ValueError, match=f"features 0 to {found.d_sae - 1}"):
            features.feature_dashboard(found, loaded.tokenizer, bad)


def test_a_model_or_layer_without_an_sae_here_says_what_there_is():
    with pytest.raises(features.FeaturesUnavailable, match="No SAE with feature dashboards"):
        features.feature_sae("distilgpt2")
    layer = features.bundled_layer("smollm2-135m-offline")
    with pytest.raises(features.FeaturesUnavailable, match=f"reads layer {layer}"):
        features.feature_sae("smollm2-135m-offline", layer - 1)


def test_a_pretrained_saes_dashboards_are_built_from_the_corpus_slice_once_and_kept(tmp_path, monkeypatch):
    """GPT-2's pretrained SAEs, as the app reads them (centred stream, 128-token windows), made small: a tiny GPT-2
    and an SAE in SAELens' format stand in for the real ones, which cannot be downloaded here."""
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path / "cache"))
    loaded, release, model_sae = tiny_gpt2_release(tmp_path)
    assert model_sae.center_writing_weights and model_sae.context_size == 24
    moved = []
    found = features.release_feature_sae(
        release, 1, loaded=loaded, model_sae=model_sae, progress=lambda f, desc="": moved.append((f, desc))
    )
    built = tmp_path / "cache" / "dashboards" / release.name / "layer-1" / "dashboards.npz"
    assert built.exists() and found.dashboards.path == built
    fractions = [f for f, _ in moved]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] >= 0.9 and len(moved) > 3
    assert found.dashboards.about["corpus"] == "the bundled corpus slice" and found.dashboards.about["sources"]
    assert 0 < found.dashboards.arrays["rows"] <= features.SLICE_TOKENS
    # Read as the SAE reads any text (centred, after the BOS): a top example fires again there.
    text = "the cat sat on the mat"
    summary = features.text_features(found, loaded, text)
    assert summary["layer"] == 1 and "".join(summary["tokens"]) == text
    fired = np.flatnonzero(found.dashboards.arrays["density"] > 0)
    shown = features.feature_dashboard(found, loaded.tokenizer, int(fired[0]))
    assert shown["neuronpedia"] == release.neuronpedia_pattern.format(layer=1, index=int(fired[0]))
    example = shown["top_examples"][0]
    again = features.text_features(found, loaded, "".join(example["tokens"]), k=found.d_sae)
    if again["tokens"] == example["tokens"]:
        assert dict(map(tuple, again["per_token"][example["position"]])).get(int(fired[0]), 0) > 0
    # Kept on disk: the next process reads the file and builds nothing.
    stamp = built.stat().st_mtime_ns
    monkeypatch.setattr(features, "build_slice_dashboards", lambda *a, **k: pytest.fail("built again"))
    again_found = features.release_feature_sae(
        release, 1, device=torch.device("meta"), loaded=loaded, model_sae=model_sae
    )
    assert again_found.dashboards.path == built and built.stat().st_mtime_ns == stamp
    with pytest.raises(features.FeaturesUnavailable, match="layers 0 to 11"):
        features.release_feature_sae(release, 12, loaded=loaded, model_sae=model_sae)
