"""superpos_core/serving.py: priorities, pools, memory, the caches behind kept models and texts, the queue table."""

import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from superpos_core import serving
from superpos_core.serving import Recent


def test_keeps_the_most_recently_used_values():
    cache = Recent(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent, so "b" goes first
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3 and len(cache) == 2
    assert cache.get("b") is None


def test_the_first_value_stored_for_a_key_is_kept():
    cache = Recent(2)
    assert cache.put("a", 1) == 1
    assert cache.put("a", 2) == 1 and cache.get("a") == 1


def test_get_or_make_builds_only_what_is_missing():
    cache, made = Recent(4), []

    def make(value):
        made.append(value)
        return value

    assert cache.get_or_make("a", lambda: make(1)) == 1
    assert cache.get_or_make("a", lambda: make(2)) == 1
    assert made == [1]


def test_threads_that_miss_together_all_get_the_kept_value():
    cache, start = Recent(1), threading.Barrier(8)
    results = []

    def ask(value):
        start.wait()
        results.append(cache.get_or_make("key", lambda: [value]))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and all(r is results[0] for r in results) and cache.get("key") is results[0]


def test_a_cache_needs_room():
    with pytest.raises(ValueError, match="at least one"):
        Recent(0)


def test_kept_values_are_made_once_for_everyone_who_asks_at_once():
    from superpos_core.serving import Kept

    kept, made, start = Kept(), [], threading.Barrier(6)

    def make():
        made.append(1)
        threading.Event().wait(0.2)  # long enough that the others arrive while it is being made
        return ["opening view"]

    results, waits = [], []

    def ask():
        start.wait()
        results.append(kept.get_or_make("cpu", make, on_wait=lambda: waits.append(1), poll_s=0.02))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == [1] and all(r is results[0] for r in results) and kept.get("cpu") is results[0]
    assert waits  # the callers that waited were told, again and again (a progress bar that moves)
    assert kept.get_or_make("cuda", lambda: ["other device"]) == ["other device"]  # keyed: another device gets its own


def test_a_failed_make_keeps_nothing_and_is_tried_again():
    from superpos_core.serving import Kept

    kept, calls = Kept(), []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk full")
        return "whole"

    with pytest.raises(OSError, match="disk full"):
        kept.get_or_make("k", flaky)
    assert kept.get("k") is None
    assert kept.get_or_make("k", flaky) == "whole" and len(calls) == 2


def test_start_makes_the_value_in_the_background_once():
    from superpos_core.serving import Kept

    kept, release, made = Kept(), threading.Event(), []

    def make():
        made.append(1)
        release.wait(5)
        return "view"

    thread = kept.start("cpu", make)
    assert thread is not None and kept.start("cpu", make) is None  # under way: not started twice
    release.set()
    assert kept.get_or_make("cpu", make) == "view"  # waits for the make under way, or finds it done
    thread.join(5)
    assert made == [1] and kept.start("cpu", make) is None  # kept: never made again


def test_warm_ups_asked_for_while_an_app_is_composed_run_after_the_first_one_in_turn():
    from superpos_core.serving import Kept

    kept, order, release = Kept(), [], threading.Event()

    def model():  # the language model's load: begins at once, the others wait for it
        order.append("model begins")
        release.wait(5)
        order.append("model done")

    with serving.warm_ups_in_order():
        assert kept.start("toy", lambda: order.append("toy") or "toy view") is None  # held
        first = serving.start_warm_up(model, "model", first=True)
        assert kept.start("mnist", lambda: order.append("mnist") or "mnist view") is None
        with serving.warm_ups_in_order():  # nested (an app composed inside another's build): the outer runs them
            assert serving.start_warm_up(lambda: order.append("nested"), "nested") is None
        assert first is not None
        deadline = time.monotonic() + 5
        while not order and time.monotonic() < deadline:
            time.sleep(0.01)
        assert order == ["model begins"]  # the held ones wait for the app to be built
    time.sleep(0.2)
    assert order == ["model begins"] and kept.get("toy") is None  # ...and for the first one to finish
    release.set()
    first.join(5)
    deadline = time.monotonic() + 5
    while len(order) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert order == ["model begins", "model done", "toy", "mnist", "nested"]
    assert kept.get("toy") == "toy view" and kept.get("mnist") == "mnist view"
    assert serving.start_warm_up(lambda: None, "after").join(5) is None  # outside: a thread of its own, at once


def test_a_request_for_a_held_warm_up_makes_it_itself_and_the_warm_up_then_finds_it_kept():
    from superpos_core.serving import Kept

    kept, made, release = Kept(), [], threading.Event()
    first = None
    with serving.warm_ups_in_order():
        first = serving.start_warm_up(lambda: release.wait(5), "a long first load", first=True)
        kept.start("toy", lambda: made.append("warm-up") or "view")
    # The page opens before the held warm-up begins: the request makes the view now, not after the long load.
    assert kept.get_or_make("toy", lambda: made.append("request") or "view") == "view"
    release.set()
    first.join(5)
    time.sleep(0.2)
    assert made == ["request"]  # the warm-up found it kept and made nothing


def test_wait_for_warm_ups_waits_for_the_first_one_and_those_held_behind_it():
    release, done = threading.Event(), []
    with serving.warm_ups_in_order():
        serving.start_warm_up(lambda: release.wait(5) and done.append("model"), "model", first=True)
        serving.start_warm_up(lambda: time.sleep(0.2) or done.append("held"), "held")
    assert serving.wait_for_warm_ups(timeout=0.1) is False and done == []  # the model is still loading
    release.set()
    assert serving.wait_for_warm_ups(timeout=5) is True and done == ["model", "held"]
    assert serving.wait_for_warm_ups(timeout=0) is True  # nothing left running


def test_a_caller_waiting_on_a_failed_background_make_makes_it_itself():
    from superpos_core.serving import Kept

    kept, release = Kept(), threading.Event()

    def failing():
        release.wait(5)
        raise MemoryError("the background make ran out of room")

    thread = kept.start("cpu", failing)
    threading.Timer(0.1, release.set).start()
    assert kept.get_or_make("cpu", lambda: "made by the request") == "made by the request"
    thread.join(5)
    assert kept.get("cpu") == "made by the request"


def test_those_who_wait_see_how_far_the_background_make_has_got_and_it_runs_at_low_priority():
    import os

    from superpos_core.serving import BACKGROUND_NICE, Kept

    kept, gate, seen, niceness = Kept(), threading.Event(), [], []

    def make():
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        kept.reporter("cpu")(0.5, desc="half way")
        gate.wait(10)
        return "view"

    assert kept.stage("cpu") == (0.0, "Starting")
    kept.start("cpu", make)

    def on_wait():
        seen.append(kept.stage("cpu"))
        if seen[-1][0] == 0.5:
            gate.set()  # a waiter saw the stage: let the make finish

    assert kept.get_or_make("cpu", lambda: "made twice", on_wait=on_wait, poll_s=0.01) == "view"
    assert (0.5, "half way") in seen
    bar = []
    kept.stage_shown_by(
        "cpu", lambda fraction, desc: bar.append((fraction, desc))
    )()  # what a waiting gr.Progress is told
    assert bar == [(0.5, "half way")] and kept.stage_shown_by("cpu", None) is None
    ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    if ours < BACKGROUND_NICE:  # (a test run under `nice -n 10` or more already runs at the background's priority)
        assert niceness[0] == BACKGROUND_NICE  # quick events go first


def test_a_background_thread_lowers_its_own_priority_only():
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())  # Linux, where the app is served
    seen = {}

    def background():
        serving.lower_this_threads_priority()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    worker = threading.Thread(target=background)
    worker.start()
    worker.join()
    # A new thread starts at its creator's nice; the call lowered it (under `nice -n 10` or more it was already there).
    assert (
        seen["nice"] == max(before, serving.BACKGROUND_NICE)
        if before < serving.BACKGROUND_NICE
        else seen["nice"] >= serving.BACKGROUND_NICE
    )
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # this thread is untouched


def test_the_allocator_helpers_say_whether_glibc_did_the_work():
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert (serving._glibc() is not None) is glibc
    assert serving.limit_allocator_arenas() is glibc and serving.release_free_memory() is glibc


def test_long_work_runs_on_lower_priority_threads_and_nests_without_waiting_on_itself():
    import threading

    from superpos_core.serving import BACKGROUND_WORKERS, in_background

    def where():
        return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    @in_background
    def inner(x):
        return x + 1, where()

    @in_background
    def outer(x):
        return inner(x)  # a background event calling another: no second hop, no deadlock

    value, (thread, niceness) = inner(1)
    assert value == 2 and thread.startswith("superpos-background") and niceness >= 10
    results = []
    callers = [threading.Thread(target=lambda: results.append(outer(5))) for _ in range(3 * BACKGROUND_WORKERS)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=30)
    assert [value for value, _ in results] == [6] * (3 * BACKGROUND_WORKERS)

    @in_background
    def steps(n):
        for i in range(n):
            yield i, where()[0]

    streamed = list(steps(3))  # a generator still streams, each step on a background thread
    assert [i for i, _ in streamed] == [0, 1, 2] and all(name.startswith("superpos-background") for _, name in streamed)


def test_quick_work_never_waits_behind_long_work():
    """A text's forward (quick) is answered while a training run (long) holds the long line."""
    import threading

    from superpos_core.serving import in_background

    started, release = threading.Event(), threading.Event()

    @in_background
    def training():
        started.set()
        release.wait(10)
        return "trained"

    @in_background(line="quick")
    def forward():
        return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    long_result = []
    runner = threading.Thread(target=lambda: long_result.append(training()))
    runner.start()
    assert started.wait(10)
    name, niceness = forward()  # answered while the long line is busy
    assert name.startswith("superpos-background-quick") and 5 <= niceness < 10
    assert not long_result  # the training is still running
    release.set()
    runner.join(10)
    assert long_result == ["trained"]
    with pytest.raises(ValueError, match="no line of work"):
        in_background(lambda: 1, line="slow")


def test_identical_requests_at_the_same_moment_are_made_once():
    import threading

    cache, made, start = Recent(4), [], threading.Barrier(6)

    def make():
        made.append(1)
        time.sleep(0.2)  # long enough for every other thread to arrive while it is made
        return {"answer": 42}

    results = []

    def ask():
        start.wait()
        results.append(cache.get_or_make("same example", make))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == [1] and len(results) == 6 and all(r is results[0] for r in results)
    # a make that fails keeps nothing: the next caller makes it again
    with pytest.raises(ZeroDivisionError):
        cache.get_or_make("broken", lambda: 1 / 0)
    assert cache.get_or_make("broken", lambda: "fixed") == "fixed"


def test_each_long_job_gives_its_freed_memory_back(monkeypatch):
    trimmed = []
    monkeypatch.setattr(serving, "release_free_memory", lambda: trimmed.append(True))

    @serving.in_background
    def job():
        return 1

    @serving.in_background
    def steps():
        yield from range(3)

    assert job() == 1 and len(trimmed) == 1
    assert list(steps()) == [0, 1, 2] and len(trimmed) == 2  # once the stream is done
    with pytest.raises(ZeroDivisionError):
        serving.in_background(lambda: 1 / 0)()
    assert len(trimmed) == 3  # a job that fails frees its memory too


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def test_freed_memory_goes_back_to_the_system():
    """Memory freed between blocks still in use stays in glibc's heap, and counts in RSS, until trimmed."""
    blocks = [np.ones(8192) for _ in range(3072)]  # 3,072 blocks of 64 KiB (192 MiB), each from the heap
    kept = blocks[::8]  # every 8th stays in use, so the heap cannot simply shrink from its end
    del blocks
    before = rss_mib()
    assert serving.release_free_memory()
    assert before - rss_mib() > 100  # most of the 168 MiB freed left the process
    assert len(kept) == 384


@pytest.mark.slow
def test_a_process_that_exits_while_a_kept_value_is_made_exits_cleanly(tmp_path):
    """A make started in the background (a tab's opening view, as the server starts) may still be inside torch when
    the process ends: the exit waits for it rather than tearing torch down under it, which aborted the process."""
    import subprocess

    script = tmp_path / "exit_early.py"
    script.write_text(
        "import torch\n"
        "from superpos_core.serving import Kept\n"
        "Kept().start('opening', lambda: [torch.randn(400, 400) @ torch.randn(400, 400) for _ in range(300)])\n"
    )
    ended = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},  # the repository
    )
    assert ended.returncode == 0, ended.stderr[-2000:]  # 134 and "terminate called ..." when it was a daemon thread


def test_a_stop_reaches_only_the_job_under_way_for_its_key():
    stops = serving.StopRequests()
    assert not stops.stop("alice")  # nothing running: nothing kept
    with stops.running("alice") as alice_stopped, stops.running("bob") as bob_stopped:
        assert not alice_stopped()
        assert stops.stop("alice")
        assert alice_stopped() and not bob_stopped()
    with stops.running("alice") as stopped:
        assert not stopped()  # the last job's stop is not the next one's
    assert stops._running == {} and stops._stopping == set()


def test_requests_that_arrive_together_are_answered_in_one_batch_and_a_bad_one_alone():
    import threading

    from superpos_core.serving import Batcher

    gate, calls = threading.Event(), []

    def run(key, items):
        calls.append(list(items))
        if items == ["first"]:
            gate.wait(10)  # while the first runs, the others arrive and wait together
        if "bad" in items:
            raise ValueError("bad item")
        return [f"{key}:{item}" for item in items]

    batcher = Batcher(run, max_batch=8, line="quick")
    results = {}

    def ask(item):
        try:
            results[item] = batcher("model", item)
        except ValueError as error:
            results[item] = str(error)

    first = threading.Thread(target=ask, args=("first",))
    first.start()
    while not calls:
        time.sleep(0.01)
    others = [threading.Thread(target=ask, args=(item,)) for item in ("a", "b", "bad", "c")]
    for thread in others:
        thread.start()
    time.sleep(0.3)
    gate.set()
    for thread in [first, *others]:
        thread.join(10)
    assert results == {"first": "model:first", "a": "model:a", "b": "model:b", "bad": "bad item", "c": "model:c"}
    assert sorted(calls[1]) == ["a", "b", "bad", "c"]  # one batch for the four that came together
    assert sorted(map(tuple, calls[2:])) == [("a",), ("b",), ("bad",), ("c",)]  # it failed: each alone
    assert batcher.sizes[:2] == [1, 4] and not batcher._waiting and not batcher._leading


def test_a_forked_process_runs_its_jobs_on_pools_of_its_own():
    """ZeroGPU runs a GPU call in a forked worker, which has the parent's pools but none of their threads."""

    @serving.in_background(line="quick")
    def where():
        return threading.current_thread().name

    assert where().startswith(f"{serving.BACKGROUND_PREFIX}-quick")  # the parent's pool now has a thread
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: answer through the pipe, then leave at once, whatever happens
        try:
            os.write(writer, where().encode())
        finally:
            os._exit(0)
    os.close(writer)
    deadline = time.monotonic() + 20
    while os.waitpid(child, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(child, 9)
            os.waitpid(child, 0)
            pytest.fail("the forked process's job never ran: it waited on its parent's threads")
        time.sleep(0.05)
    answer = os.read(reader, 200).decode()
    os.close(reader)
    assert answer.startswith(f"{serving.BACKGROUND_PREFIX}-quick")


@pytest.mark.parametrize("cache", [serving.Recent(4), serving.Kept()], ids=["Recent", "Kept"])
def test_a_line_never_waits_on_a_make_that_needs_that_line(cache):
    # The page's opening reads a text, and that reading is batched on the quick line; meanwhile a job already on the
    # quick line asks for the same reading. Waiting there would hold the one thread the reading needs, for good.
    making = threading.Event()

    def opening_make():
        making.set()
        time.sleep(0.2)  # the line's job asks for the same key meanwhile
        return serving.in_background(lambda: "from the opening", line="quick")()

    def line_job():
        making.wait(5)
        return cache.get_or_make("reading", lambda: "made on the line")

    answers = {}
    opening = threading.Thread(target=lambda: answers.setdefault("opening", cache.get_or_make("reading", opening_make)))
    job = threading.Thread(target=lambda: answers.setdefault("job", serving.in_background(line_job, line="quick")()))
    opening.start()
    job.start()
    opening.join(10)
    job.join(10)
    assert not opening.is_alive() and not job.is_alive(), "deadlocked: the line waited on a make that needed it"
    assert answers["job"] == "made on the line"
    assert answers["opening"] in ("made on the line", "from the opening")
