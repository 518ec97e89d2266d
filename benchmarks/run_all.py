"""python -m benchmarks.run_all [--quick] [--log benchmarks.log]

Every demo's benchmark, one after the other, each in its own process (so one's memory and threads
never colour the next), then a single table: operation, ours, the course's way, the floor (a bare
forward pass), the ratios, the goal and whether it is met. Each benchmark's full report goes to the
log file. About 12 minutes on a 2-core machine; ``--quick`` runs each benchmark's own ``--quick`` (about
2 minutes: a check that everything runs; its figures are not measurements and no goal is judged).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
# (module, arguments for a full run, arguments for --quick). Every benchmark's own --quick is a check that it
# runs, in seconds, judging no goal; tests/test_benchmarks.py runs each one so, which is how CI runs them all.
BENCHMARKS = [
    ("benchmarks.bench_startup", [], ["--quick"]),
    ("benchmarks.bench_toy", [], ["--quick"]),
    ("benchmarks.bench_mnist", [], ["--quick"]),
    ("benchmarks.bench_browser", [], ["--quick"]),
    ("benchmarks.bench_resnet", [], ["--quick"]),
    ("benchmarks.bench_lm", [], ["--quick"]),
    ("benchmarks.bench_features", [], ["--quick"]),
    ("benchmarks.bench_steer", [], ["--quick"]),
]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        cpu = model
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, 1 PyTorch thread"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "ms":
        return f"{value:.3g} ms" if value < 10 else f"{value:.1f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:.0f} {unit}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}×" if a and b else ""


def table(rows: list[dict]) -> str:
    lines = [
        "| demo | operation | ours | course's way | floor | course / ours | ours / floor | goal | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        course_ratio = ratio(r["ours"], r["course"]) if r["unit"] == "MiB" else ratio(r["course"], r["ours"])
        if r["unit"] == "MiB" and course_ratio:
            course_ratio = f"{r['ours'] / r['course']:.3f}× (ours / course)"
        lines.append(
            f"| {r['demo']} | {r['operation']} | {fmt(r['ours'], r['unit'])} | {fmt(r['course'], r['unit'])} | {fmt(r['floor'], r['unit'])} "
            f"| {course_ratio} | {ratio(r['ours'], r['floor'])} | {r['goal']} | {met} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark and print one table.")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="each benchmark's --quick: a check that everything runs; no goal judged, no figures to report",
    )
    parser.add_argument("--log", default=str(REPO / "benchmarks.log"), help="where each benchmark's full report goes")
    parser.add_argument("--only", nargs="*", help="module names to run (default: all)")
    args = parser.parse_args()
    rows, failed = [], []
    begun = time.perf_counter()
    with open(args.log, "w") as log, tempfile.TemporaryDirectory() as folder:
        for module, full, quick in BENCHMARKS:
            if args.only and module.rsplit(".", 1)[1] not in args.only and module not in args.only:
                continue
            out = Path(folder) / f"{module}.json"
            env = {
                **os.environ,
                "SUPERPOS_BENCH_SUMMARY": str(out),
                "OMP_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
            }
            print(f"running {module} ...", flush=True)
            started = time.perf_counter()
            log.write(f"\n===== python -m {module} {' '.join(quick if args.quick else full)}\n")
            log.flush()
            done = subprocess.run(
                [sys.executable, "-m", module, *(quick if args.quick else full)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            print(f"  {time.perf_counter() - started:.0f} s, exit {done.returncode}", flush=True)
            if done.returncode != 0 or not out.exists():
                failed.append(module)
                continue
            rows += json.loads(out.read_text())
    print()
    print(
        f"Machine: {machine()}. {'QUICK run: a check that everything runs, no goal judged, figures not to report. ' if args.quick else ''}Whole run {time.perf_counter() - begun:.0f} s; full reports in {args.log}."
    )
    print()
    print(table(rows))
    if failed:
        print(f"\nFAILED (see {args.log}): {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
