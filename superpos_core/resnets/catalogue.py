"""The ResNets the app can explore (data), and what each one needs, found without downloading anything.

    from superpos_core.resnets import catalogue
    entry = catalogue.CATALOGUE["resnet50"]       # title, torchvision builder and weights, what the UI says
    catalogue.checkpoint_path(entry)              # where torchvision keeps its weights
    catalogue.layer_names("resnet50")             # every conv layer, from the architecture alone

ImageNet models come from torchvision, which downloads their weights once to ``~/.cache/torch/hub/checkpoints``
(``$TORCH_HOME`` moves it); the MNIST ResNet is bundled with the app.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from superpos_core import mnist_resnet
from superpos_core.conv_rank import conv_layer_names


@dataclass(frozen=True)
class ResNetEntry:
    key: str
    title: str
    source: str  # "bundled" or "torchvision"
    input_kind: str  # "digit" (28x28 MNIST-style) or "photo" (ImageNet transforms)
    builder: str | None = None  # torchvision.models function name
    weights: str | None = None  # torchvision weights enum, e.g. "ResNet50_Weights.IMAGENET1K_V2"
    about: str = ""


CATALOGUE: dict[str, ResNetEntry] = {
    entry.key: entry
    for entry in (
        ResNetEntry(
            "mnist-resnet",
            "Small ResNet-18 trained on MNIST (bundled)",
            "bundled",
            "digit",
            about="20 conv layers, 16–128 channels; trained here on real MNIST, works offline.",
        ),
        ResNetEntry(
            "resnet18",
            "ResNet-18, ImageNet (torchvision)",
            "torchvision",
            "photo",
            "resnet18",
            "ResNet18_Weights.IMAGENET1K_V1",
            "20 conv layers, 64–512 channels.",
        ),
        ResNetEntry(
            "resnet50",
            "ResNet-50, ImageNet (torchvision)",
            "torchvision",
            "photo",
            "resnet50",
            "ResNet50_Weights.IMAGENET1K_V2",
            "53 conv layers, 64–2048 channels: the course's model.",
        ),
    )
}
DEFAULT = "mnist-resnet"


def weights_enum(entry: ResNetEntry):
    """torchvision's weights for ``entry`` (``ResNet50_Weights.IMAGENET1K_V2``): their URL, transforms, categories."""
    import torchvision.models as tvm

    enum_name, member = entry.weights.split(".")
    return getattr(getattr(tvm, enum_name), member)


def preprocessing(entry: ResNetEntry):
    """The torchvision preprocessing (resize, crop, normalise) that goes with ``entry``'s weights; downloads nothing."""
    return weights_enum(entry).transforms()


def checkpoint_path(entry: ResNetEntry) -> Path:
    """Where torchvision caches this model's weights."""
    url = weights_enum(entry).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def how_to_fetch(entry: ResNetEntry) -> str:
    return (
        f"On a machine with internet, run `python -c \"import torchvision; torchvision.models.{entry.builder}(weights='{entry.weights.split('.')[1]}')\"` "
        f"once (torchvision caches the weights), or copy `{checkpoint_path(entry).name}` into `{checkpoint_path(entry).parent}`."
    )


def build(key: str) -> nn.Module:
    """The architecture with random weights (layer names, tests). Never shown to a user as a model."""
    entry = CATALOGUE[key]
    if entry.source == "bundled":
        return mnist_resnet.MnistResNet()
    import torchvision.models as tvm

    return getattr(tvm, entry.builder)(weights=None)


@functools.cache
def layer_names(key: str) -> list[str]:
    """Every Conv2d of the model, by module name; needs no weights (built once per process; do not mutate)."""
    return conv_layer_names(build(key))
