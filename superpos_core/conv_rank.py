"""Effective rank of every conv layer's activations over a reference set, streamed.

For a layer with C channels the activations over a reference set form a (C, samples·H·W) matrix:
one row per channel, one column per (image, position). Its effective rank says how many
independent directions the C channels really span.

Two things differ from the course's code, on purpose:

1) Channels first. The course reshaped NCHW activations straight to (C, -1). That reshape walks
   memory in N, C, H, W order, so each "row" mixes different samples and channels. We move the
   channel axis first (``permute(1, 0, 2, 3)``) and only then flatten.
2) Streamed. The course stacked all activations and ran a full SVD per layer. The squared singular
   values of A are the eigenvalues of the C×C Gram matrix A Aᵀ, which adds up batch by batch; we
   keep only that (C² numbers per layer), add each layer's activations to it the moment the layer
   produces them (so no batch keeps every layer's output alive), and take eigenvalues at the end.
   The sums are kept in float64 (see ``StreamingGram`` for layers with fewer columns than channels). In float32 a layer whose cumulative share sits within ~1e-6 of
   the threshold can land on the wrong side (seen on ResNet-50's layer3.0.conv3: true share
   0.9900001, float32 Gram 0.9899996), and the rank then differs by one from a float64 SVD.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from superpos_core import rank
from superpos_core.capture import hooks_calling

COLUMN_SLICE = 4096  # columns converted to float64 at a time when adding to a Gram matrix
BOUND_FACTOR = 4  # fewer than 4 columns per channel: the rank says more about the sample than the layer


def conv_layer_names(model: nn.Module) -> list[str]:
    """Every Conv2d by its module name, in the order the model defines them."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def channels_first(activations: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (C, N·H·W): one row per channel, one column per image position."""
    return activations.permute(1, 0, 2, 3).reshape(activations.shape[1], -1)


@dataclass
class LayerRank:
    layer: str
    channels: int
    effective_rank: int
    ratio: float
    columns: int  # samples·H·W the rank was measured over
    sample_bound: bool  # columns < 4 × channels: the sample, not the layer, limits the rank

    def as_row(self) -> list:
        return [self.layer, self.channels, self.effective_rank, round(self.ratio, 4), self.sample_bound]


class StreamingGram:
    """Accumulates, per layer, whichever is smaller: the C×C Gram matrix or the activations.

    A deep layer seen at low resolution can have fewer columns in all (samples·H·W) than channels
    (ResNet-50's 2048-channel layers over 1,280 images at 1×1). There the (C, columns) matrix itself
    is smaller than its C×C Gram, and its singular values come from the columns×columns Gram AᵀA
    instead: the same non-zero values, less memory and a smaller eigen-problem.
    """

    def __init__(self, expected_batches: int | None = None) -> None:
        self.expected_batches = expected_batches
        self.gram: dict[str, torch.Tensor] = {}  # name -> (C, C) float64 running sum
        self.kept: dict[str, list[torch.Tensor]] = {}  # name -> [(C, columns) float32] per batch
        self.columns: dict[str, int] = {}
        self.channels: dict[str, int] = {}

    def add(self, name: str, activations: torch.Tensor) -> None:
        a = channels_first(activations.detach())  # (C, N·H·W), a fresh copy (permute + reshape)
        channels, columns = a.shape
        if name not in self.channels:
            self.channels[name], self.columns[name] = channels, 0
            if self.expected_batches is not None and columns * self.expected_batches < channels:
                self.kept[name] = []
            else:
                self.gram[name] = torch.zeros(channels, channels, dtype=torch.float64, device=a.device)
        if name in self.kept:
            self.kept[name].append(a.float())
        else:
            # In slices of columns, so the float64 copy of a big early layer stays small.
            for part in a.split(COLUMN_SLICE, dim=1):
                part = part.double()
                self.gram[name].addmm_(part, part.T)
        self.columns[name] += columns

    def singular_values(self, name: str) -> np.ndarray:
        if name in self.kept:
            a = torch.cat(self.kept[name], dim=1).double()  # (C, columns), columns < C
            gram = a.T @ a  # (columns, columns): same non-zero eigenvalues as a aᵀ
        else:
            gram = self.gram[name]
        eigenvalues = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0)  # largest first
        values = eigenvalues.sqrt().cpu().numpy()
        return np.pad(values, (0, max(0, self.channels[name] - len(values))))  # the zero ones, up to C

    def ranks(self, threshold: float = rank.DEFAULT_THRESHOLD) -> list[LayerRank]:
        rows = []
        for name, channels in self.channels.items():
            columns = self.columns[name]
            eff = rank.effective_rank(self.singular_values(name), threshold)
            rows.append(LayerRank(name, channels, eff, eff / channels, columns, columns < BOUND_FACTOR * channels))
        return rows


@torch.no_grad()
def rank_table(model: nn.Module, batches: Iterable[torch.Tensor], threshold: float = rank.DEFAULT_THRESHOLD, on_batch=None) -> list[LayerRank]:
    """Effective rank of every conv layer over the reference ``batches`` (one forward per batch)."""
    gram = StreamingGram(expected_batches=len(batches) if hasattr(batches, "__len__") else None)
    with hooks_calling(model, conv_layer_names(model), gram.add):
        for i, x in enumerate(batches):
            model(x)
            if on_batch:
                on_batch(i + 1)
    return gram.ranks(threshold)
