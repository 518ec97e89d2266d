"""python -m benchmarks.bench_startup [--runs 3] [--idle 10] [--quick]

How long `python app.py` takes from the command to a page the browser can load, and how much memory
the idle server holds. Each run starts a fresh process on a free loopback port (so the operating
system's file cache is warm after the first, as on a server that restarts), waits for the page,
lets it idle for ``--idle`` seconds and reads its resident memory (VmRSS) before stopping it.
The server warms its default language model as it starts, so the idle figure includes that model (its early
reader, superpos_core.lm.early_reader, has ended by then; only the server's own process is read).

Then ``--runs`` more starts, each timed until its first answer to /lm with the offline SmolLM2 (a text of its own);
their median is reported.

Goals (issue 6): serving in <= 8 s, idle RSS <= 1.2 GB; (issue 18) the first SmolLM2 /lm answer <= 10 s from the
command; on this project's 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.load import free_port, rss_mib, start_server, stop_server
from benchmarks.summary import quick_run, record, verdict

GOAL_START_S = 8.0
GOAL_IDLE_MB = 1200.0  # 1.2 GB, in MB of 10^6 bytes
MIB_PER_MB = 10**6 / 2**20


def one_start(idle_s: float) -> tuple[float, float]:
    started = time.perf_counter()
    server = start_server(free_port())
    serving = time.perf_counter() - started
    try:
        time.sleep(idle_s)
        return serving, rss_mib(server.pid)
    finally:
        stop_server(server)


GOAL_FIRST_LM_S = 10.0  # issue 18: a restarted server's first SmolLM2 /lm answer, from the command


def first_text_answered(idle_s: float = 0.0) -> tuple[float, float, float]:
    """(seconds from ``python app.py`` to the page served, to its first answer to /lm with the offline SmolLM2 (a
    text of its own, not the tab's example: nothing drawn at start-up answers it), and the RSS in MiB after
    ``idle_s`` more seconds), on a start after the first (caches warm)."""
    from benchmarks.load import LM, connect

    port, started = free_port(), time.perf_counter()
    server = start_server(port)  # returns as soon as the page is served
    try:
        serving = time.perf_counter() - started
        client = connect(f"http://127.0.0.1:{port}/")
        client.predict(
            "A restarted server reads its first text.", LM, 10, "most variable 64 dimensions", api_name="/lm"
        )
        answered = time.perf_counter() - started
        time.sleep(idle_s)
        return serving, answered, rss_mib(server.pid)
    finally:
        stop_server(server)


def measure(runs: int = 3, idle_s: float = 10.0) -> dict:
    """Median time to serve (s) and idle RSS (MiB) over ``runs`` fresh starts."""
    results = [one_start(idle_s) for _ in range(runs)]
    return {
        "start_s": statistics.median(r[0] for r in results),
        "idle_mib": statistics.median(r[1] for r in results),
        "runs": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds the server idles before its memory is read")
    parser.add_argument(
        "--quick", action="store_true", help="a check that it runs: one start, 1 s idle; no goal judged"
    )
    args = parser.parse_args()
    if args.quick:
        args.runs, args.idle = 1, 1.0
        quick_run()
    if args.quick:  # one start checks both: served, then its first text answered (its RSS then not an idle one's)
        serving, first, rss = first_text_answered(args.idle)
        result = {"start_s": serving, "idle_mib": rss, "runs": [(serving, rss)]}
    else:
        result = measure(args.runs, args.idle)
        # After measure's starts: restarts, their caches warm. The median of several: a start on a shared 2-core
        # machine now and then stalls for seconds (one import of the app took 178 s once, against 6.5 s).
        firsts = [first_text_answered()[1] for _ in range(args.runs)]
        first = statistics.median(firsts)
        print("first SmolLM2 /lm answers, each after a restart: " + ", ".join(f"{s:.2f} s" for s in firsts))
    print(
        f"a restarted server's first SmolLM2 /lm answer (median): {first:.2f} s after `python app.py` (goal <= "
        f"{GOAL_FIRST_LM_S:.0f} s: {verdict(first <= GOAL_FIRST_LM_S, not_met='NOT MET')})"
    )
    record(
        "app",
        "a restarted server's first SmolLM2 /lm answer",
        first,
        "s",
        goal=f"<= {GOAL_FIRST_LM_S:.0f} s",
        met=first <= GOAL_FIRST_LM_S,
    )
    for i, (serving, idle) in enumerate(result["runs"], 1):
        print(f"run {i}: serving after {serving:.2f} s, idle RSS {idle:.0f} MiB")
    goal_mib = GOAL_IDLE_MB * MIB_PER_MB
    record(
        "app",
        "`python app.py` until the page is served",
        result["start_s"],
        "s",
        goal=f"<= {GOAL_START_S:.0f} s",
        met=result["start_s"] <= GOAL_START_S,
    )
    record(
        "app",
        "idle server's resident memory",
        result["idle_mib"],
        "MiB",
        goal="<= 1.2 GB",
        met=result["idle_mib"] <= goal_mib,
    )
    print(
        f"median: serving after {result['start_s']:.2f} s (goal <= {GOAL_START_S:.0f} s: {verdict(result['start_s'] <= GOAL_START_S, not_met='NOT MET')}); "
        f"idle RSS {result['idle_mib']:.0f} MiB (goal <= {goal_mib:.0f} MiB = 1.2 GB: {verdict(result['idle_mib'] <= goal_mib, not_met='NOT MET')})"
    )


if __name__ == "__main__":
    main()
