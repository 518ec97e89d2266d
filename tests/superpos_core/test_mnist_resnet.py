"""The bundled MNIST ResNet-18: torchvision's layout and names, the fp16 file, the input, the seeded trainer."""

import inspect
import json

import pytest
import torch
import torchvision

from superpos_core import mnist, mnist_resnet, resnets
from tests import helpers


def conv_names(model: torch.nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)]


def test_every_conv_is_named_as_torchvision_names_resnet18s():
    ours, theirs = mnist_resnet.MnistResNet(), torchvision.models.resnet18(weights=None)
    assert conv_names(ours) == conv_names(theirs) and len(conv_names(ours)) == 20
    widths = {name: module.out_channels for name, module in ours.named_modules() if isinstance(module, torch.nn.Conv2d)}
    assert [widths[f"layer{i}.1.conv2"] for i in range(1, 5)] == list(mnist_resnet.WIDTHS)
    assert (
        widths["layer2.0.downsample.0"] == 32 and "layer1.0.downsample.0" not in widths
    )  # a projection only where the shape changes


def test_a_digit_shrinks_28_28_14_7_4_and_ends_in_ten_logits():
    model = mnist_resnet.MnistResNet().eval()
    sizes = {}

    def record(name):
        def hook(_module, _inputs, output):
            sizes[name] = tuple(output.shape[1:])  # (C, H, W)

        return hook

    handles = [
        getattr(model, name).register_forward_hook(record(name))
        for name in ("relu", "layer1", "layer2", "layer3", "layer4")
    ]
    try:
        with torch.no_grad():
            logits = model(torch.zeros(3, 1, 28, 28))
    finally:
        for handle in handles:
            handle.remove()
    assert logits.shape == (3, 10)
    assert sizes == {
        "relu": (16, 28, 28),
        "layer1": (16, 28, 28),
        "layer2": (32, 14, 14),
        "layer3": (64, 7, 7),
        "layer4": (128, 4, 4),
    }


def test_saved_in_float16_and_loaded_as_float32_for_inference(tmp_path):
    torch.manual_seed(0)
    model = mnist_resnet.MnistResNet().eval()  # random weights: for this test only
    mnist_resnet.save(model, tmp_path / "r.safetensors")
    loaded = mnist_resnet.load(tmp_path / "r.safetensors")
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x), atol=5e-2, rtol=5e-2)  # stored in fp16
    assert conv_names(loaded) == resnets.layer_names("resnet18")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for name, value in loaded.state_dict().items():
        original = model.state_dict()[name]
        if original.is_floating_point():
            assert value.dtype == torch.float32 and torch.equal(value, original.half().float()), (
                name
            )  # exactly the fp16 rounding
        else:
            assert torch.equal(value, original), name  # BatchNorm's step counters stay integers


def test_to_input_is_the_simplenets_normalisation_as_one_channel_images():
    digits = helpers.sample().test.images[:4]
    x = mnist_resnet.to_input(digits)
    assert x.shape == (4, 1, 28, 28) and x.dtype == torch.float32
    torch.testing.assert_close(x.reshape(4, -1), mnist.bytes_to_input(digits).reshape(4, -1))
    assert x[0, 0, 0, 0].item() == pytest.approx(-mnist.MEAN / mnist.STD)  # blank paper


@pytest.mark.slow
def test_bundled_model_accuracy_and_provenance():
    model = mnist_resnet.load()
    digits = helpers.sample().test
    assert mnist_resnet.accuracy(model, digits) >= 0.99
    first = mnist.Digits(digits.images[:100], digits.labels[:100])
    assert mnist_resnet.accuracy(model, first, batch=7) == mnist_resnet.accuracy(
        model, first
    )  # batches do not change the count
    provenance = json.loads(mnist_resnet.PROVENANCE_PATH.read_text())
    from superpos_core.build_assets import sha256

    assert provenance["sha256"] == sha256(mnist_resnet.WEIGHTS_PATH) and provenance["weights_dtype"] == "float16"
    assert provenance["test_accuracy"] >= 0.99 and provenance["reproduce"].startswith(
        "python -m superpos_core.mnist_resnet"
    )
    defaults = inspect.signature(mnist_resnet.train).parameters  # the recipe written down is the trainer's own
    recipe = provenance["recipe"]
    assert (recipe["epochs"], recipe["batch_size"], recipe["max_lr"]) == (
        defaults["epochs"].default,
        defaults["batch_size"].default,
        defaults["lr"].default,
    )
    assert (
        recipe["normalisation"] == {"mean": mnist.MEAN, "std": mnist.STD}
        and len(provenance["history"]) == recipe["epochs"]
    )


def test_training_is_seeded_and_reports_each_epoch(capsys):
    sample = helpers.sample()
    data = mnist.MnistSplits(
        mnist.Digits(sample.train.images[:48], sample.train.labels[:48]),
        mnist.Digits(sample.test.images[:16], sample.test.labels[:16]),
        "bundled sample",
    )
    first, history = mnist_resnet.train(data, epochs=1, batch_size=24, seed=5)
    second, _ = mnist_resnet.train(data, epochs=1, batch_size=24, seed=5)
    assert [set(row) for row in history] == [{"epoch", "loss", "test_accuracy"}] and history[0]["loss"] > 0
    assert 0 <= history[0]["test_accuracy"] <= 1 and "'epoch': 1" in capsys.readouterr().out
    assert not first.training
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name  # same seed, same weights
    torch.manual_seed(5)
    initial = mnist_resnet.MnistResNet()  # the init that train starts from
    assert not torch.equal(first.conv1.weight, initial.conv1.weight) and not torch.equal(
        first.fc.weight, initial.fc.weight
    )  # and it trained


def test_the_builder_needs_the_pickle():
    with pytest.raises(SystemExit):
        mnist_resnet.main([])  # argparse refuses before anything is read or written
