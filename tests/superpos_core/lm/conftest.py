"""The language-model tests' shared fixtures: a tiny GPT-2 built offline, and an empty, switched-off Hub."""

import pytest

from superpos_core.lm import catalogue, loading
from tests import helpers


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return helpers.save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="module")
def tiny(tiny_folder):
    return loading.load(tiny_folder, allow_any=True)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache and the Hub switched off: nothing can touch the network."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(catalogue, "_hub_reachable", lambda timeout=3.0: pytest.fail("the network was consulted"))
    helpers.model_cache_for_this_test(monkeypatch, loading, empty=True)
    monkeypatch.setattr(loading, "_failed_loads", {})
    monkeypatch.setattr(catalogue, "_reachability", {})
    return tmp_path / "hub"
