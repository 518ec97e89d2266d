"""One forward pass over one picture, every conv layer captured and reduced to what the tab draws for it.

from superpos_core import resnets
result = resnets.analyse_image(resnets.load("mnist-resnet"), "cat.jpg")
result.top5, result.layers["layer1.0.conv1"].top_channels, result.layers["layer1.0.conv1"].maps.shape
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from superpos_core.capture import capture_activations
from superpos_core.resnets.loading import LoadedResNet
from superpos_core.resnets.pictures import prepare

MAP_SIDE = 40  # feature maps are stored resized to this, enough to draw them and small to keep
TOP_CHANNELS = 16


@dataclass
class LayerView:
    """What the tab draws for one layer of one image."""

    channels: int
    size: tuple[int, int]  # the layer's own H, W
    top_channels: list[int]  # the 16 channels with the largest mean activation, largest first
    raw_maps: torch.Tensor  # (16, h, w) float16: those channels' maps at the layer's resolution
    mean_map: np.ndarray  # (h, w) float32: mean over channels, at the layer's resolution

    @property
    def maps(self) -> np.ndarray:
        """(16, MAP_SIDE, MAP_SIDE): resized only when a layer is drawn, not for all 53 per image."""
        return _resize(self.raw_maps, MAP_SIDE).numpy()


@dataclass
class ImageAnalysis:
    model: str
    top5: list[tuple[str, float]]
    display: np.ndarray
    layers: dict[str, LayerView] = field(default_factory=dict)
    caution: str | None = None  # e.g. a photo given to the MNIST model: analysed, with this note


def _resize(maps: torch.Tensor, side: int) -> torch.Tensor:
    mode = "nearest" if maps.shape[-1] <= side else "area"  # blocky when enlarged: one block per unit
    return F.interpolate(maps[None].float(), size=(side, side), mode=mode)[0]


@torch.no_grad()
def analyse_image(loaded: LoadedResNet, picture) -> ImageAnalysis:
    """One forward pass capturing every conv layer, reduced to what each layer's view needs."""
    prepared = prepare(loaded, picture)
    with capture_activations(loaded.model, loaded.conv_layers) as acts:
        logits = loaded.model(prepared.x)[0]  # (n_classes,)
    probs = torch.softmax(logits.float(), 0)
    values, indices = probs.topk(5)
    top5 = [(loaded.categories[i], round(float(v), 6)) for v, i in zip(values, indices)]
    analysis = ImageAnalysis(loaded.entry.key, top5, prepared.display, caution=prepared.caution)
    for name in loaded.conv_layers:
        a = acts[name][0]  # (C, H, W)
        means = a.mean((1, 2))  # (C,)
        top = means.topk(min(TOP_CHANNELS, a.shape[0])).indices
        analysis.layers[name] = LayerView(
            channels=a.shape[0],
            size=(a.shape[1], a.shape[2]),
            top_channels=[int(i) for i in top],
            raw_maps=a[top].to("cpu", torch.float16),  # (16, H, W)
            mean_map=a.mean(0).cpu().numpy().astype(np.float32),  # (H, W)
        )
    return analysis
