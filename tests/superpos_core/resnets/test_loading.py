"""Loading once per process: missing or corrupt weights reported, never replaced; a failed download remembered until a retry."""

import urllib.error

import pytest
import torch

from superpos_core import mnist, resnets
from tests import helpers


def test_missing_imagenet_weights_are_reported_not_replaced(torch_home):
    available, message = resnets.status("resnet50")
    assert not available and "Not on this machine yet" in message and "ResNet-50" in message
    with pytest.raises(resnets.ModelUnavailable) as caught:
        resnets.load("resnet50")
    assert "resnet50-11ad3fa6.pth" in str(caught.value) and "torchvision.models.resnet50" in str(caught.value)
    assert resnets.status("resnet50") == (False, str(caught.value))  # remembered: the same sentence, no second attempt
    assert resnets.load("mnist-resnet").entry.key == "mnist-resnet"  # the bundled model still works


def test_the_unavailable_message_is_the_models_own_and_whole(torch_home):
    with pytest.raises(resnets.ModelUnavailable) as caught:
        resnets.load("resnet18")
    message = str(caught.value)
    # urllib says "<urlopen error no network>": a toast reads the brackets as HTML and drops the rest.
    assert "<" not in message and ">" not in message
    assert message.startswith("Unavailable: ResNet-18, ImageNet (torchvision) needs its ImageNet weights")
    assert "(no connection to the download server (no network))" in message and "ResNet-50" not in message
    assert "downloads its ImageNet weights once" not in message  # offline, nothing promises a download
    assert "will not try the download again on its own for 5 min" in message and message.endswith("to retry now.")


def test_a_failed_download_is_remembered_per_model_until_a_retry(torch_home, monkeypatch):
    attempts = []

    def offline(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    for _ in range(3):  # the first picture, then two layer switches
        with pytest.raises(resnets.ModelUnavailable):
            resnets.load("resnet50")
    assert len(attempts) == 1  # the failure is remembered: no new download for each use
    with pytest.raises(resnets.ModelUnavailable):
        resnets.load("resnet18")  # another model has a failure of its own
    assert len(attempts) == 2 and attempts[-1].endswith("resnet18-f37072fd.pth")
    with pytest.raises(resnets.ModelUnavailable):
        resnets.load("resnet50", retry=True)  # an explicit retry tries again
    assert len(attempts) == 3
    monkeypatch.setattr(resnets.loading, "RETRY_AFTER_S", 0.0)  # once the while is over, the next use tries again
    with pytest.raises(resnets.ModelUnavailable, match="The next use tries the download again"):
        resnets.load("resnet50")
    assert len(attempts) == 4


def test_weights_that_arrive_after_a_failure_load_on_retry(torch_home):
    with pytest.raises(resnets.ModelUnavailable):
        resnets.load("resnet18")
    helpers.save_random_torchvision_checkpoint(torch_home, "resnet18")  # copied in, as the message says
    assert resnets.load("resnet18", retry=True).entry.key == "resnet18"
    assert resnets.status("resnet18")[0] and "resnet18" not in resnets.loading._failed_downloads


def test_cached_torchvision_weights_load_through_the_ordinary_path(torch_home):
    random_weights = torch.load(
        helpers.save_random_torchvision_checkpoint(torch_home, "resnet18")
    )  # same format and name as torchvision's file
    assert resnets.status("resnet18")[0]
    loaded = resnets.load("resnet18")
    assert len(loaded.categories) == 1000 and loaded.categories[281] == "tabby"
    torch.testing.assert_close(loaded.model.state_dict()["fc.weight"], random_weights["fc.weight"])
    analysis = resnets.analyse_image(loaded, str(mnist.ASSETS / "photos" / "cat.jpg"))
    assert len(analysis.top5) == 5 and set(analysis.layers) == set(resnets.layer_names("resnet18"))
    assert analysis.display.shape == (224, 224, 3)
    assert loaded.weights_id.startswith(
        "resnet18-f37072fd.pth:"
    )  # the file's own bytes too: a cached table for other weights is not read


def test_corrupt_cached_weights_are_unavailable(torch_home):
    torch_home.mkdir(parents=True)
    (torch_home / "resnet18-f37072fd.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(resnets.ModelUnavailable, match="Unavailable"):
        resnets.load("resnet18")


def test_preprocessing_and_register_need_no_download(torch_home):
    """What a benchmark uses to run a catalogue model with its own (random) weights, offline."""
    transform = resnets.preprocessing(resnets.CATALOGUE["resnet50"])
    assert len(transform.mean) == 3 and len(transform.std) == 3
    loaded = resnets.load("mnist-resnet")
    resnets.forget("mnist-resnet")
    assert resnets.register(loaded) is loaded
    assert resnets.load("mnist-resnet") is loaded
