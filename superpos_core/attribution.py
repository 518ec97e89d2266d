"""Which input pixels drove an answer: integrated gradients (Sundararajan et al., 2017).

Gradient x input says how a tiny change would move the logit; integrated gradients adds up the
gradient along the straight path from a baseline (here: blank paper) to the actual digit, so the
attributions sum to logit(digit) - logit(blank paper). That "completeness" is why we prefer it:
red pixels pushed towards the answer, blue pixels pushed against it, in logit units.
"""

from __future__ import annotations

import torch
from torch import nn


def integrated_gradients(
    model: nn.Module, x: torch.Tensor, target: int, baseline: torch.Tensor, steps: int = 32
) -> torch.Tensor:
    """Attributions of ``model(x)[target]`` to each input value, relative to ``baseline``.

    Args:
        model: maps (B, D) inputs to (B, classes) logits; its parameters may be frozen.
        x: one input, shape (D,).
        target: the class whose logit is explained.
        baseline: the "nothing there" input, shape (D,).
        steps: points on the path (midpoint rule); 32 is plenty for a 3-layer ReLU network.

    Returns:
        (D,) attributions whose sum approximates ``logit(x) - logit(baseline)``.
    """
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps  # (S,)
    path = baseline + alphas[:, None] * (x - baseline)  # (S, D): all points in one batch
    path.requires_grad_(True)
    with torch.enable_grad():
        logits = model(path)[:, target]  # (S,)
        (grads,) = torch.autograd.grad(logits.sum(), path)
    return (x - baseline) * grads.mean(0)  # (D,)
