"""Capture named activations with forward hooks that are always removed.

The course registered a fresh hook on every call and never removed it, so each call made the
model slower and kept old tensors alive. Here hooks live exactly as long as a ``with`` block.

    with capture_activations(model, ["fc1", "fc2"]) as acts:
        model(x)
    acts["fc1"]  # (B, 128)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def hooks_calling(model: nn.Module, names: Iterable[str], on_output) -> Iterator[None]:
    """Call ``on_output(name, output)`` for each named module's output inside the block.

    The building block of ``capture_activations``; use it directly to consume an activation as it
    is made (e.g. to add it to a running sum) instead of keeping every layer's output alive.
    Unknown names raise ``KeyError`` before any hook is added; hooks are removed even on error,
    and only forward passes run by the thread that opened the block are reported.
    """
    names = list(names)
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise KeyError(f"no module named {missing!r} in {type(model).__name__}")
    owner = threading.get_ident()

    def make_hook(name: str):
        def hook(_module: nn.Module, _inputs, output):
            # A server shares one model between users' threads, and hooks are per module, not per
            # thread: without this check one user's block would see another user's forward pass.
            if threading.get_ident() != owner:
                return
            if isinstance(output, tuple):  # e.g. attention blocks return (hidden, extras)
                output = output[0]
            on_output(name, output)

        return hook

    handles = []
    try:
        for name in names:
            handles.append(modules[name].register_forward_hook(make_hook(name)))
        yield
    finally:
        # Removing in `finally` is the whole point: an exception inside the block (or while adding
        # hooks) must not leave a hook behind on a model shared by every user of the app.
        for handle in handles:
            handle.remove()


@contextmanager
def capture_activations(
    model: nn.Module, names: Iterable[str], detach: bool = True
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of the named submodules during the forward passes inside the block.

    Args:
        model: any module; ``names`` are as ``model.named_modules()`` gives them (``"fc1"``,
            ``"layer1.0.conv1"``).
        names: which modules to record. Unknown names raise ``KeyError`` before any hook is added.
        detach: store detached tensors (the default), so captured values hold no autograd graph.

    Yields:
        A dict name -> output of the most recent forward pass through that module, counting
        only forward passes run by the thread that opened the block.
    """
    store: dict[str, torch.Tensor] = {}

    def keep(name: str, output: torch.Tensor) -> None:
        store[name] = output.detach() if detach else output

    with hooks_calling(model, names, keep):
        yield store


def hook_count(model: nn.Module) -> int:
    """Number of forward hooks currently registered anywhere in ``model`` (for tests and checks)."""
    return sum(len(m._forward_hooks) for m in model.modules())
