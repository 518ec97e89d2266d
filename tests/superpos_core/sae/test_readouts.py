"""What a pretrained SAE reads for a text, and which features fire: the tiny GPT-2 standing in for GPT-2 small."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from superpos_core import lm, sae
from superpos_core.sae import readouts
from tests.helpers import TINY_D_MODEL, save_tiny_gpt2
from tests.superpos_core.sae.helpers import D_IN, DROP, sae_tensors, write_sae_folder

# features:     0    1    2    3    4    5
ACTS = np.array(
    [
        [0.0, 5.0, 0.0, 1.8, 0.0, 0.0],  # token 0: feature 1 fires hard, once
        [0.0, 0.0, 0.0, 1.9, 2.0, 0.0],  # token 1
        [0.0, 0.0, 0.0, 1.7, 0.0, 0.0],  # token 2: feature 3 fires a little everywhere
    ]
)


def test_top_features_over_the_text_by_peak():
    hits = sae.top_features(ACTS, k=6)
    assert [(h.index, h.activation, h.token) for h in hits] == [
        (1, 5.0, 0),
        (4, 2.0, 1),
        (3, pytest.approx(1.9), 1),
    ]  # 0, 2, 5 never fire
    assert [h.index for h in sae.top_features(ACTS, k=2)] == [1, 4]


def test_top_features_over_the_text_by_mean_favours_dense_features():
    hits = sae.top_features(torch.tensor(ACTS), k=3, by="mean")
    assert [h.index for h in hits] == [3, 1, 4]
    assert hits[0].activation == pytest.approx(1.8) and hits[0].token == 1


def test_top_features_of_one_token():
    assert [(h.index, h.token) for h in sae.top_features(ACTS, k=5, token=1)] == [(4, 1), (3, 1)]
    assert [(h.index, h.token) for h in sae.top_features(ACTS, k=5, token=-1)] == [(3, 2)]


@pytest.mark.parametrize(
    "kwargs, message",
    [({"token": 3}, "outside the text"), ({"k": 0}, r"\(k\)"), ({"by": "median"}, "'max' or 'mean'")],
)
def test_top_features_refuses_what_it_cannot_rank(kwargs, message):
    with pytest.raises(sae.SAEInputError, match=message):
        sae.top_features(ACTS, **kwargs)


TEXT = "It was the best of times, it was the worst of times."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return lm.load(save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2")), allow_any=True)


def tiny_sae(folder: Path, hook: str = "blocks.1.hook_resid_pre", **cfg_changes) -> sae.PretrainedSAE:
    tensors = sae_tensors(d_in=TINY_D_MODEL, d_sae=48)
    return sae.load_pretrained_sae(
        write_sae_folder(folder, tensors, d_in=TINY_D_MODEL, d_sae=48, hook_name=hook, hook_layer=DROP, **cfg_changes)
    )


def hidden_state(model, ids: list[int], index: int) -> torch.Tensor:
    """By hand: one forward pass of the Hugging Face model over exactly ``ids``, hidden state ``index``: (len(ids), d_model)."""
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[index][0]


def with_centred_writing_weights(model):
    """A copy of a GPT-2 whose every weight that writes to the residual stream (token and position
    embeddings, each attention and MLP output projection, and their biases) has zero mean over d_model,
    as TransformerLens' center_writing_weights makes them. (Conv1D weights are (in, out): out is last.)"""
    centred = copy.deepcopy(model)
    t = centred.transformer
    writers = [t.wte.weight, t.wpe.weight] + [
        w
        for block in t.h
        for w in (block.attn.c_proj.weight, block.attn.c_proj.bias, block.mlp.c_proj.weight, block.mlp.c_proj.bias)
    ]
    with torch.no_grad():
        for weight in writers:
            weight -= weight.mean(dim=-1, keepdim=True)
    return centred


@pytest.mark.parametrize(
    "hook, index", [("blocks.0.hook_resid_pre", 0), ("blocks.1.hook_resid_pre", 1), ("blocks.0.hook_resid_post", 1)]
)
def test_centred_input_is_the_residual_stream_of_the_model_with_centred_writing_weights(tiny, tmp_path, hook, index):
    model_sae = tiny_sae(
        tmp_path / "sae", hook, context_size=64, model_from_pretrained_kwargs={"center_writing_weights": True}
    )
    analysis = lm.analyse_text(tiny, TEXT, 1)
    fed = sae.sae_input(model_sae, tiny, analysis.token_ids, analysis)
    assert (fed.hidden_state, fed.bos, fed.windows, fed.window, fed.centred, fed.reused) == (
        index,
        analysis.bos_id,
        1,
        64,
        True,
        True,
    )
    by_hand = hidden_state(with_centred_writing_weights(tiny.model), [analysis.bos_id, *analysis.token_ids], index)[
        1:
    ]  # BOS row dropped
    assert fed.activations.shape == (len(analysis.token_ids), TINY_D_MODEL) and fed.activations.dtype == torch.float32
    torch.testing.assert_close(fed.activations, by_hand, rtol=1e-5, atol=1e-5)
    assert analysis.hidden_states[index].mean(dim=1).abs().max() > 1e-3  # so the centring did something
    # and the SAE's features are those of its input
    torch.testing.assert_close(model_sae.encode(fed.activations), model_sae.encode(by_hand), rtol=1e-5, atol=1e-5)


def test_a_long_text_is_read_in_windows_each_after_its_own_bos(tiny, tmp_path, monkeypatch):
    model_sae = tiny_sae(tmp_path / "sae", context_size=8)  # 7 tokens of text after each BOS
    analysis = lm.analyse_text(tiny, TEXT, 1)
    ids, bos = analysis.token_ids, analysis.bos_id
    assert len(ids) > 3 * 7 and len(ids) % 7  # several full windows and a shorter last one
    by_hand = torch.cat(
        [hidden_state(tiny.model, [bos, *ids[start : start + 7]], 1)[1:] for start in range(0, len(ids), 7)]
    )
    fed = sae.sae_input(model_sae, tiny, ids, analysis)
    assert (fed.windows, fed.window, fed.bos, fed.centred, fed.reused) == (-(-len(ids) // 7), 8, bos, False, False)
    torch.testing.assert_close(fed.activations, by_hand, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(
        fed.activations[7:], analysis.hidden_states[1][7:], atol=1e-3
    )  # beyond the first window, not the analysis's
    monkeypatch.setattr(readouts, "WINDOWS_PER_PASS", 2)  # full windows in batches of 2, the shorter one alone
    torch.testing.assert_close(sae.sae_input(model_sae, tiny, ids).activations, by_hand, rtol=1e-5, atol=1e-5)


def test_without_bos_or_centring_the_hidden_states_pass_through_unchanged(tiny, tmp_path):
    analysis = lm.analyse_text(tiny, TEXT, 1)
    no_bos = tiny_sae(tmp_path / "no-bos", context_size=64, prepend_bos=False)
    fed = sae.sae_input(no_bos, tiny, analysis.token_ids, analysis)
    assert (fed.bos, fed.centred, fed.reused) == (None, False, False)  # the analysis read a BOS first: not reusable
    torch.testing.assert_close(fed.activations, hidden_state(tiny.model, analysis.token_ids, 1), rtol=1e-5, atol=1e-5)
    after_bos = tiny_sae(tmp_path / "bos", context_size=64)
    fed = sae.sae_input(after_bos, tiny, analysis.token_ids, analysis)
    assert fed.reused and torch.equal(fed.activations, analysis.hidden_states[1])
    fed.activations.zero_()
    assert analysis.hidden_states[1].abs().sum() > 0  # a copy: the analysis, shared with other requests, is left alone
    torch.testing.assert_close(
        sae.sae_input(after_bos, tiny, analysis.token_ids).activations, analysis.hidden_states[1], rtol=1e-5, atol=1e-5
    )


def test_a_window_is_never_longer_than_the_model_reads(tiny, tmp_path):
    model_sae = tiny_sae(tmp_path / "sae", context_size=1000)
    ids = lm.analyse_text(tiny, TEXT * 3, 1).token_ids  # cut to the tiny model's 64 positions, BOS included
    assert sae.sae_input(model_sae, tiny, ids).window == tiny.context_length == 64


@pytest.mark.parametrize(
    "hook, cfg_changes, ids, message",
    [
        ("blocks.1.hook_resid_post", {}, [1, 2], "final norm"),
        ("blocks.2.hook_resid_pre", {}, [1, 2], "final norm"),
        ("blocks.0.attn.hook_z", {}, [1, 2], "only SAEs of the residual stream"),
        ("blocks.1.hook_resid_pre", {}, [], "no tokens"),
    ],
)
def test_what_cannot_be_fed_is_a_clear_input_error(tiny, tmp_path, hook, cfg_changes, ids, message):
    with pytest.raises(sae.SAEInputError, match=message):
        sae.sae_input(tiny_sae(tmp_path / "sae", hook, **cfg_changes), tiny, ids)


def test_an_sae_of_another_width_is_refused(tiny, tmp_path):
    model_sae = sae.load_pretrained_sae(
        write_sae_folder(tmp_path / "sae", hook_name="blocks.1.hook_resid_pre", hook_layer=1)
    )
    with pytest.raises(sae.SAEInputError, match=f"reads {D_IN}-dimensional activations"):
        sae.sae_input(model_sae, tiny, [1, 2])


def test_read_features_keeps_the_text_s_and_every_token_s_strongest(tiny, tmp_path):
    model_sae = tiny_sae(tmp_path / "sae", context_size=8)  # several windows: the reading goes through sae_input
    ids = tiny.tokenizer(TEXT, add_special_tokens=False).input_ids
    found = sae.read_features(model_sae, tiny, ids, k=3)
    fed = sae.sae_input(model_sae, tiny, ids)
    torch.testing.assert_close(found.fed.activations, fed.activations)
    with torch.no_grad():
        features = model_sae.encode(fed.activations)  # (T, 48)
    np.testing.assert_allclose(found.peaks, features.amax(dim=1).numpy(), rtol=1e-6)
    assert found.over_text == sae.top_features(features, k=3)
    assert len(found.per_token) == len(ids)
    for t, hits in enumerate(found.per_token):
        assert hits == sae.top_features(features, k=3, token=t)  # the same ranking, one token at a time
    with pytest.raises(sae.SAEInputError, match="top features"):
        sae.read_features(model_sae, tiny, ids, k=0)
