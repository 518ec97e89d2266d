import json

import numpy as np
import pytest
import torch

from superpos_core import lm
from superpos_core.lm import corpus_activations
from tests.helpers import build_tiny_corpus, save_tiny_gpt2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return lm.load(save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2")), allow_any=True)


@pytest.fixture()
def tiny_corpus(tmp_path):
    return build_tiny_corpus(tmp_path / "corpus")


def test_windows_start_with_the_bos_and_run_documents_together(tiny):
    tokenizer = tiny.tokenizer
    texts = ["one two three", "four five six seven"]
    made = list(corpus_activations.windows(tokenizer, texts, context=6))
    eos = tokenizer.eos_token_id
    joined = [*tokenizer(texts[0], add_special_tokens=False)["input_ids"], eos]
    joined += [*tokenizer(texts[1], add_special_tokens=False)["input_ids"], eos]
    assert all(len(w) == 6 and w[0] == lm.bos_token_id(tokenizer) for w in made)
    assert [t for w in made for t in w[1:]] == joined[: 5 * len(made)]  # in order, the short remainder dropped
    assert len(joined) - 5 * len(made) < 5


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_the_stopped_pass_gives_the_hidden_state_of_a_whole_pass(tiny, layer):
    ids = torch.tensor([[tiny.tokenizer.eos_token_id, 5, 9, 30, 2, 7]])  # (1, 6)
    whole = tiny.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True).hidden_states
    blocks = corpus_activations.blocks_of(tiny.model, tiny.n_layers - 1)
    hooks = lambda: [(list(b._forward_hooks), list(b._forward_pre_hooks)) for b in blocks]  # noqa: E731
    before = hooks()  # transformers may keep hooks of its own on the blocks
    ours = corpus_activations.residual_stream(tiny, ids, layer)
    torch.testing.assert_close(ours, whole[layer].float())
    assert hooks() == before  # ours is gone


def test_build_stores_every_windows_stream_without_its_bos_and_resumes(tiny, tiny_corpus, tmp_path):
    out = tmp_path / "acts"
    logged = []
    info = corpus_activations.build(tiny, tiny_corpus, 1, out, batch_size=2, context=8, log=logged.append)
    tokens, acts = np.load(out / "tokens_train.npy"), np.load(out / "acts_train.npy")
    assert acts.shape == (len(tokens), 7, tiny.d_model) and acts.dtype == np.float16
    assert info["splits"]["train"] == {"windows": len(tokens), "tokens": 7 * len(tokens)}
    assert json.loads((out / "info.json").read_text()) == info and logged
    expected = corpus_activations.residual_stream(tiny, torch.from_numpy(tokens[:3].astype(np.int64)), 1)[:, 1:]
    np.testing.assert_allclose(acts[:3], expected.numpy(), rtol=2e-3, atol=2e-3)  # float16's rounding
    # A run stopped after 2 windows: started again, it fills the rest and leaves the first two as they were.
    full = acts.copy()
    partial = np.load(out / "acts_train.npy", mmap_mode="r+")
    partial[2:] = 0
    partial[:2] = 7
    partial.flush()
    (out / "progress.json").write_text(json.dumps({"eval": info["splits"]["eval"]["windows"], "train": 2}))
    corpus_activations.build(tiny, tiny_corpus, 1, out, batch_size=2, context=8, log=logged.append)
    again = np.load(out / "acts_train.npy")
    assert (again[:2] == 7).all() and np.array_equal(again[2:], full[2:])


def test_max_tokens_bounds_the_training_split_with_windows_from_all_of_it(tiny, tiny_corpus, tmp_path):
    whole = corpus_activations.build(tiny, tiny_corpus, 1, tmp_path / "whole", context=8, log=lambda _: None)
    info = corpus_activations.build(
        tiny, tiny_corpus, 1, tmp_path / "acts", max_tokens=21, context=8, log=lambda _: None
    )
    assert info["splits"]["train"] == {"windows": 3, "tokens": 21}
    every, kept = np.load(tmp_path / "whole" / "tokens_train.npy"), np.load(tmp_path / "acts" / "tokens_train.npy")
    n = whole["splits"]["train"]["windows"]
    assert n > 3
    # The first, the middle and the last window: not the first three, which would all be the first source's.
    assert np.array_equal(kept, every[[0, round((n - 1) / 2), n - 1]])
    assert np.array_equal(
        np.load(tmp_path / "acts" / "acts_train.npy")[2], np.load(tmp_path / "whole" / "acts_train.npy")[n - 1]
    )
