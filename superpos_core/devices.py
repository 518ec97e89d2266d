"""Pick the torch device the app runs on."""

from __future__ import annotations

import ctypes
import os
import sys
import threading

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error, not a fallback.

    On a GPU, float32 products and convolutions are then computed in full float32 (PyTorch lets
    cuDNN round convolution inputs to TF32, 10-bit mantissas, by default): the app shows a learner
    the same numbers on either device, and effective ranks cut singular values at a 1% share.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU on this machine")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu or cuda")
    if name == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.device(name)


def _glibc() -> ctypes.CDLL | None:
    """The C library, where it is glibc (whose allocator the two functions below tune); else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def limit_allocator_arenas(arenas: int = 2) -> bool:
    """Ask glibc for at most ``arenas`` malloc arenas (it otherwise gives each busy thread its own, up to 8 per core).

    A server runs its requests on many threads; with an arena each, memory freed by one request
    stays in that thread's arena and the process's resident memory creeps up under load. Returns
    whether the setting took (False on systems without glibc).
    """
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(-8, arenas))  # -8 is M_ARENA_MAX


def release_free_memory() -> bool:
    """Give the pages of freed memory back to the system (glibc's ``malloc_trim``); False where there is no glibc.

    A long job (training, a language model's forward, a sweep) allocates and frees many large
    temporaries; glibc keeps freed memory in its heaps for reuse, so a server's resident memory only
    ever rises to its busiest moment's. Trimmed after each long job, it falls back (load test: RSS
    growth over a minute of 16 sessions went from +120-160 MiB to about +75 MiB). It takes a few
    milliseconds, nothing beside a job that takes seconds.
    """
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


BACKGROUND_NICE = 10  # how much lower than the server's other threads (Linux scheduling priority)


def lower_this_threads_priority() -> None:
    """Let every other thread of the process go first (long work in the background: quick events are answered at once)."""
    try:  # on Linux a thread is a task of its own: this lowers this thread only, and needs no privilege
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except (OSError, AttributeError):  # another system: the work simply runs at the usual priority
        pass
