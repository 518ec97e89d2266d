"""The rows a benchmark contributes to `python -m benchmarks.run_all`'s single table.

A benchmark calls ``record(...)`` for each headline figure. When ``run_all`` starts it, the
environment names a file (``SUPERPOS_BENCH_SUMMARY``) and the rows are written there as JSON; run on
its own, a benchmark only prints its usual report and ``record`` keeps the rows in memory.
"""
from __future__ import annotations

import atexit
import json
import os
from dataclasses import asdict, dataclass

ENV = "SUPERPOS_BENCH_SUMMARY"


@dataclass
class Row:
    demo: str  # which tab the figure belongs to
    operation: str
    ours: float
    unit: str  # "ms", "s" or "MiB"
    course: float | None = None  # the course's way of doing the same, same unit, same run
    floor: float | None = None  # a bare forward pass (or the like), same unit
    goal: str = ""  # as the issue states it
    met: bool | None = None


ROWS: list[Row] = []


def record(demo: str, operation: str, ours: float, unit: str, course: float | None = None, floor: float | None = None, goal: str = "", met: bool | None = None) -> None:
    ROWS.append(Row(demo, operation, float(ours), unit, None if course is None else float(course), None if floor is None else float(floor), goal, None if met is None else bool(met)))


def _write() -> None:
    path = os.environ.get(ENV)
    if path and ROWS:
        with open(path, "w") as handle:
            json.dump([asdict(row) for row in ROWS], handle)


atexit.register(_write)
