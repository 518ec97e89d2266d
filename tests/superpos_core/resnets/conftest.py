"""The ResNet tests' shared fixture: an empty torchvision cache and no network."""

import urllib.error

import pytest
import torch

from superpos_core import resnets
from tests import helpers


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torchvision cache, and no network: downloads fail as they do offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    helpers.model_cache_for_this_test(monkeypatch, resnets.loading, empty=True)
    monkeypatch.setattr(resnets.loading, "_failed_downloads", {})
    return tmp_path / "torch" / "hub" / "checkpoints"
