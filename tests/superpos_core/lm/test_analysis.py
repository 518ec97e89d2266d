"""One forward pass over a text, every layer kept: hidden states, ranks, next tokens and the /lm API's contract."""

import json

import numpy as np
import pytest
import torch

from superpos_core import lm, rank
from superpos_core.lm import analysis as lm_analysis
from tests import helpers
from tests.contracts import ENDPOINTS

N_POSITIONS, D_MODEL = helpers.TINY_N_POSITIONS, helpers.TINY_D_MODEL


def test_hidden_states_of_every_layer_in_one_pass(tiny):
    text = "It was the best of times, it was the worst of times."
    analysis = lm.analyse_text(tiny, text, layer=1)
    T = len(analysis.tokens)
    assert "".join(analysis.tokens) == text and " the" in analysis.tokens  # readable, as the tokenizer split it
    assert analysis.hidden_states.shape == (3, T, D_MODEL) and analysis.n_layers == 3 and analysis.d_model == D_MODEL
    # The model reads its document-start token first (GPT-2: <|endoftext|>); its row is not the text's.
    bos = tiny.tokenizer.eos_token_id
    assert analysis.bos_id == bos and analysis.bos == "<|endoftext|>" and bos not in analysis.token_ids
    assert analysis.summary()["bos"] == "<|endoftext|>" and analysis.summary()["tokens"] == analysis.tokens
    with torch.no_grad():
        reference = tiny.model(torch.tensor([[bos, *analysis.token_ids]]), output_hidden_states=True).hidden_states
    for layer in range(3):
        view = analysis.at_layer(layer)
        assert view.activations.shape == (T, D_MODEL)
        np.testing.assert_allclose(view.activations, reference[layer][0, 1:].numpy(), rtol=1e-5, atol=1e-5)
    assert len(analysis.next_tokens) == 5
    probabilities = [p for _, p in analysis.next_tokens]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1


def test_rank_is_the_course_count_and_bounded_by_the_text(tiny):
    short = lm.analyse_text(tiny, "the cat sat", layer=2)
    T = len(short.tokens)
    assert T < D_MODEL and short.rank_bound == T
    assert any(f"can exceed {T}" in note and "not from the model" in note for note in short.notes)
    values = np.linalg.svd(short.activations.astype(np.float64), compute_uv=False)  # not centred, as the course
    cumvar = np.cumsum(values**2) / np.sum(values**2)
    assert short.effective_rank() == np.sum(cumvar < 0.99)
    ranks = short.ranks()
    assert len(ranks) == 3 and all(0 <= r <= short.rank_bound for r in ranks)

    longer = lm.analyse_text(tiny, "the quick brown fox jumps over the lazy dog " * 3, layer=2)
    assert len(longer.tokens) > D_MODEL and longer.rank_bound == D_MODEL
    assert not any("can exceed" in note for note in longer.notes)
    assert longer.effective_rank() <= D_MODEL


def test_long_text_is_cut_to_the_context_and_says_so(tiny):
    analysis = lm.analyse_text(tiny, "the end " * 200, layer=0)
    assert len(analysis.tokens) == N_POSITIONS - 1 == analysis.hidden_states.shape[1]  # one position is the BOS's
    assert any(f"reads at most {N_POSITIONS}" in note and f"first {N_POSITIONS - 1}" in note for note in analysis.notes)
    capped = lm.analyse_text(tiny, "the end " * 200, layer=0, max_tokens=10)
    assert len(capped.tokens) == 9 and any("this app reads at most 10" in note for note in capped.notes)


def test_a_model_without_bos_or_end_of_text_reads_the_text_alone(tiny, monkeypatch):
    monkeypatch.setattr(lm_analysis, "bos_token_id", lambda tokenizer: None)
    analysis = lm.analyse_text(tiny, "the cat sat", layer=1)
    assert analysis.bos is None and analysis.bos_note is None and analysis.summary()["bos"] is None
    with torch.no_grad():
        reference = tiny.model(torch.tensor([analysis.token_ids]), output_hidden_states=True).hidden_states
    np.testing.assert_allclose(analysis.activations, reference[1][0].numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_the_offline_model_ranks_the_text_not_an_attention_sink():
    """On the course's sentence SmolLM2 put 99.9% of the energy on its first token from layer 12 on, and the
    effective rank read 0 at 17 of 31 layers. With the BOS as the sink, the 14 tokens use 8 or more directions
    at every layer, and no text token holds most of a layer's energy past the first few blocks."""
    loaded = lm.load("smollm2-135m-offline")
    assert (
        loaded.n_layers == lm.CATALOGUE["smollm2-135m-offline"].n_blocks + 1
        and lm.loaded_now("smollm2-135m-offline") is loaded
    )
    analysis = lm.analyse_text(loaded, "It was the best of times, it was the worst of times.", layer=15)
    assert analysis.bos == "<|im_start|>" and len(analysis.tokens) == 14 and analysis.tokens[0] == "It"
    assert min(analysis.ranks()) >= 8
    assert all(analysis.dominant_token(layer)[1] < 0.5 for layer in range(8, analysis.n_layers))
    assert all(
        analysis.rank_to_reach(layer) == analysis.effective_rank(layer) + 1 for layer in range(analysis.n_layers)
    )


@pytest.mark.parametrize("layer", [3, -1, True, "1", 1.0])
def test_a_layer_out_of_range_names_the_valid_range(tiny, layer):
    with pytest.raises(lm.LayerError, match="from 0 .* to 2"):
        lm.analyse_text(tiny, "the", layer=layer)


def test_switching_layer_reuses_the_forward_pass(tiny):
    analysis = lm.analyse_text(tiny, "the the the cat", layer=0)
    with pytest.raises(lm.LayerError, match="to 2"):
        analysis.at_layer(3)
    last = analysis.at_layer(2)
    assert last.hidden_states is analysis.hidden_states and last.layer == 2 and analysis.layer == 0
    last.effective_rank()
    assert 2 in analysis._spectra  # the SVD is shared between views of the same text


def test_most_variable_dimensions():
    activations = np.zeros((4, 6))
    activations[:, 4] = [0, 10, 0, 10]  # variance 25
    activations[:, 1] = [1, 2, 1, 2]  # variance 0.25
    activations[:, 3] = 7  # large but constant: variance 0
    assert list(lm.most_variable_dimensions(activations, 3)) == [4, 1, 0]  # ties: lower index first
    assert list(lm.most_variable_dimensions(torch.tensor(activations), 10)) == [4, 1, 0, 2, 3, 5]
    assert list(lm.most_variable_dimensions(activations[:1], 2)) == [0, 1]  # one token: no variance at all
    with pytest.raises(ValueError):
        lm.most_variable_dimensions(activations, 0)


def test_one_huge_token_is_pointed_out():
    hidden = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
    hidden[1, 0] *= 1000  # the first token's vector at layer 1 dwarfs the rest, as in real language models
    analysis = lm.TextAnalysis("made-up", 1, "a b c d e", [0] * 5, list("abcde"), hidden, [("x", 1.0)] * 5)
    assert analysis.dominant_token() == (0, pytest.approx(1.0, abs=1e-3))
    assert analysis.effective_rank() == 0
    [note] = analysis.layer_notes()
    assert "token 0 (a)" in note and "over 99.9%" in note
    assert analysis.layer_notes(0) == []


def test_summary_is_the_api_contract(tiny):
    summary = lm.analyse_text(tiny, "the cat 😀", layer=1).summary()
    assert tuple(summary) == ENDPOINTS["/lm"].summary  # in the order the API returns them
    assert summary["model"] == tiny.name and summary["layer"] == 1 and summary["d_model"] == D_MODEL
    assert summary["bos"] == "<|endoftext|>" and summary["rank_to_reach"] == summary["effective_rank"] + 1
    assert all(isinstance(token, str) for token in summary["tokens"])
    assert isinstance(summary["effective_rank"], int) and not isinstance(summary["effective_rank"], bool)
    assert len(summary["next_tokens"]) == 5
    assert all(isinstance(t, str) and type(p) is float for t, p in summary["next_tokens"])
    assert json.loads(json.dumps(summary)) == summary


def test_the_rank_is_the_course_definition():
    assert lm_analysis.effective_rank is rank.effective_rank  # the course's definition, not a second copy


def test_texts_read_together_give_each_texts_own_numbers():
    """A batch (right-padded, masked) gives each text the tokens, ranks and next tokens of its own run, and hidden
    states that differ only by the rounding of batched products (the BOS's attention sink runs into the thousands:
    the bound is relative)."""
    loaded = lm.load("smollm2-135m-offline")
    texts = [
        "The cat found a red apple.",
        "Hi",
        "Superposition lets a network store more features than it has neurons. 🧠",
        "It was the best of times, it was the worst of times.",
    ]
    together = lm.analyse_texts(loaded, texts, 10)
    for text, batched in zip(texts, together):
        alone = lm.analyse_text(loaded, text, 10)
        assert (batched.tokens, batched.token_ids, batched.notes, batched.ranks()) == (
            alone.tokens,
            alone.token_ids,
            alone.notes,
            alone.ranks(),
        )
        assert [t for t, _ in batched.next_tokens] == [t for t, _ in alone.next_tokens]
        np.testing.assert_allclose([p for _, p in batched.next_tokens], [p for _, p in alone.next_tokens], atol=2e-6)
        scale = alone.hidden_states.abs().amax(dim=(1, 2), keepdim=True)  # (n_layers, 1, 1)
        assert float(((batched.hidden_states - alone.hidden_states).abs() / scale).max()) < 1e-5
    with pytest.raises(lm.TextInputError):
        lm.analyse_texts(loaded, ["fine", "   "], 10)
