"""Every benchmark, in its quick mode: how CI runs them, so that a rename breaks a test, not the next measurement.

Each benchmark runs as ``python -m benchmarks.NAME --quick`` in its own process (as ``run_all`` runs it), on one
PyTorch thread, two at a time; the test asserts that it exits 0, says it is a quick run, prints its result lines
and judges no goal. About 3 minutes for all nine on a 2-core machine (``-m "not slow"`` leaves them out).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from benchmarks import run_all, summary
from tests import helpers

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
# Modules of benchmarks/ that are not benchmarks: shared measuring and reporting, and what bench_lm and
# bench_resnet run on and compare with.
HELPERS = {
    "__init__",
    "measure",
    "run_all",
    "summary",
    "lm_stand_ins",
    "lm_baselines",
    "resnet_stand_ins",
    "resnet_rank_tables",
}
QUICK_LIMIT_S = 240  # a hung quick run fails here rather than hanging CI; each takes 10 to 30 s

# Each benchmark and lines its report must hold (regular expressions, searched in its output).
RESULT_LINES = {
    "bench_startup": [r"run 1: serving after [\d.]+ s, idle RSS \d+ MiB", r"median: serving after"],
    "bench_toy": [
        r"dense \(S=0",
        r"pentagon \(S=0\.99",
        r"sparsity sweep: 4 sparsities",
        r"^[\d,]+ steps: ours = gradients written out",
        r"^/toy_sae defaults .*as the tab's handler runs it",
        r"^goals:",
    ],
    "bench_mnist": [
        r"ours: demos\.mnist\.analyse\s+[\d.]+",
        r"course way: hooks per call",
        r"floor: one bare forward pass",
    ],
    "bench_browser": [r"3 strokes after 1 warm-up", r"mouse-up -> every live panel updated: p50 \d+ ms"],
    "bench_resnet": [
        r"^1\) one forward pass",
        r"^2\) whole handler demos\.resnet\.analyse",
        r"^3\) layer switch",
        r"^goals from the issue:",
    ],
    "bench_lm": [
        r"^1\) forward \+ token heatmap",
        r"^2\) the course's SAE",
        r"^3\) pretrained SAE",
        r"^4\) the offline SmolLM2",
        r"^goals from the issue",
    ],
    "bench_features": [r"^1\) a feature's dashboard", r"^2\) /lm_features on \d+ tokens"],
    "bench_steer": [r"^1\) \d+ greedy tokens, steered", r"^2\) steer\(\) whole"],
    "load": [r"^/mnist\s+\d+", r"server RSS: \d+ MiB after warm-up", r"errors 0 \(sessions still stuck: 0\)"],
}


def benchmark_modules() -> set[str]:
    return {path.stem for path in BENCHMARKS.glob("*.py")} - HELPERS


def test_every_benchmark_has_a_quick_test():
    """A new (or renamed) benchmark gets a line in RESULT_LINES, and run_all runs each benchmark's own --quick."""
    assert benchmark_modules() == set(RESULT_LINES)
    for module, _full, quick in run_all.BENCHMARKS:
        assert module.rsplit(".", 1)[1] in RESULT_LINES
        assert quick == ["--quick"], module


def test_benchmarks_use_public_names_only():
    """No benchmark reaches into a module's private state (``lm._loaded``): a refactor may rename it at any time."""
    private = re.compile(r"\b[A-Za-z_]\w*\._[a-z]\w*")
    for path in sorted(BENCHMARKS.glob("*.py")):
        found = [m.group(0) for m in private.finditer(path.read_text()) if not m.group(0).startswith(("self.", "cls."))]
        assert not found, f"{path.name} uses private names: {sorted(set(found))}"


# Seconds each quick run took on a 2-core machine: the runs start longest first, so that two at a time end together.
QUICK_SECONDS = {"bench_lm": 56, "bench_browser": 49, "load": 43, "bench_toy": 38, "bench_startup": 33}


def run_quick(name: str, rows_file: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """``python -m benchmarks.NAME --quick`` as CI runs it; what it printed, and where its result rows are."""
    env = {
        **os.environ,
        summary.ENV: str(rows_file),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=QUICK_LIMIT_S,
    )
    return done, rows_file


@pytest.fixture(scope="module")
def quick_runs(request, tmp_path_factory):
    """The chosen benchmarks' quick runs, two at a time (each on one PyTorch thread), started when the first is asked for."""
    folder = tmp_path_factory.mktemp("benchmark-rows")
    chosen = {
        item.callspec.params["name"] for item in request.session.items if item.originalname == "test_quick_mode_runs"
    }
    names = sorted(chosen, key=lambda name: -QUICK_SECONDS.get(name, 0))
    runs = helpers.SideBySide({name: partial(run_quick, name, folder / f"{name}.json") for name in names})
    yield runs
    runs.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RESULT_LINES))
def test_quick_mode_runs(name: str, quick_runs):
    done, rows_file = quick_runs.result(name)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"python -m benchmarks.{name} --quick exited {done.returncode}:\n{output[-6000:]}"
    assert summary.QUICK_BANNER in done.stdout, output[-3000:]
    for line in RESULT_LINES[name]:
        assert re.search(line, done.stdout, re.MULTILINE), f"no line matching {line!r} in:\n{done.stdout[-4000:]}"
    assert summary.NOT_JUDGED in done.stdout and re.search(r"\bNOT (met|MET)\b", done.stdout) is None, done.stdout[
        -4000:
    ]  # no goal judged
    if rows_file.exists():  # the rows run_all would put in its table: none judged
        rows = json.loads(rows_file.read_text())
        assert rows and all(row["met"] is None and summary.NOT_JUDGED in row["goal"] for row in rows), rows
