"""python -m benchmarks.load [--sessions 16] [--seconds 60] [--quick]

A class hitting the app at once: starts `python app.py` on a free loopback port (nothing leaves this
machine), opens ``--sessions`` gradio_client sessions that each call the public endpoints in a
shuffled loop for ``--seconds``, then stops the clients and the server by itself. Prints, per
endpoint, calls, p50 and p95 latency and errors, and the server's resident memory (RSS) before and
after the run.

The mix is a lesson's: mostly drawings (/mnist) and ResNet pictures, some toy models and texts, now
and then a heavier request (an SAE, a concepts table, a sweep, a training run). Before the clock
starts every endpoint is called once, so models load outside the measurement: RSS growth is what
the load itself leaves behind.

Goals (issue 6): 0 errors, RSS growth <= 100 MB, /mnist p95 <= 1 s, with 16 sessions for 60 s.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.measure import MIB, status_mib
from benchmarks.summary import is_quick, quick_run, verdict

REPO = Path(__file__).resolve().parents[1]
LM = "smollm2-135m-offline"  # the language model every machine of this project has
GOAL_ERRORS, GOAL_RSS_GROWTH_MB, GOAL_MNIST_P95_S = 0, 100.0, 1.0
HARD_STOP_S = 120  # a call still running this long after the run's end is abandoned, and counted as an error


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    return status_mib("VmRSS", pid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(port: int) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen(
        [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app stopped while starting:\n{server.stderr.read()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return server
        except OSError:
            time.sleep(0.2)
    stop_server(server)
    raise RuntimeError("the app did not start serving within 60 s")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def inputs(folder: Path) -> dict[str, list[tuple]]:
    """Per endpoint, a few realistic argument lists (real MNIST digits, bundled photos, short texts)."""
    from gradio_client import handle_file

    from superpos_core import mnist

    test = mnist.load_sample().test
    digits = []
    for i in range(8):
        path = folder / f"digit{i}.png"
        Image.fromarray(255 - np.kron(test.images[i], np.ones((10, 10), np.uint8))).save(
            path
        )  # black on white, 280x280
        digits.append(handle_file(str(path)))
    photos = [handle_file(str(p)) for p in sorted((REPO / "assets" / "photos").glob("*.jpg"))]
    texts = [
        "It was the best of times, it was the worst of times.",
        "The cat sat on the mat.",
        "Paris is the capital of France.",
    ]
    return {
        "/mnist": [({"background": d, "layers": [], "composite": None},) for d in digits],
        "/resnet": [(d, "mnist-resnet", "layer2.0.conv1") for d in digits[:4]]
        + [(p, "mnist-resnet", "layer4.1.conv2") for p in photos[:2]],
        # Each endpoint's first inputs are its tab's default example, which a class clicks first (``opening_calls``).
        "/toy": [(5, 2, 0.99, 1.0, 1000, 0)]
        + [(5, 2, s, 1.0, 300, seed) for s, seed in ((0.9, 0), (0.99, 1), (0.0, 2))],
        "/toy_sweep": [(5, 2, 1.0, 200, 0)],
        "/lm": [(t, LM, layer, "most variable 64 dimensions") for t, layer in zip(texts * 2, (15, 10, 20, 3))],
        "/lm_sae": [(texts[0], LM, 10, 16, 0.01, 200, 0)],
        "/mnist_train": [(1, 0)],
    }


# How often each endpoint comes up in a session's loop, per profile. A lesson is mostly drawing and looking, with
# no pause; a class (issue 18) is drawings 60% (for SimpleNet and the ResNet), short texts 25% and toy models 15%, a
# few long jobs besides, each
# student pausing to look at what came back.
PROFILES = {
    "lesson": {
        "/mnist": 12,
        "/resnet": 5,
        "/toy": 2,
        "/lm": 3,
        "/lm_sae": 1,
        "/lm_concepts": 1,
        "/toy_sweep": 1,
        "/mnist_train": 0.3,
    },
    "class": {
        "/mnist": 45,
        "/resnet": 15,
        "/lm": 25,
        "/toy": 15,
        "/lm_sae": 0.7,
        "/lm_concepts": 0.7,
        "/toy_sweep": 0.7,
        "/mnist_train": 0.3,
    },
}
THINK_S = {"lesson": (0.0, 0.0), "class": (1.0, 3.0)}  # a pause after each answer, uniform in this range
WEIGHTS = PROFILES["lesson"]
GOALS_P95_S = {  # per profile: the endpoints whose p95 is judged, and its goal
    "lesson": {"/mnist": GOAL_MNIST_P95_S},
    "class": {"/mnist": 1.0, "/resnet": 1.0, "/lm": 4.0, "/toy": 4.0},
}
OPENING = "(opening)"  # the suffix of the calls a student makes as the page opens: each tab's default example


SUBJECTS = ["The cat", "My teacher", "A small robot", "The river", "Our class", "The old king", "A neural network"]
VERBS = ["found", "painted", "remembered", "explained", "carried", "counted", "ignored"]
OBJECTS = ["a red apple", "the last train", "seven stars", "the idea of superposition", "a quiet song", "the map"]


def own_inputs(name: str, rng: random.Random, calls: dict) -> tuple:
    """A student's own request once the examples are clicked: their own sentence at a layer of their choosing, their
    own toy model's seed (never one computed before, so nothing is shared); pictures from the sample."""
    if name == "/lm":
        text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} on day {rng.randrange(10**6)}."
        return text, LM, rng.randrange(1, 31), "most variable 64 dimensions"
    if name == "/toy":
        return 5, 2, rng.choice([0.0, 0.7, 0.9, 0.99]), 1.0, 300, rng.randrange(10**6)
    return rng.choice(calls[name])


def opening_calls(calls: dict) -> list[tuple[str, tuple]]:
    """What a student does first: open the page, then click each tab's default example (its first inputs here)."""
    return [(name, calls[name][0]) for name in ("/mnist", "/resnet", "/toy", "/lm") if calls.get(name)]


def connect(url: str):
    """A gradio_client session (it fetches the app's configuration and API description)."""
    from gradio_client import Client

    # Plain HTTP on loopback: no certificate to check. gradio_client makes a new HTTP client for each
    # request, and with checking on, each one reads the system's certificate store (~30 ms of CPU):
    # 16 sessions then spent more CPU than the server they were measuring.
    return Client(url, verbose=False, ssl_verify=False)


def one_call(client, name: str, args: tuple, record, label: str | None = None) -> None:
    """One request, timed from outside; ``record(label or name, started, seconds, error)``."""
    started = time.perf_counter()
    try:
        result = client.submit(*args, api_name=name).result(timeout=HARD_STOP_S)
        ok = (
            isinstance(result, (list, tuple)) and isinstance(result[0], dict)
            if name != "/mnist_train"
            else bool(result)
        )
        error = None if ok else f"unexpected result {str(result)[:80]}"
    except Exception as failure:  # counted, printed at the end
        error = f"{type(failure).__name__}: {str(failure)[:120]}"
    record(label or name, started, time.perf_counter() - started, error)


def session(
    client,
    calls: dict,
    stop_at: float,
    seed: int,
    record,
    weights: dict = WEIGHTS,
    think: tuple[float, float] = (0.0, 0.0),
    opening: list[tuple[str, tuple]] = (),
    varied: bool = False,
) -> None:
    """One learner: the ``opening`` calls, then endpoints one after another until ``stop_at``, each answer followed
    by a pause drawn from ``think`` (with ``varied``, texts and toy models of their own: ``own_inputs``);
    ``record(name, started, seconds, error)``."""
    rng = random.Random(seed)
    for name, args in opening:
        one_call(client, name, args, record, f"{name} {OPENING}")
    names = [name for name in weights if calls.get(name)]
    chances = [weights[name] for name in names]
    while time.monotonic() < stop_at:
        name = rng.choices(names, chances)[0]
        one_call(client, name, own_inputs(name, rng, calls) if varied else rng.choice(calls[name]), record)
        pause = rng.uniform(*think)
        if pause:
            time.sleep(max(0.0, min(pause, stop_at - time.monotonic())))


def concept_defaults(client) -> list[tuple]:
    """/lm_concepts called with the example values its API description gives (the tab's defaults)."""
    endpoint = client.view_api(print_info=False, return_format="dict")["named_endpoints"].get("/lm_concepts")
    if endpoint is None:
        return []
    values = []
    for parameter in endpoint["parameters"]:
        name = parameter["parameter_name"]
        values.append(
            LM
            if name == "model"
            else 10
            if name == "layer"
            else parameter.get("parameter_default", parameter.get("example_input"))
        )
    return [tuple(values)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Many gradio_client sessions against a local superpos, bounded in time."
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="lesson",
        help="lesson: every endpoint, no pause; class: each student opens the page and clicks each tab's example, "
        "then drawings 60%%, texts 25%%, toy models 15%%, a few long jobs, pausing 1-3 s after each answer",
    )
    parser.add_argument("--sessions", type=int, default=None, help="default: 16 (lesson), 8 (class)")
    parser.add_argument("--seconds", type=float, default=None, help="default: 60 (lesson), 40 (class)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the load this many times on the same server, printing RSS after each (only round 1 is timed)",
    )
    parser.add_argument("--endpoints", nargs="*", help="only these (e.g. /mnist), to see one endpoint's own limit")
    parser.add_argument(
        "--timeline",
        type=float,
        default=0,
        metavar="S",
        help="also print /mnist calls and p95 per window of S seconds (when in the run slow answers come)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a check that it runs: 2 sessions for 2 s after the warm-up; no goal judged (an error still fails it)",
    )
    args = parser.parse_args()
    args.sessions = args.sessions or (8 if args.profile == "class" else 16)
    args.seconds = args.seconds or (40.0 if args.profile == "class" else 60.0)
    weights, think = PROFILES[args.profile], THINK_S[args.profile]
    if args.quick:
        args.sessions, args.seconds, args.rounds = 2, 2.0, 1
        quick_run()
    if not (1 <= args.sessions <= 64 and 1 <= args.seconds <= 600):
        parser.error("--sessions must be 1..64 and --seconds 1..600: this is a bounded test, not a stress tool")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    # Stopped from outside (a timeout, kill): still stop the server, which runs in its own session.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    server = start_server(port)
    print(f"app serving at {url} after {time.perf_counter() - started:.1f} s; RSS {rss_mib(server.pid):.0f} MiB")
    try:
        with tempfile.TemporaryDirectory() as folder:
            calls = inputs(Path(folder))
            warm = connect(url)
            calls["/lm_concepts"] = concept_defaults(warm)
            if args.endpoints:
                calls = {name: options for name, options in calls.items() if name in args.endpoints}
            for name, options in calls.items():  # load every model once, outside the measurement
                if options:
                    t = time.perf_counter()
                    warm.predict(*options[0], api_name=name)
                    print(f"  warm-up {name:<13} {time.perf_counter() - t:6.2f} s")
            before = rss_mib(server.pid)
            print(f"RSS after warm-up: {before:.0f} MiB. {args.sessions} sessions for {args.seconds:.0f} s...")

            latencies: dict[str, list[float]] = defaultdict(list)
            errors: dict[str, list[str]] = defaultdict(list)
            mnist_calls: list[tuple[float, float]] = []  # (started, seconds) of each answered /mnist call
            lock = threading.Lock()
            peak = [before]

            def record(name: str, started: float, seconds: float, error: str | None) -> None:
                with lock:
                    (errors[name].append(error) if error else latencies[name].append(seconds))
                    if name == "/mnist" and not error:
                        mnist_calls.append((started, seconds))

            # Sessions connect first (16 at once fetch the app's configuration: a burst the server answers
            # in a few seconds), then the clock starts: what is timed is the calls.
            with ThreadPoolExecutor(args.sessions) as pool:
                clients = list(pool.map(lambda _: connect(url), range(args.sessions)))
            print(f"{len(clients)} sessions connected; the clock starts.", flush=True)
            cpu_before, clients_before = cpu_seconds(server.pid), time.process_time()
            clock_started = time.perf_counter()
            stop_at = time.monotonic() + args.seconds
            opening = opening_calls(calls) if args.profile == "class" else []
            threads = [
                threading.Thread(
                    target=session,
                    args=(clients[i], calls, stop_at, args.seed + i, record, weights, think, opening, bool(opening)),
                    daemon=True,
                )
                for i in range(args.sessions)
            ]
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads) and time.monotonic() < stop_at + HARD_STOP_S:
                peak[0] = max(peak[0], rss_mib(server.pid))
                time.sleep(0.5)
            stuck = sum(t.is_alive() for t in threads)
            after = rss_mib(server.pid)
            server_cpu, clients_cpu = cpu_seconds(server.pid) - cpu_before, time.process_time() - clients_before
            for round_number in range(2, args.rounds + 1):  # the same load again: does the memory keep growing?
                stop_at = time.monotonic() + args.seconds
                again = [
                    threading.Thread(
                        target=session,
                        args=(clients[i], calls, stop_at, args.seed + 100 * round_number + i, lambda *a: None)
                        + (weights, think),
                        daemon=True,
                    )
                    for i in range(args.sessions)
                ]
                for thread in again:
                    thread.start()
                for thread in again:
                    thread.join(args.seconds + HARD_STOP_S)
                print(f"RSS after round {round_number}: {rss_mib(server.pid):.0f} MiB (after round 1: {after:.0f} MiB)")
    finally:
        stop_server(server)

    print()
    if args.timeline:
        print(f"/mnist by when the call started (windows of {args.timeline:g} s):")
        for first in np.arange(0, args.seconds, args.timeline):
            window = [s for t, s in mnist_calls if first <= t - clock_started < first + args.timeline]
            print(
                f"  {first:5.0f}-{first + args.timeline:<4.0f} s  {len(window):4} calls  p95 {percentile(window, 95):6.3f} s  slowest {max(window, default=float('nan')):6.3f} s"
            )
        print()
    print(f"{'endpoint':<24} {'calls':>6} {'p50 s':>7} {'p95 s':>7} {'errors':>7}")
    for name in [*(f"{n} {OPENING}" for n, _ in opening), *weights]:
        done = latencies.get(name, [])
        if done or errors.get(name):
            print(
                f"{name:<24} {len(done):>6} {percentile(done, 50):>7.3f} {percentile(done, 95):>7.3f} {len(errors.get(name, [])):>7}"
            )
    total_errors = sum(len(v) for v in errors.values()) + stuck
    for name, messages in errors.items():
        for message in sorted(set(messages))[:3]:
            print(f"  {name}: {message}")
    growth = after - before
    calls = sum(len(v) for v in latencies.values()) + sum(len(v) for v in errors.values())
    print(
        f"CPU used during the run: server {server_cpu:.1f} s, the {args.sessions} client sessions {clients_cpu:.1f} s "
        f"(same machine, {os.cpu_count()} cores, {args.seconds:.0f} s): {1000 * server_cpu / max(calls, 1):.0f} ms of server CPU per call"
    )
    print()
    print(
        f"server RSS: {before:.0f} MiB after warm-up, {peak[0]:.0f} MiB peak, {after:.0f} MiB at the end: growth {growth:+.0f} MiB"
    )
    checks = [
        (f"errors {total_errors} (sessions still stuck: {stuck})", total_errors <= GOAL_ERRORS, f"= {GOAL_ERRORS}"),
        (
            f"RSS growth {growth * MIB / 1e6:+.0f} MB ({growth:+.0f} MiB)",
            growth * MIB / 1e6 <= GOAL_RSS_GROWTH_MB,
            f"<= {GOAL_RSS_GROWTH_MB:.0f} MB",
        ),
    ]
    for name, goal in GOALS_P95_S[args.profile].items():  # the loop's calls, the openings apart
        p95 = percentile(latencies.get(name, []), 95)
        checks.append((f"{name} p95 {p95:.3f} s", p95 <= goal, f"<= {goal:g} s"))
    for what, ok, goal in checks:
        print(f"  {what:<48} goal {goal:<12} {verdict(ok, not_met='NOT MET')}")
    if is_quick():  # a failed call or a stuck session is a fault, not a figure: it fails even a quick run
        return 0 if total_errors == 0 else 1
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
