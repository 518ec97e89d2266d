"""Loading once per process, in the background with a progress bar, and refusing what the app may not load."""

import time

import pytest

from superpos_core import lm
from superpos_core.lm import loading
from tests import helpers

D_MODEL, N_POSITIONS = helpers.TINY_D_MODEL, helpers.TINY_N_POSITIONS


def test_a_local_folder_loads_only_when_allowed_and_only_once(tiny_folder, tiny):
    with pytest.raises(lm.ModelUnavailable, match="Unknown model"):
        lm.load(tiny_folder)  # the app never passes allow_any: no path or Hub id slips in for a catalogue model
    assert lm.load(str(tiny_folder), allow_any=True) is tiny
    assert (tiny.n_layers, tiny.d_model, tiny.context_length) == (3, D_MODEL, N_POSITIONS)
    assert not tiny.model.training and not any(p.requires_grad for p in tiny.model.parameters())


def test_missing_hub_model_is_reported_not_replaced(empty_hub):
    available, message = lm.status("gpt2")
    assert not available and "HF_HUB_OFFLINE" in message
    with pytest.raises(lm.ModelUnavailable) as caught:
        lm.load("gpt2")
    text = str(caught.value)
    assert "from_pretrained('openai-community/gpt2')" in text and "models--openai-community--gpt2" in text
    assert str(empty_hub) in text
    assert lm.status("gpt2") == (False, text)  # remembered until a load succeeds


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


def test_loading_in_the_background_is_one_job_per_model_and_device(tiny_folder, monkeypatch):
    helpers.model_cache_for_this_test(monkeypatch, loading, empty=True)
    real, calls = loading._load, []

    def slow_load(*args):
        calls.append(args[0])
        time.sleep(0.6)  # long enough for the second caller to arrive while it runs
        return real(*args)

    monkeypatch.setattr(loading, "_load", slow_load)
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
    helpers.model_cache_for_this_test(monkeypatch, loading, empty=True)
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


def test_a_load_cut_short_by_the_process_exiting_marks_nothing_and_reads_no_gguf(tmp_path, monkeypatch):
    """A load still running as the process exits (the warm-up, say) fails because Python refuses new work to thread
    pools then; the files are fine, so the model is not marked unavailable and the GGUF is not read again."""
    import transformers

    from superpos_core.lm import gguf_cache

    entry = lm.CATALOGUE["smollm2-135m-offline"]
    monkeypatch.setattr(loading, "_failed_loads", {})
    monkeypatch.setattr(gguf_cache, "cached_folder", lambda key, path: tmp_path)  # a cached copy, as on a second start

    def exiting(*args, **kwargs):
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(transformers.PreTrainedTokenizerFast, "from_pretrained", exiting)
    monkeypatch.setattr(loading, "_from_pretrained", lambda *a, **k: pytest.fail("the GGUF was read again"))
    with pytest.raises(RuntimeError, match="interpreter shutdown"):
        loading._from_gguf(entry, tmp_path / "model.gguf")
    assert loading._failed_loads == {}

    monkeypatch.setattr(gguf_cache, "cached_folder", lambda key, path: None)  # a first start, reading the GGUF itself
    monkeypatch.setattr(loading, "_from_pretrained", exiting)
    with pytest.raises(RuntimeError, match="interpreter shutdown"):
        loading._from_gguf(entry, tmp_path / "model.gguf")
    assert loading._failed_loads == {}  # the next start loads it as usual
