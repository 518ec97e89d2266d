"""The rows a benchmark contributes to `python -m benchmarks.run_all`'s single table.

A benchmark calls ``record(...)`` for each headline figure. When ``run_all`` starts it, the
environment names a file (``SUPERPOS_BENCH_SUMMARY``) and the rows are written there as JSON; run on
its own, a benchmark only prints its usual report and ``record`` keeps the rows in memory.

Every benchmark also has a quick mode (``--quick``): a few repeats on small sizes, so that CI
(``tests/test_benchmarks.py``) runs every benchmark in seconds and a rename breaks a test rather than the
next measurement. A quick run calls ``quick_run()`` first; its figures are not measurements, so
``verdict`` and ``record`` judge no goal in it.
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
QUICK_BANNER = "QUICK run: a check that this benchmark runs (few repeats, small sizes); its figures are not measurements and no goal is judged."
NOT_JUDGED = "not judged (quick run)"
_quick = False


def quick_run() -> None:
    """Mark this process's run as quick, and say so: from now on no goal is judged."""
    global _quick
    _quick = True
    print(QUICK_BANNER, flush=True)


def is_quick() -> bool:
    """Whether ``quick_run()`` was called in this process."""
    return _quick


def verdict(ok: bool | None, met: str = "met", not_met: str = "NOT met") -> str:
    """How a goal's line ends: met, not met, or, in a quick run, not judged ("report" where there is no goal)."""
    if _quick:
        return NOT_JUDGED
    return "report" if ok is None else (met if ok else not_met)


def record(
    demo: str,
    operation: str,
    ours: float,
    unit: str,
    course: float | None = None,
    floor: float | None = None,
    goal: str = "",
    met: bool | None = None,
) -> None:
    """One row of ``run_all``'s table; in a quick run its goal is marked not judged and ``met`` is dropped."""
    if _quick:
        goal, met = (f"{goal}: {NOT_JUDGED}" if goal else NOT_JUDGED), None
    ROWS.append(
        Row(
            demo,
            operation,
            float(ours),
            unit,
            None if course is None else float(course),
            None if floor is None else float(floor),
            goal,
            None if met is None else bool(met),
        )
    )


def _write() -> None:
    path = os.environ.get(ENV)
    if path and ROWS:
        with open(path, "w") as handle:
            json.dump([asdict(row) for row in ROWS], handle)


atexit.register(_write)
