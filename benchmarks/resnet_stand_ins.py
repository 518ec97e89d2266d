"""What ``benchmarks/bench_resnet.py`` runs on: ResNet-50 with random weights, the bundled photos, and noise
of the course's reference set's sizes.

The ImageNet weights cannot be downloaded on the machine this was written on, so the model is built by
the app's own code (``resnets.build``), seeded so that every process (the rank-table runs are fresh
processes) builds the same one, and registered where ``resnets.load`` looks first, so that the tab's
handlers use it unchanged. Speed does not depend on the weights' values or on the pictures' content, only
on the sizes, which are the real ones.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn

from superpos_core import resnets
from superpos_core.conv_rank import conv_layer_names

MODEL = "resnet50"  # the course's model
SEED = 0
REFERENCE_BATCHES, REFERENCE_BATCH_SIZE, REFERENCE_SIDE = 10, 128, 32  # the course's reference set
PHOTOS = Path(__file__).resolve().parents[1] / "assets" / "photos"


def random_resnet50() -> nn.Module:
    """ResNet-50 built by the app's own code, random weights, the same in every process (seeded)."""
    torch.manual_seed(SEED)
    return resnets.build(MODEL).eval().requires_grad_(False)


def register_random_model(model: nn.Module) -> resnets.LoadedResNet:
    """Put the random model where ``resnets.load`` looks first, so the tab's handlers use it."""
    entry = resnets.CATALOGUE[MODEL]
    loaded = resnets.LoadedResNet(
        entry=entry,
        model=model,
        categories=[f"class {i}" for i in range(1000)],
        conv_layers=conv_layer_names(model),
        modules=dict(model.named_modules()),
        weights_id="random-benchmark",  # keys the rank cache apart from any real weights' table
        device=torch.device("cpu"),
        transform=resnets.preprocessing(entry),  # downloads nothing
    )
    return resnets.register(loaded)


def bundled_photos() -> list[Image.Image]:
    """The bundled photos, decoded into memory: the handler receives PIL images, not files."""
    photos = []
    for path in sorted(PHOTOS.glob("*.jpg")):
        with Image.open(path) as image:
            image.load()
            photos.append(image.copy())
    return photos


def reference_like_batches() -> list[torch.Tensor]:
    """10 batches of 128 seeded noise images, 32x32, normalised the ImageNet way as the tab does."""
    entry = resnets.CATALOGUE[MODEL]
    transform = resnets.preprocessing(entry)
    mean = torch.tensor(transform.mean)[:, None, None]  # (3, 1, 1)
    std = torch.tensor(transform.std)[:, None, None]
    generator = torch.Generator().manual_seed(SEED)
    shape = (REFERENCE_BATCH_SIZE, 3, REFERENCE_SIDE, REFERENCE_SIDE)
    return [
        (torch.rand(shape, generator=generator) - mean) / std for _ in range(REFERENCE_BATCHES)
    ]  # each (128, 3, 32, 32)
