"""Singular values and effective rank, as the course defines them, plus a random baseline.

Two counts are offered, and they differ by design:

* ``effective_rank`` is the course's number: how many singular values have a cumulative share of
  the total squared singular values (the "energy") still *below* the threshold,
  ``np.sum(cumvar < threshold)``. The singular value that crosses the threshold is not counted.
* ``rank_to_reach`` is the number of singular values *needed to reach* the threshold: the
  crossing value is counted, so it is ``effective_rank + 1`` unless some cumulative share lands
  exactly on the threshold.

Both are reported so that numbers compare with the course (about 110/128 for fc1 and 54/64 for
fc2 of its SimpleNet) and with the "needed to explain 99% of the energy" convention used elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_THRESHOLD = 0.99  # the course's 99% of squared singular values


def singular_values(matrix: np.ndarray | torch.Tensor) -> np.ndarray:
    """Singular values of a 2-D matrix, largest first, as float64 numpy."""
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().double().numpy()
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {matrix.shape}")
    return np.linalg.svd(matrix, compute_uv=False)


def singular_values_from_gram(gram: torch.Tensor, triangle: str = "L") -> np.ndarray:
    """Singular values of A, largest first, from its Gram matrix A Aᵀ (or AᵀA): the roots of its eigenvalues.

    ``triangle``: the half of ``gram`` that is filled in ("L" or "U"); the other is not read.
    Through torch's LAPACK, which keeps to ``torch.set_num_threads`` (numpy's OpenBLAS runs a thread
    per core, and on a busy server those threads stalled each other).
    """
    return torch.linalg.eigvalsh(gram, UPLO=triangle).flip(0).clamp_min(0).sqrt().cpu().numpy()


def energy_share(values: np.ndarray) -> np.ndarray:
    """Cumulative share of the squared singular values: ``cumvar`` in the course's code."""
    squared = np.asarray(values, dtype=np.float64) ** 2
    total = squared.sum()
    if total == 0:
        return np.ones_like(squared)
    return np.cumsum(squared) / total


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")


def effective_rank(values: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> int:
    """The course's effective rank: count of cumulative energy shares still below ``threshold``."""
    _check_threshold(threshold)
    return int(np.sum(energy_share(values) < threshold))


def rank_to_reach(values: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> int:
    """How many singular values are needed for their energy share to reach ``threshold``."""
    _check_threshold(threshold)
    share = energy_share(values)
    # A tiny tolerance so that a share that is the threshold up to rounding counts as reaching it.
    return int(np.searchsorted(share, threshold - 1e-12) + 1) if len(share) else 0


@dataclass(frozen=True)
class RankSummary:
    """Everything a figure or a table needs about one matrix's spectrum."""

    singular_values: np.ndarray
    effective_rank: int
    rank_to_reach: int
    size: int  # the number of neurons (rows) the rank is compared with

    @property
    def ratio(self) -> float:
        return self.effective_rank / self.size


def summarize(matrix: np.ndarray | torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> RankSummary:
    """Singular values, both rank counts and the row count of a weight or activation matrix."""
    values = singular_values(matrix)
    return RankSummary(
        singular_values=values,
        effective_rank=effective_rank(values, threshold),
        rank_to_reach=rank_to_reach(values, threshold),
        size=int(np.asarray(matrix.shape)[0]),
    )


def pytorch_linear_init(out_features: int, in_features: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A weight drawn exactly as ``torch.nn.Linear`` draws it at construction.

    ``nn.Linear.reset_parameters`` uses ``kaiming_uniform_(w, a=sqrt(5))``, which is
    U(-1/sqrt(in_features), 1/sqrt(in_features)). Passing a generator keeps the draw off the
    global RNG, so concurrent users never disturb each other's seeds.
    """
    weight = torch.empty(out_features, in_features)
    torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    return weight


def random_baseline(shape: tuple[int, int], seed: int = 0, threshold: float = DEFAULT_THRESHOLD) -> RankSummary:
    """The spectrum of an untrained layer of the same shape, initialised as PyTorch does."""
    generator = torch.Generator().manual_seed(seed)
    return summarize(pytorch_linear_init(shape[0], shape[1], generator), threshold)
