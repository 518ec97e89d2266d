"""The SAE tools' two errors and the checks that raise them, with messages meant for the learner."""

from __future__ import annotations

import math

import numpy as np

MAX_SEED = (
    2**63 - 1
)  # torch.Generator.manual_seed takes 64-bit seeds (a larger one overflows); the other tabs use the same bound


class SAEInputError(ValueError):
    """A setting or input the SAE tools cannot use; the message is meant for the learner."""


class SAELoadError(RuntimeError):
    """A pretrained SAE that cannot be loaded; the message says what is wrong and what to do."""


def is_real(value) -> bool:
    """A finite number (a bool is not one)."""
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def whole_number(label: str, value, low: int, high: int | None) -> None:
    """Raise ``SAEInputError`` naming ``label`` unless ``value`` is a whole number in [low, high]."""
    ok = (
        isinstance(value, (int, np.integer))
        and not isinstance(value, bool)
        and value >= low
        and (high is None or value <= high)
    )
    if not ok:
        bounds = f"from {low:,} to {high:,}" if high is not None else f"of at least {low}"
        raise SAEInputError(f"{label} must be a whole number {bounds}; got {value!r}.")
