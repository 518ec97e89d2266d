"""The reference rank table two ways, for ``benchmarks/bench_resnet.py``, and the check that they agree.

The course's way keeps every conv layer's activations, concatenates them per layer, moves channels first
and runs a full ``np.linalg.svd`` per layer. Ours is ``conv_rank.rank_table``: one C x C Gram matrix per
layer, added to batch by batch. ``compare_ranks`` accepts a layer whose effective rank differs between the
two only where a cumulative energy share sits on the 99% threshold within rounding (float32 SVD against
float64 Gram eigenvalues); any other difference is an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from superpos_core import conv_rank, rank
from superpos_core.conv_rank import channels_first, conv_layer_names

# How close to the 99% threshold a cumulative energy share must be for a float32-vs-float64
# difference to be read as rounding at the threshold rather than as a wrong rank.
THRESHOLD_TIE = 1e-4


# --- the course's way of making the rank table: the reference we compare with ---------------------


@torch.no_grad()
def course_rank_table(
    model: nn.Module, batches: list[torch.Tensor], threshold: float = rank.DEFAULT_THRESHOLD
) -> tuple[list[list], dict[str, np.ndarray]]:
    """Every conv layer's activations kept, then one full SVD per layer.

    Returns ([layer, channels, effective rank, columns] per layer, layer -> singular values).
    """
    names = conv_layer_names(model)
    modules = dict(model.named_modules())
    kept: dict[str, list[torch.Tensor]] = {name: [] for name in names}

    def keep(name: str):
        def hook(_module, _inputs, output):
            kept[name].append(output.detach())

        return hook

    # 1) One hook per layer that appends every batch's output: all of it stays in memory.
    handles = [modules[name].register_forward_hook(keep(name)) for name in names]
    for x in batches:
        model(x)
    # The course leaves its hooks on; in a one-off script that costs nothing, so removing them
    # changes neither its time nor its memory.
    for handle in handles:
        handle.remove()

    # 2) Per layer: concatenate, channels first, full SVD (float32, as the activations are).
    rows, values = [], {}
    for name in names:
        stacked = torch.cat(kept[name])  # (N, C, H, W)
        # Here we differ from the course on purpose: it reshaped NCHW straight to (C, -1), which
        # mixes samples and channels in each row. Both sides must compute the same thing to compare.
        matrix = channels_first(stacked).numpy()  # (C, N·H·W)
        singular = np.linalg.svd(matrix, compute_uv=False)  # (C,), largest first
        rows.append([name, matrix.shape[0], rank.effective_rank(singular, threshold), matrix.shape[1]])
        values[name] = singular
    return rows, values


@contextmanager
def recording_singular_values() -> Iterator[dict[str, np.ndarray]]:
    """Keep a reference to the (uncentred) singular values ``rank_table`` computes anyway, to compare them.

    Only wraps ``StreamingGram.spectra``; what ``rank_table`` computes is unchanged. The centred
    values it also computes have no counterpart on the course's side and are not compared.
    """
    original = conv_rank.StreamingGram.spectra
    seen: dict[str, np.ndarray] = {}

    def recording(self, name: str, centred: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        values, centred_values = original(self, name, centred)
        seen[name] = values
        return values, centred_values

    conv_rank.StreamingGram.spectra = recording
    try:
        yield seen
    finally:
        conv_rank.StreamingGram.spectra = original


def ours_rank_table(
    model: nn.Module, batches: list[torch.Tensor], centred: bool = False
) -> tuple[list[list], dict[str, np.ndarray]]:
    """The course's table our way (``centred=False``: the same columns the course computes), or the app's, centred count included."""
    with recording_singular_values() as values:
        table = conv_rank.rank_table(model, batches, centred=centred)
    return [[row.layer, row.channels, row.effective_rank, row.columns] for row in table], values


SIDES = {
    "course": course_rank_table,
    "ours": ours_rank_table,
    "ours-centred": lambda model, batches: ours_rank_table(model, batches, centred=True),
}


# --- the two sides compared ------------------------------------------------------------------------


def compare_ranks(course: dict, ours: dict) -> tuple[int, list[str], float]:
    """(layers with the same rank, a line per layer that differs only at the threshold, largest share gap).

    Raises if a rank differs for any other reason.
    """
    course_rows = {row[0]: row for row in course["rows"]}
    ours_rows = {row[0]: row for row in ours["rows"]}
    if list(course_rows) != list(ours_rows):
        raise AssertionError(
            f"the two sides saw different layers: {list(course_rows)[:3]}... vs {list(ours_rows)[:3]}..."
        )
    same, ties, largest_gap = 0, [], 0.0
    for name, (_, channels, course_rank, course_columns) in course_rows.items():
        _, ours_channels, ours_rank, ours_columns = ours_rows[name]
        if (channels, course_columns) != (ours_channels, ours_columns):
            raise AssertionError(
                f"{name}: course {channels} channels x {course_columns} columns, ours {ours_channels} x {ours_columns}"
            )
        # With fewer columns than channels an SVD gives only one value per column; the Gram matrix
        # gives all C, the rest 0. Zeros add no energy: their cumulative share is already 1.
        course_share, ours_share = (
            np.pad(s, (0, channels - len(s)), constant_values=1.0)
            for s in (np.array(course["shares"][name]), np.array(ours["shares"][name]))
        )
        largest_gap = max(largest_gap, float(np.abs(course_share - ours_share).max()))
        if course_rank == ours_rank:
            same += 1
            continue
        # The shares the two sides count differently: each must sit on the threshold, within rounding.
        low, high = sorted((course_rank, ours_rank))
        disputed = range(low, high)
        at_threshold = all(
            abs(course_share[k] - rank.DEFAULT_THRESHOLD) <= THRESHOLD_TIE
            and abs(ours_share[k] - rank.DEFAULT_THRESHOLD) <= THRESHOLD_TIE
            for k in disputed
        )
        detail = ", ".join(f"share[{k}] course {course_share[k]:.9f} ours {ours_share[k]:.9f}" for k in disputed)
        if not at_threshold:
            raise AssertionError(f"{name}: effective rank {course_rank} (course's SVD) vs {ours_rank} (ours); {detail}")
        ties.append(f"{name} ({channels} ch): course {course_rank}, ours {ours_rank}; {detail}")
    return same, ties, largest_gap
