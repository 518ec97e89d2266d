"""PretrainedSAE's encoding, and fetching one through the Hugging Face hub client."""

import numpy as np
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

from superpos_core import sae
from superpos_core.sae import pretrained
from tests.superpos_core.sae.helpers import (
    D_IN,
    D_SAE,
    DROP,
    OFFLINE,
    FakeHub,
    hand_encode,
    sae_tensors,
    write_sae_folder,
)


def test_fetch_downloads_both_files_through_the_hub_client(tmp_path, monkeypatch):
    hub = FakeHub(write_sae_folder(tmp_path / "snapshot" / "blocks.8.hook_resid_pre"))
    monkeypatch.setattr(pretrained, "hf_hub_download", hub)
    model = sae.fetch_release_sae(8, local_files_only=True)
    repo, subfolder = sae.GPT2_SMALL_RES_JB.repo_id, "blocks.8.hook_resid_pre"
    assert hub.calls == [(repo, subfolder, "cfg.json", True), (repo, subfolder, "sae_weights.safetensors", True)]
    assert model.source == f"{repo}/{subfolder}" and model.layer == 8


def test_fetch_offline_says_what_is_missing_and_how_to_get_it(monkeypatch):
    monkeypatch.setattr(pretrained, "hf_hub_download", FakeHub(error=OFFLINE))
    with pytest.raises(sae.SAELoadError) as error:
        sae.fetch_pretrained_sae("jbloom/GPT2-Small-SAEs-Reformatted", "blocks.8.hook_resid_pre")
    message = str(error.value)
    for part in (
        "jbloom/GPT2-Small-SAEs-Reformatted",
        "blocks.8.hook_resid_pre",
        "cfg.json",
        "offline",
        "internet access",
        "Hugging Face cache",
    ):
        assert part in message, (part, message)
    assert isinstance(error.value.__cause__, LocalEntryNotFoundError)


def test_fetch_of_an_unknown_repository_says_so(monkeypatch):
    httpx2 = pytest.importorskip("httpx2")  # huggingface_hub's HTTP library: its errors carry a response
    response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co/nobody/nothing"))
    monkeypatch.setattr(
        pretrained, "hf_hub_download", FakeHub(error=RepositoryNotFoundError("Repository Not Found", response=response))
    )
    with pytest.raises(sae.SAELoadError, match=r"nobody/nothing .*no such repository"):
        sae.fetch_pretrained_sae("nobody/nothing", "blocks.0.hook_resid_pre")


def test_fetch_turns_any_other_failure_into_a_load_error(monkeypatch):
    monkeypatch.setattr(pretrained, "hf_hub_download", FakeHub(error=OSError("No space left on device")))
    with pytest.raises(sae.SAELoadError, match="OSError: No space left on device"):
        sae.fetch_pretrained_sae("jbloom/GPT2-Small-SAEs-Reformatted", "blocks.8.hook_resid_pre")


def test_pretrained_features_feed_top_features(tmp_path):
    model = sae.load_pretrained_sae(write_sae_folder(tmp_path / "sae"))
    x = torch.randn(6, D_IN, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        acts = model.encode(x)  # (6, d_sae)
    hits = sae.top_features(acts, k=5)
    assert hits[0].activation == pytest.approx(float(acts.max()))
    assert [h.activation for h in hits] == sorted((h.activation for h in hits), reverse=True)
    assert all(acts[h.token, h.index] == pytest.approx(h.activation) for h in hits)


def test_a_big_encoding_split_over_two_threads_gives_the_same_features(tmp_path, monkeypatch):
    tensors = sae_tensors(d_sae=D_SAE + 1)  # an odd number of features: unequal halves
    model = sae.load_pretrained_sae(write_sae_folder(tmp_path / "sae", tensors, d_sae=D_SAE + 1))
    x = torch.randn(7, D_IN, generator=torch.Generator().manual_seed(2))
    whole = model.encode(x)
    monkeypatch.setattr(pretrained, "SPLIT_ENCODE_WORK", 1)  # as for a release-sized SAE (768 -> 24,576 on 64 tokens)
    split = model.encode(x)
    assert split.shape == (7, D_SAE + 1) and split.is_contiguous()
    torch.testing.assert_close(split, whole)
    np.testing.assert_allclose(
        split.numpy(), hand_encode(x.double().numpy(), tensors, apply_b_dec=True), rtol=1e-5, atol=1e-5
    )


def test_fetching_a_release_sae_applies_its_catalogue_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(
        pretrained,
        "hf_hub_download",
        FakeHub(write_sae_folder(tmp_path / "snapshot" / "blocks.8.hook_resid_pre", prepend_bos=DROP)),
    )
    model = sae.fetch_release_sae(8, local_files_only=True)
    assert (model.prepend_bos, model.context_size, model.center_writing_weights) == (True, 128, True)
    # fetched by its repository's name (as `python -m superpos_core.sae --repo ...` does), it is still the release's
    assert sae.fetch_pretrained_sae(sae.GPT2_SMALL_RES_JB.repo_id, "blocks.8.hook_resid_pre").center_writing_weights
    assert not sae.fetch_pretrained_sae("someone/else", "blocks.8.hook_resid_pre").center_writing_weights
