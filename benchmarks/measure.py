"""Measuring helpers the benchmarks share: time, the machine's load, and memory as Linux reports it."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

MIB = 2**20


def milliseconds(run: Callable, *args, **kwargs) -> tuple[float, object]:
    """How long ``run(*args, **kwargs)`` took, in ms, and what it returned."""
    start = time.perf_counter()
    result = run(*args, **kwargs)
    return 1000 * (time.perf_counter() - start), result


def load_average() -> float:
    """The machine's 1-minute load average: printed so that a slow run can be read for what it is."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def threads_and_load() -> str:
    """PyTorch's version, its threads against the cores this process may use, and the machine's load.

    On a shared machine other work steals cores: printed, it lets a slow run be read for what it is.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return f"torch {torch.__version__}, PyTorch threads: {torch.get_num_threads()} of {cores} cores (load average {load_average():.2f})"


def status_mib(field: str, pid: int | str = "self") -> float:
    """One memory line of /proc/PID/status (Linux: VmRSS, VmHWM...), in MiB; NaN where there is none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # the kernel writes kB
    except (OSError, ValueError):
        pass
    return float("nan")


def reset_peak() -> bool:
    """Make the kernel's peak-RSS mark (VmHWM) start again from what is resident now (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_mib() -> float:
    """Peak resident memory: VmHWM where Linux has it, else ``ru_maxrss``.

    Not ``ru_maxrss`` first: a process started by a big one carries the parent's resident size at
    the fork into its ``ru_maxrss``, so a child of a gradio-laden process would report more than
    1 GB before doing anything. VmHWM belongs to the child's own memory after exec.
    """
    peak = status_mib("VmHWM")
    if peak != peak:  # NaN: no /proc
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = maxrss / MIB if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB on Linux
    return peak
