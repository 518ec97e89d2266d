"""Effective rank of every conv layer's activations over a reference set, streamed.

For a layer with C channels the activations over a reference set form a (C, samples·H·W) matrix:
one row per channel, one column per (image, position): the conv's own output, before its
BatchNorm. Two counts are taken from it, both the course's 99%-energy count (``rank.effective_rank``):

* ``effective_rank``, the course's: of the matrix as it is, *uncentred*. A channel's mean over the
  sample counts as energy too, so one direction (the channels' mean activations) can take a large
  share, and the count then says how concentrated the energy is, not how many channels are linear
  combinations of the others.
* ``centred_effective_rank``: of the matrix with each channel's mean over the sample taken away
  (its covariance, times the number of columns). This counts the directions in which the channels
  *vary* together. The BatchNorm after each conv also takes a mean away from every channel (the
  one it learned in training) before it rescales the channel.

Neither counts channels that are linear combinations of the others. Such a channel leaves one
direction empty, but a count below C says only that the directions it leaves out hold, together,
less than 1% of the energy: weak directions, not necessarily empty ones.

Three things differ from the course's code, on purpose:

1) Channels first. The course reshaped NCHW activations straight to (C, -1). That reshape walks
   memory in N, C, H, W order, so each "row" mixes different samples and channels. We move the
   channel axis first (``permute(1, 0, 2, 3)``) and only then flatten.
2) Streamed. The course stacked all activations and ran a full SVD per layer. The squared singular
   values of A are the eigenvalues of the C×C Gram matrix A Aᵀ, which adds up batch by batch; we
   keep only that (its upper triangle: about C²/2 numbers per layer), add each layer's activations
   to it the moment the layer produces them (so no batch keeps every layer's output alive), and
   take eigenvalues at the end, freeing each layer's sums once read. See ``StreamingGram`` for
   layers with fewer columns than channels.
   The sums are kept in float64. In float32 a layer whose cumulative share sits within ~1e-6 of
   the threshold can land on the wrong side (seen on ResNet-50's layer3.0.conv3: true share
   0.9900001, float32 Gram 0.9899996), and the rank then differs by one from a float64 SVD.
3) Centred as well. Beside the Gram matrix G each layer keeps its per-channel sums s (C numbers):
   over N columns the centred Gram is G − s sᵀ/N (= G − N μμᵀ, μ the channel means), formed in
   float64 once the sums are complete. It costs one more eigen-decomposition per layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from superpos_core import rank
from superpos_core.capture import hooks_calling

COLUMN_SLICE = 4096  # about this many columns are converted to float64 at a time when adding to a Gram matrix
BLOCK = 256  # channels per block of the Gram matrix's upper triangle
FORWARD_CHUNK = 64  # images per forward pass: a reference batch of 128 runs as two, so fewer activations are alive at once (no slower)
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
    effective_rank: int  # the course's: singular values whose cumulative energy share is still below 99%, uncentred
    ratio: float  # effective_rank / channels
    columns: int  # samples·H·W the rank was measured over
    sample_bound: bool  # columns < 4 × channels: the sample, not the layer, limits the rank
    rank_to_reach: int  # singular values needed to reach 99% (the crossing one counted): normally effective_rank + 1
    centred_effective_rank: (
        int | None
    )  # the same count with each channel's mean over the sample taken away (None: not asked for)

    @property
    def centred_ratio(self) -> float | None:
        return None if self.centred_effective_rank is None else self.centred_effective_rank / self.channels

    def as_row(self) -> list:
        """A row of the tab's table, in ``TABLE_HEADERS`` order."""
        centred_ratio = None if self.centred_ratio is None else round(self.centred_ratio, 4)
        return [
            self.layer,
            self.channels,
            self.effective_rank,
            round(self.ratio, 4),
            self.centred_effective_rank,
            centred_ratio,
            self.sample_bound,
        ]


# The course's table (its first four columns and the sample flag), the centred count beside it.
TABLE_HEADERS = [
    "layer_name",
    "total_channels",
    "effective_rank",
    "ratio",
    "centred_effective_rank",
    "centred_ratio",
    "bounded_by_sample",
]


class UpperGram:
    """A symmetric Gram matrix M Mᵀ summed over pieces of M, upper triangle only.

    Kept in square blocks of ``BLOCK`` rows, block (i, j) for i <= j: a 1024-row Gram costs 10 of
    16 blocks, in time and in memory, instead of the whole square.
    """

    def __init__(self, size: int, device: torch.device | str = "cpu") -> None:
        self.size = size
        self.rows = [slice(start, min(start + BLOCK, size)) for start in range(0, size, BLOCK)]
        self.blocks = {
            (i, j): torch.zeros(
                self.rows[i].stop - self.rows[i].start,
                self.rows[j].stop - self.rows[j].start,
                dtype=torch.float64,
                device=device,
            )
            for i in range(len(self.rows))
            for j in range(i, len(self.rows))
        }

    def add(self, part: torch.Tensor) -> None:
        """Add part partᵀ, for a float64 ``part`` of shape (size, columns)."""
        for (i, j), block in self.blocks.items():
            block.addmm_(part[self.rows[i]], part[self.rows[j]].T)

    def matrix(self) -> torch.Tensor:
        """(size, size), upper triangle filled: all ``eigvalsh(..., UPLO="U")`` reads."""
        first = next(iter(self.blocks.values()))
        gram = torch.zeros(self.size, self.size, dtype=torch.float64, device=first.device)
        for (i, j), block in self.blocks.items():
            gram[self.rows[i], self.rows[j]] = block
        return gram


class StreamingGram:
    """Accumulates, per layer, whichever is smaller: the C×C Gram matrix or the activations.

    A deep layer seen at low resolution can have fewer columns in all (samples·H·W) than channels
    (ResNet-50's 2048-channel layers over 1,280 images at 1×1). There the (C, columns) matrix itself
    is smaller than its C×C Gram, and its singular values come from the columns×columns Gram AᵀA
    instead: the same non-zero values, less memory and a smaller eigen-problem.
    """

    def __init__(self, expected_samples: int | None = None) -> None:
        self.expected_samples = expected_samples  # images in the whole reference set, when known
        self.gram: dict[str, UpperGram] = {}  # name -> its C×C Gram matrix so far
        self.kept: dict[str, list[torch.Tensor]] = {}  # name -> [(C, columns) float32] per batch
        self.sums: dict[
            str, torch.Tensor
        ] = {}  # name -> (C,) float64: each channel's sum over the columns so far, beside its Gram matrix
        self.columns: dict[str, int] = {}
        self.channels: dict[str, int] = {}

    def add(self, name: str, activations: torch.Tensor) -> None:
        activations = activations.detach()
        samples, channels, height, width = activations.shape
        if name not in self.channels:
            self.channels[name], self.columns[name] = channels, 0
            if self.expected_samples is not None and self.expected_samples * height * width < channels:
                self.kept[name] = []
            else:
                self.gram[name] = UpperGram(channels, activations.device)
                self.sums[name] = torch.zeros(channels, dtype=torch.float64, device=activations.device)
        self.columns[name] += samples * height * width
        if name in self.kept:
            self.kept[name].append(channels_first(activations).float())
            return
        # A few samples at a time, so the float64 copy of a big early layer stays small. The copy
        # moves channels first and widens to float64 in one pass: (n, C, H, W) -> (C, n·H·W).
        step = max(1, COLUMN_SLICE // (height * width))
        for first in range(0, samples, step):
            chunk = activations[first : first + step]
            part = torch.empty((channels, chunk.shape[0], height, width), dtype=torch.float64, device=chunk.device)
            part.copy_(chunk.permute(1, 0, 2, 3))
            part = part.view(channels, -1)  # (C, n·H·W)
            self.gram[name].add(part)
            self.sums[name] += part.sum(1)

    def _gram(self, name: str) -> tuple[torch.Tensor, Callable[[torch.Tensor], None]]:
        """The layer's Gram matrix (upper triangle filled) and a function that centres it in place.

        Centring the C×C Gram G of A (C, N): (A − μ1ᵀ)(A − μ1ᵀ)ᵀ = G − s sᵀ/N, s the channel sums.
        Centring the columns×columns Gram K = AᵀA of a kept layer: A − μ1ᵀ = A H, H = I − 11ᵀ/n, so
        its Gram is H K H = K − (1 rᵀ + r 1ᵀ)/n + (1ᵀr)/n² 11ᵀ, r = K 1: the same non-zero
        eigenvalues as the centred C×C Gram. Both are O(size²), no second pass over the data.
        """
        if name in self.kept:
            pieces = self.kept[name]
            a = torch.empty(
                self.channels[name], self.columns[name], dtype=torch.float64, device=pieces[0].device
            )  # (C, columns), columns < C
            torch.cat(pieces, dim=1, out=a)  # widened to float64 as it is copied
            small = UpperGram(a.shape[1], a.device)
            small.add(a.T)  # (columns, columns): same non-zero eigenvalues as a aᵀ
            r = a.T @ a.sum(1)  # (columns,) = K 1, from the channel sums: no second columns×columns matrix
            del a
            n = len(r)

            def centre(k: torch.Tensor) -> None:
                k.sub_(r[None, :] / n).sub_(r[:, None] / n).add_(
                    r.sum() / n**2
                )  # H K H, in place; the lower half is never read

            return small.matrix(), centre
        sums, columns = self.sums[name], self.columns[name]
        return self.gram[name].matrix(), lambda g: g.addr_(sums, sums, alpha=-1.0 / columns)  # (C, C) − s sᵀ/N

    def _padded_values(self, name: str, gram: torch.Tensor) -> np.ndarray:
        values = rank.singular_values_from_gram(gram, triangle="U")  # largest first
        return np.pad(values, (0, max(0, self.channels[name] - len(values))))  # the zero ones, up to C

    def singular_values(self, name: str, centred: bool = False) -> np.ndarray:
        """A layer's singular values, largest first, C of them; ``centred``: each channel's mean taken away first."""
        gram, centre = self._gram(name)
        if centred:
            centre(gram)
        return self._padded_values(name, gram)

    def spectra(self, name: str, centred: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """(singular values, centred singular values or None): both from one assembly of the Gram matrix.

        The centred values cost a second eigen-decomposition, as long as the first: ``centred=False``
        leaves them out (the course's table alone).
        """
        gram, centre = self._gram(name)
        values = self._padded_values(name, gram)
        if not centred:
            return values, None
        centre(gram)
        return values, self._padded_values(name, gram)

    def release(self, name: str) -> None:
        """Forget a layer's sums (after its singular values are read), so the next layer's eigen-problem has the room."""
        self.gram.pop(name, None)
        self.kept.pop(name, None)
        self.sums.pop(name, None)

    def ranks(self, threshold: float = rank.DEFAULT_THRESHOLD, centred: bool = True) -> list[LayerRank]:
        """Every layer's effective rank (and centred rank, unless ``centred=False``). Releases each layer's sums once read: call it once, at the end."""
        rows = []
        for name, channels in self.channels.items():
            columns = self.columns[name]
            values, centred_values = self.spectra(name, centred)
            self.release(name)
            eff = rank.effective_rank(values, threshold)
            rows.append(
                LayerRank(
                    name,
                    channels,
                    eff,
                    eff / channels,
                    columns,
                    columns < BOUND_FACTOR * channels,
                    rank_to_reach=rank.rank_to_reach(values, threshold),
                    centred_effective_rank=None
                    if centred_values is None
                    else rank.effective_rank(centred_values, threshold),
                )
            )
        return rows


@torch.no_grad()
def rank_table(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    threshold: float = rank.DEFAULT_THRESHOLD,
    on_batch=None,
    centred: bool = True,
) -> list[LayerRank]:
    """Effective rank of every conv layer over the reference ``batches`` (one forward per batch).

    ``centred=False`` leaves out the centred count (``centred_effective_rank`` None): the course's table alone, about half the eigen-work.
    """
    known = isinstance(batches, (list, tuple))  # counted without iterating twice (a loader would load twice)
    gram = StreamingGram(expected_samples=sum(len(x) for x in batches) if known else None)
    names = conv_layer_names(model)
    with hooks_calling(model, names, gram.add):
        for i, x in enumerate(batches):
            for images in x.split(FORWARD_CHUNK):
                model(images)
            if on_batch:
                on_batch(i + 1)
    # Rows in module order, as the layer list names them: a block that runs its shortcut conv first
    # (the bundled MNIST ResNet's) would otherwise list ``downsample.0`` before ``conv1``.
    place = {name: i for i, name in enumerate(names)}
    return sorted(gram.ranks(threshold, centred), key=lambda row: place[row.layer])
