"""The language-model tab's handlers, on a tiny random GPT-2 built in the test (no network, no download)."""

import copy
import time
from dataclasses import replace

import gradio as gr
import numpy as np
import pytest
import torch

from demos import lm as lm_tab
from demos import lm_reading, lm_sae
from superpos_core import concepts, lm
from superpos_core.serving import Kept, Recent
from tests import helpers
from tests.contracts import summary_keys
from tests.helpers import TINY_D_MODEL as D_MODEL
from tests.helpers import save_tiny_gpt2

KEY = "tiny-test"
TEXT = "It was the best of times, it was the worst of times."
quiet = lambda *a, **k: None  # noqa: E731  stands in for gr.Progress


@pytest.fixture(scope="module")
def tiny_loaded(tmp_path_factory):
    # The default concept words are whole tokens here, as in the real models, so the concepts event can run.
    words = [f" {word}" for words in concepts.CONCEPTS.values() for word in words]
    return lm.load(save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"), words), allow_any=True)


@pytest.fixture
def tiny(tiny_loaded, monkeypatch):
    """The tiny model under a catalogue key, already in lm's per-process cache (keyed (name, device)), for this test only."""
    monkeypatch.setitem(
        lm.CATALOGUE,
        KEY,
        lm.LMEntry(KEY, "Tiny GPT-2 (test)", "hub", repo_id="nobody/tiny", about="3 layers, 2 blocks."),
    )
    loaded = replace(tiny_loaded, name=KEY, title="Tiny GPT-2 (test)")
    helpers.model_cache_for_this_test(monkeypatch, lm.loading)
    lm.register(KEY, loaded)
    monkeypatch.setattr(lm.catalogue, "_hub_reachable", lambda timeout=3.0: pytest.fail("the network was consulted"))
    monkeypatch.setattr(lm_reading, "_analyses", Recent(lm_reading.CACHED_TEXTS))
    monkeypatch.setattr(lm_sae, "_readings", Recent(lm_reading.CACHED_TEXTS))
    return loaded


def is_rgb(image) -> bool:
    return isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


def test_main_event_returns_the_lm_contract_first(tiny):
    shown = lm_tab.analyse_text_event(TEXT, KEY, 1, progress=quiet)
    assert list(shown) == ["summary", "heatmap", "ranks", "next_tokens", "status"]  # the /lm API's order
    summary, heatmap, ranks, next_tokens, status = shown.values()
    assert set(summary) == summary_keys("/lm")
    assert summary["model"] == KEY and summary["layer"] == 1 and summary["d_model"] == tiny.d_model
    # The learner is told what was read before the text, and both rank counts agree with the summary.
    assert "␣" not in summary["bos"] and "read <|endoftext|> before your text" in status and "attention sink" in status
    assert (
        f"effective rank **{summary['effective_rank']}**" in status
        and f"{summary['rank_to_reach']} singular values reach 99%" in status
    )
    assert isinstance(summary["tokens"], list) and all(isinstance(t, str) for t in summary["tokens"])
    assert isinstance(summary["effective_rank"], int) and 0 <= summary["effective_rank"] <= len(summary["tokens"])
    assert len(summary["next_tokens"]) == 5 and all(
        isinstance(t, str) and isinstance(p, float) for t, p in summary["next_tokens"]
    )
    assert is_rgb(heatmap) and is_rgb(ranks)
    assert len(next_tokens) == 5 and "tokens" in status


def test_the_layer_and_view_reuse_the_forward_pass(tiny, monkeypatch):
    lm_tab.analyse_text_event(TEXT, KEY, 0, progress=quiet)
    monkeypatch.setattr(lm, "analyse_texts", lambda *a, **k: pytest.fail("the text was read again"))
    summary, heatmap, *_ = lm_tab.analyse_text_event(TEXT, KEY, 2, "all dimensions", progress=quiet).values()
    assert summary["layer"] == 2 and is_rgb(heatmap)
    assert is_rgb(lm_tab.switch_view(TEXT, KEY, 2, "most variable 64 dimensions"))


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_text_is_a_clear_error(tiny, text):
    with pytest.raises(gr.Error, match="empty"):
        lm_tab.analyse_text_event(text, KEY, 1, progress=quiet)


@pytest.mark.parametrize("layer", [3, -1, 40, 1.5])
def test_a_layer_outside_the_model_is_a_clear_error(tiny, layer):
    with pytest.raises(gr.Error):
        lm_tab.analyse_text_event(TEXT, KEY, layer, progress=quiet)


def test_an_unavailable_model_is_a_clear_error(tiny):
    with pytest.raises(gr.Error, match="Unknown model"):
        lm_tab.analyse_text_event(TEXT, "no-such-model", 1, progress=quiet)


@pytest.mark.slow
def test_sae_event_returns_its_contract_and_pictures(tiny):
    shown = lm_tab.train_sae_event(TEXT, KEY, 1, 16, 0.01, 100, 0, progress=quiet)
    assert list(shown) == ["summary", "grid", "bars", "token_features", "status"]  # the /lm_sae API's order
    summary, grid, bars, token_features, status = shown.values()
    assert set(summary) == summary_keys("/lm_sae")
    assert summary["features"] == 16 and isinstance(summary["features"], int)
    assert isinstance(summary["l0"], float) and isinstance(summary["mse"], float)
    assert len(summary["mean_activation"]) == 16 and all(
        isinstance(v, float) and v >= 0 for v in summary["mean_activation"]
    )
    assert all(is_rgb(image) for image in (grid, bars, token_features))
    assert "features" in status


@pytest.mark.parametrize(
    "args", [(0, 0.01, 100, 0), (16, -1, 100, 0), (16, 0.01, 0, 0), (16.5, 0.01, 100, 0), (16, "x", 100, 0)]
)
def test_bad_sae_controls_are_clear_errors(tiny, args):
    with pytest.raises(gr.Error):
        lm_tab.train_sae_event(TEXT, KEY, 1, *args, progress=quiet)


def test_pretrained_saes_belong_to_gpt2(tiny, monkeypatch):
    text, image, tokens = lm_tab.pretrained_sae_panel(TEXT, KEY, 1).values()
    assert "GPT-2 small" in text and image is None and tokens is None


def test_missing_pretrained_sae_says_how_to_get_it(monkeypatch):
    def absent(layer, **options):
        assert options.get("local_files_only") is True
        raise lm_tab.sae.SAELoadError("not in the cache")

    monkeypatch.setattr(lm_tab.sae, "fetch_release_sae", absent)
    monkeypatch.setattr(lm_sae, "_release_saes", Recent(lm_sae.KEEP_SAES))
    text, image, tokens = lm_tab.pretrained_sae_panel(TEXT, "gpt2", 8).values()
    assert "python -m superpos_core.sae --layers 8" in text and image is None and tokens is None
    text, image = lm_tab.pretrained_token_panel(TEXT, "gpt2", 8, 0)
    assert "python -m superpos_core.sae --layers 8" in text and image is None


def serve_sae(tiny, folder, monkeypatch, release=lm_tab.sae.GPT2_SMALL_RES_JB, **cfg_changes):
    """The tiny model standing in for GPT-2 small, and a pretrained SAE for its layer 1 in SAELens' format,
    served as ``fetch_release_sae`` serves the release's (its catalogue entry applied, unless ``release`` is None)."""
    from tests.superpos_core.sae.helpers import sae_tensors, write_sae_folder

    helpers.model_cache_for_this_test(monkeypatch, lm.loading)
    lm.register("gpt2", replace(tiny, name="gpt2"))
    tensors = sae_tensors(d_in=D_MODEL, d_sae=200)
    write_sae_folder(
        folder, tensors, d_in=D_MODEL, d_sae=200, hook_name="blocks.1.hook_resid_pre", hook_layer=1, **cfg_changes
    )
    fetched = []

    def from_the_cache(layer, **options):
        assert options.get("local_files_only") is True  # a page view never starts a download
        fetched.append(layer)
        return lm_tab.sae.load_pretrained_sae(folder, release=release)

    monkeypatch.setattr(lm_tab.sae, "fetch_release_sae", from_the_cache)
    monkeypatch.setattr(lm_sae, "_release_saes", Recent(lm_sae.KEEP_SAES))
    return tensors, fetched


@pytest.fixture
def gpt2_with_sae(tiny, tmp_path, monkeypatch):
    return serve_sae(tiny, tmp_path / "blocks.1.hook_resid_pre", monkeypatch)


def test_pretrained_sae_features_of_the_text_and_of_a_clicked_token(gpt2_with_sae):
    tensors, fetched = gpt2_with_sae
    text, image, tokens = lm_tab.pretrained_sae_panel(TEXT, "gpt2", 1).values()
    analysis = lm_reading.read_text(TEXT, "gpt2", 1, torch.device("cpu"), quiet)
    acts = analysis.activations.astype(
        np.float64
    )  # (T, d_model), read after <|endoftext|> in one window, as the SAE was trained
    acts -= acts.mean(axis=1, keepdims=True)  # centred: the release was trained with GPT-2's writing weights centred
    by_hand = np.maximum(
        (acts - tensors["b_dec"].double().numpy()) @ tensors["W_enc"].double().numpy()
        + tensors["b_enc"].double().numpy(),
        0,
    )  # (T, 200)
    strongest = int(by_hand.max(axis=0).argmax())
    assert f"[feature {strongest}](https://www.neuronpedia.org/gpt2-small/1-res-jb/{strongest})" in text and is_rgb(
        image
    )
    assert "Read as the SAE was trained: after <|endoftext|>, centred" in text
    assert [token for token, _ in tokens] == analysis.tokens  # every token, in order, to click on
    shades = np.array([shade for _, shade in tokens])
    np.testing.assert_allclose(shades, by_hand.max(axis=1) / by_hand.max(), atol=2e-3)
    # A click on a token: that token's strongest features, not the text's, from what was read above
    # (the SAE does not read the text again).
    sae_model = lm_sae._release_saes.get((lm_tab.sae.GPT2_SMALL_RES_JB.name, 1, "cpu"))
    sae_model.encode = lambda x: pytest.fail("a click re-encoded the whole text")
    token = int(np.argmin(by_hand.max(axis=1)))
    text, image = lm_tab.pretrained_token_panel(TEXT, "gpt2", 1, token)
    first = int(by_hand[token].argmax())
    assert (
        text.startswith(f"Token {token} ")
        and f"[feature {first}](https://www.neuronpedia.org/gpt2-small/1-res-jb/{first})" in text
        and is_rgb(image)
    )
    assert text.index(f"[feature {first}]") < text.index(
        "[feature", text.index(f"[feature {first}]") + 1
    )  # strongest first
    assert fetched == [1]  # read once from the cache, then kept in memory
    text, image = lm_tab.pretrained_token_panel(TEXT, "gpt2", 1, 10_000)
    assert "outside the text" in text and image is None
    assert lm_tab.pretrained_token_panel(TEXT, "gpt2", 1, -1)[0].startswith(
        f"Token {len(analysis.tokens) - 1} "
    )  # from the end, as in Python


def test_the_panel_feeds_the_sae_its_own_input_in_windows(tiny, tmp_path, monkeypatch):
    # An SAE trained on 8-token windows (BOS included) of centred activations: the text takes several windows.
    serve_sae(
        tiny,
        tmp_path / "sae",
        monkeypatch,
        release=None,
        context_size=8,
        model_from_pretrained_kwargs={"center_writing_weights": True},
    )
    text, image, tokens = lm_tab.pretrained_sae_panel(TEXT, "gpt2", 1).values()
    _, reading = lm_sae._pretrained_features(
        TEXT, "gpt2", 1, torch.device("cpu")
    )  # the reading the panel showed, from the cache
    model_sae, analysis = lm_sae._release_saes.get((lm_tab.sae.GPT2_SMALL_RES_JB.name, 1, "cpu")), reading.analysis
    fed = lm_tab.sae.sae_input(model_sae, lm.loaded_now("gpt2"), analysis.token_ids)
    assert fed.windows == -(-len(analysis.token_ids) // 7) > 1 and fed.centred
    torch.testing.assert_close(reading.found.fed.activations, fed.activations)
    with torch.no_grad():
        features = model_sae.encode(fed.activations)  # (T, 200)
        unfed = model_sae.encode(
            torch.as_tensor(analysis.activations)
        )  # what the panel encoded before: the analysis's hidden state
    np.testing.assert_allclose(reading.found.peaks, features.amax(dim=1).numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(reading.found.peaks, unfed.amax(dim=1).numpy(), atol=1e-3)
    strongest = lm_tab.sae.top_features(features, k=1)[0].index
    assert f"[feature {strongest}]" in text and is_rgb(image)
    assert f"in {fed.windows} windows of up to 8 tokens" in text and "after <|endoftext|>, centred" in text
    last = features[-1].topk(lm_sae.TOP_FEATURES)  # the last token, in the last window: a click shows its own features
    assert [h.index for h in reading.found.per_token[-1]] == last.indices[last.values > 0].tolist()


def test_an_sae_that_cannot_be_fed_says_why(tiny, tmp_path, monkeypatch):
    from tests.superpos_core.sae.helpers import sae_tensors, write_sae_folder

    serve_sae(tiny, tmp_path / "sae", monkeypatch, release=None)  # GPT-2 stood in for, and fresh caches
    folder = write_sae_folder(
        tmp_path / "z",
        sae_tensors(d_in=D_MODEL, d_sae=200),
        d_in=D_MODEL,
        d_sae=200,
        hook_name="blocks.1.attn.hook_z",
        hook_layer=1,
    )
    monkeypatch.setattr(
        lm_tab.sae, "fetch_release_sae", lambda layer, **options: lm_tab.sae.load_pretrained_sae(folder)
    )
    text, image, tokens = lm_tab.pretrained_sae_panel(TEXT, "gpt2", 1).values()
    assert "only SAEs of the residual stream" in text and image is None and tokens is None


def test_only_catalogue_models_unless_any_model_is_allowed(tiny, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(lm.catalogue, "hub_offline", lambda: True)
    for name in ("someone/some-model", "/etc", "../../secret", "https://example.com/model"):
        with pytest.raises(gr.Error, match="Unknown model"):
            lm_tab.analyse_text_event(TEXT, name, 1, progress=quiet)
    for name in (
        "/etc",
        "../../secret",
        "https://example.com/model",
        "a/../b",
    ):  # never a path or an address, even when allowed
        with pytest.raises(gr.Error, match="Unknown model .* or a Hugging Face model id"):
            lm_tab.analyse_text_event(TEXT, name, 1, progress=quiet, allow_any=True)
    with pytest.raises(
        gr.Error, match="someone/some-model.*switched off"
    ):  # a hub id is tried, through the ordinary cache
        lm_tab.analyse_text_event(TEXT, "someone/some-model", 1, progress=quiet, allow_any=True)
    assert "not in the catalogue" in lm_tab.choose_model("someone/some-model", allow_any=True)[0]
    assert "Unknown model" in lm_tab.choose_model("someone/some-model")[0]


def test_the_tab_builds():
    with gr.Blocks() as blocks:
        parts = lm_tab.render(blocks, torch.device("cpu"))
    assert parts.model.value in lm.CATALOGUE and not parts.model.allow_custom_value
    with gr.Blocks() as blocks:
        parts = lm_tab.render(blocks, torch.device("cpu"), allow_any_model=True)
    assert parts.model.allow_custom_value  # --allow-any-model: a model id can be typed


CONCEPT_TEXT = concepts.format_concepts(concepts.CONCEPTS)
SENTENCE_TEXT = concepts.format_sentences(concepts.SENTENCES)


@pytest.mark.slow
def test_concepts_event_returns_its_contract_first(tiny):
    shown = lm_tab.concepts_event(CONCEPT_TEXT, SENTENCE_TEXT, KEY, 2, progress=quiet)
    assert list(shown) == ["summary", "bars", "pca", "status"]  # the /lm_concepts API's order
    summary, bars, pca, status = shown.values()
    assert set(summary) == summary_keys("/lm_concepts")
    assert (
        summary["model"] == KEY
        and summary["layer"] == 2
        and summary["d_model"] == tiny.d_model
        and summary["sentences"] == 24
    )
    assert summary["concepts"] == summary["labels"] == ["positive", "negative", "neutral"]
    for key in ("correlations", "centred_correlations"):
        assert all(isinstance(v, float) for row in summary[key].values() for v in row.values())
    assert len(summary["pca_explained"]) == 2 and all(isinstance(v, float) for v in summary["pca_explained"])
    assert is_rgb(bars) and is_rgb(pca)
    assert "**3 concepts** (24 words)" in status and "**24 sentences**" in status and "positive → **" in status


@pytest.mark.parametrize(
    "words, sentences, model, layer, message",
    [
        ("", SENTENCE_TEXT, KEY, 1, "empty"),
        ("positive: good\nnegative:", SENTENCE_TEXT, KEY, 1, "has no words"),
        ("positive: good, sunshine\nnegative: bad", SENTENCE_TEXT, KEY, 1, "sunshine"),
        (CONCEPT_TEXT, "   ", KEY, 1, "empty"),
        (CONCEPT_TEXT, "positive: Fine.\nnegative:\nneutral: Noon.", KEY, 1, "no sentence"),
        (CONCEPT_TEXT, SENTENCE_TEXT + "\n" + "x" * 30_000, KEY, 1, "at most 20,000"),
        (None, SENTENCE_TEXT, KEY, 1, "must be text"),
        (CONCEPT_TEXT, SENTENCE_TEXT, "no-such-model", 1, "Unknown model"),
        (CONCEPT_TEXT, SENTENCE_TEXT, KEY, 3, "Layer 3 does not exist"),
        (CONCEPT_TEXT, SENTENCE_TEXT, KEY, 1.5, "whole number"),
    ],
)
def test_bad_concepts_input_is_a_clear_error(tiny, words, sentences, model, layer, message):
    with pytest.raises(gr.Error, match=message):
        lm_tab.concepts_event(words, sentences, model, layer, progress=quiet)


def kept_for(model: str) -> list[tuple]:
    """The opening views kept for ``model`` (an app built by another test may be warming the real default model meanwhile)."""
    return [key for key in lm_tab._openings.keys() if key[1] == model]


@pytest.fixture
def fresh_openings(monkeypatch):
    monkeypatch.setattr(lm_tab, "_openings", Kept())
    monkeypatch.setattr(lm_tab, "_warming", set())


def test_the_opening_view_is_drawn_once_and_kept(tiny, fresh_openings, monkeypatch):
    calls = []
    real = lm_tab.analyse_text_event
    # Only this model's calls count: an app built by an earlier test may still be warming the real default model.
    monkeypatch.setattr(
        lm_tab, "analyse_text_event", lambda *a, **k: (a[1] == KEY and calls.append(a[:4])) or real(*a, **k)
    )
    monkeypatch.setattr(lm_tab, "default_model", lambda: KEY)
    text, model, layer, view = lm_tab.opening_inputs(torch.device("cpu"))
    assert (text, model, view) == (
        lm_tab.EXAMPLES[0],
        KEY,
        lm_tab.VIEWS[0],
    ) and layer == 1  # 2 blocks: 3 layers, the middle one
    thread = lm_tab.warm_up(torch.device("cpu"))
    thread.join(60)
    assert lm_tab.warm_up(torch.device("cpu")) is None  # once per process per (model, device): nothing more to do
    summary, heatmap, ranks, next_tokens, status = lm_tab.opening_view(
        text, model, layer, view, torch.device("cpu")
    ).values()
    assert (
        calls == [(text, model, layer, view)]
        and summary["layer"] == 1
        and is_rgb(heatmap)
        and is_rgb(ranks)
        and "tokens" in status
    )
    assert (
        lm_tab.opening_view(text, model, layer, view, torch.device("cpu"))["heatmap"] is heatmap
    )  # the kept pictures, for every app and visitor
    lm_tab.opening_view(TEXT, model, 2, view, torch.device("cpu"), keep=False)
    assert kept_for(KEY) == [
        (text, model, layer, view, "cpu")
    ]  # a view that is not the opening one is drawn, never kept


def test_a_failed_warm_up_is_not_kept(tiny, fresh_openings, monkeypatch):
    monkeypatch.setattr(lm_tab, "default_model", lambda: KEY)
    failures = []

    def fails_once(*args, **kwargs):
        if not failures:
            failures.append(args)
            raise RuntimeError("out of memory, say")
        return real(*args, **kwargs)

    real = lm_tab.analyse_text_event
    monkeypatch.setattr(lm_tab, "analyse_text_event", fails_once)
    lm_tab.warm_up(torch.device("cpu")).join(60)
    assert failures and not kept_for(KEY) and not [key for key in lm_tab._warming if key[1] == KEY]
    lm_tab.warm_up(torch.device("cpu")).join(60)  # the next app built (or page opened) tries again
    assert len(kept_for(KEY)) == 1


@pytest.mark.slow
def test_a_request_waits_for_a_loading_model_with_a_moving_progress_bar(tiny_loaded, monkeypatch):
    monkeypatch.setitem(
        lm.CATALOGUE,
        "slow-test",
        lm.LMEntry("slow-test", "Slow GPT-2 (test)", "hub", repo_id="nobody/slow", about="2 blocks."),
    )
    helpers.model_cache_for_this_test(monkeypatch, lm.loading, empty=True)
    monkeypatch.setattr(lm.catalogue, "_in_hub_cache", lambda repo_id: True)
    monkeypatch.setattr(lm_reading, "PROGRESS_TICK_S", 0.05)

    def slow_load(name, entry, device):
        time.sleep(1.0)  # a model being read from disk
        return replace(tiny_loaded, name=name)

    monkeypatch.setattr(lm.loading, "_load", slow_load)
    updates = []
    loaded = lm_reading.load_model(
        "slow-test", torch.device("cpu"), lambda fraction, desc=None: updates.append((fraction, desc))
    )
    assert loaded.name == "slow-test" and len(updates) >= 10
    fractions = [fraction for fraction, _ in updates]
    assert (
        fractions == sorted(fractions) and fractions[0] < fractions[-1] < 1
    )  # it moves, and never claims to be done early
    assert len({desc for _, desc in updates}) >= 2 and all(desc.startswith("Loading Slow GPT-2") for _, desc in updates)


def test_models_not_on_this_machine_are_marked_and_not_recommended(monkeypatch):
    monkeypatch.setattr(lm.catalogue, "_in_hub_cache", lambda repo_id: False)
    monkeypatch.setattr(lm.loading, "_failed_loads", {})
    labels = {key: lm.choice_label(key) for key in lm.CATALOGUE}
    assert (
        labels["gpt2"] == "GPT-2 small (OpenAI) · not downloaded"
        and labels["smollm2-135m-offline"] == lm.CATALOGUE["smollm2-135m-offline"].title
    )
    assert lm_tab.missing_models_note().startswith("Not on this machine: GPT-2 small, DistilGPT-2, Pythia-70M")
    text, image, tokens = lm_tab.pretrained_sae_panel(TEXT, "smollm2-135m-offline", 3).values()
    assert (
        "GPT-2 small is not on this machine" in text
        and "Choose GPT-2" not in text
        and "from_pretrained('openai-community/gpt2')" in text
    )
    monkeypatch.setattr(lm.catalogue, "_in_hub_cache", lambda repo_id: True)
    assert "Choose GPT-2 small to use them" in lm_tab.pretrained_sae_panel(TEXT, "smollm2-135m-offline", 3)["status"]
    assert lm_tab.missing_models_note() == ""


def test_text_analysis_reuses_the_handlers_forward_until_forget_texts(tiny, monkeypatch):
    """The public read a benchmark or notebook uses: the handlers' cached analysis, emptied by forget_texts."""
    lm_tab.analyse_text_event(TEXT, KEY, 1, progress=quiet)
    reads, real = [], lm.analyse_texts  # the handlers read texts through the batcher, several at once
    monkeypatch.setattr(lm, "analyse_texts", lambda *a, **k: reads.append(1) or real(*a, **k))
    assert lm_tab.text_analysis(TEXT, KEY, 2).layer == 2
    assert reads == []  # the handler's forward pass, reused
    lm_tab.forget_texts()
    assert lm_tab.text_analysis(TEXT, KEY, 2).layer == 2
    assert reads == [1]


def test_a_model_registered_under_a_name_already_read_reads_the_text_afresh(tiny):
    """A notebook that registers its own weights under a name the tab has read texts with sees its own numbers."""
    before = lm_tab.text_analysis(TEXT, KEY, 1).hidden_states
    model = copy.deepcopy(tiny.model)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.5)
    other = lm.register(KEY, replace(tiny, model=model))
    assert other.serial != tiny.serial
    after = lm_tab.text_analysis(TEXT, KEY, 1).hidden_states
    assert after.shape == before.shape and not torch.allclose(after, before)
    assert torch.equal(after, lm.analyse_texts(other, [TEXT], 1)[0].hidden_states)  # the new model's own numbers


def test_register_makes_load_return_that_model(tiny_loaded, monkeypatch):
    helpers.model_cache_for_this_test(monkeypatch, lm.loading, empty=True)
    loaded = replace(tiny_loaded, name="gpt2")
    assert lm.register("gpt2", loaded) is loaded
    assert lm.load("gpt2") is loaded  # from the process's cache: nothing read, nothing downloaded


def test_the_layer_range_comes_from_the_catalogue_before_a_model_is_loaded():
    assert lm.loaded_now("pythia-70m") is None  # never loaded here: no network
    assert lm_tab.layer_count("pythia-70m") == lm.CATALOGUE["pythia-70m"].n_blocks + 1 == 7
    assert lm_tab.layer_count("no-such-model") == lm_tab.MAX_LAYER + 1
