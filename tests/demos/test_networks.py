"""Each tab's network view: the right model, its captured layers marked, no model loaded for it."""

import re

import torch

from demos import networks
from superpos_core import lm, mnist, resnets
from tests import helpers


def captured_names(page: str) -> list[str]:
    return re.findall(r'<tr class="captured"[^>]*><td[^>]*><code>([^<]+)</code>', page)


def test_mnist_view_marks_the_layers_the_tab_reads():
    page = networks.mnist_html(mnist.SimpleNet())
    assert captured_names(page) == ["fc1", "relu1", "fc2", "relu2", "fc3"]
    assert "109,386 parameters" in page and "(1, 128)" in page and "print(model)" in page


def test_resnet_view_comes_from_the_architecture_and_shows_the_chosen_layer(monkeypatch):
    page = networks.resnet_html("mnist-resnet", "layer4.1.conv2")
    assert captured_names(page) == resnets.layer_names("mnist-resnet")  # one forward captures every conv layer
    assert re.search(r"layer4\.1\.conv2</code></td>.*?\(1, 128, 4, 4\).*?◀ shown", page)
    # ImageNet models are described without their weights: nothing is downloaded for the view.
    monkeypatch.setattr(
        resnets, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("the view must not load weights"))
    )
    page = networks.resnet_html("resnet18", "layer1.0.conv1")
    assert "(1, 64, 56, 56)" in page and "11,689,512 parameters" in page
    assert "Unknown model" in networks.resnet_html("cifar")


def test_lm_view_waits_for_the_model_and_then_marks_the_residual_stream(tmp_path):
    assert "once <b>gpt2</b> is loaded" in networks.lm_html(
        "gpt2", 3, device=torch.device("meta")
    )  # never loaded on this device
    loaded = lm.load(helpers.save_tiny_gpt2(tmp_path / "tiny"), allow_any=True)
    page = networks.lm_html(loaded.name, 1)
    assert captured_names(page) == ["transformer.wte", "transformer.h.0", "transformer.h.1"]
    assert re.search(r"transformer\.h\.0</code></td>.*?◀ shown", page)  # layer 1: after the first block
    tokens = len(loaded.tokenizer("Hello world")["input_ids"])
    assert f"(1, {tokens}, {helpers.TINY_D_MODEL})" in page  # (batch, tokens, width) of the example
