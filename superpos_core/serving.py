"""How the app serves many learners at once, in one place: priorities, pools, memory, caches, queues.

The science and the tabs stay free of threads and locks; whatever runs requests on a server reads it here:

- **priorities and lines**: quick work (one text's forward, one toy model) and long work (training,
  sweeps, SAEs) each run on a line of their own, on threads of lower scheduling priority, so a drawing is
  answered while others train and a text never waits behind a training run (``in_background``, ``LINES``);
- **pools**: each line's (``line_pool``) and the SAE encoder's two-thread pool (``encode_pool``), each made
  on first use;
- **memory**: glibc's arena limit and the trim after each long job (``limit_allocator_arenas``,
  ``release_free_memory``);
- **caches**: ``Kept``, the load-once cache of every model a process loads and shares (a loaded
  model is read without waiting, a load under way makes its other callers wait for it, a failed load
  keeps nothing), and ``Recent`` for values worth keeping a while (a text's analysis);
- **queues**: one table, ``QUEUES``, of every event's concurrency id and limit; an event reads its
  line with ``queue("lm")``;
- **batching**: ``Batcher``, which answers requests that arrive together in one call;
- **stop buttons**: ``StopRequests``, which a streamed job reads between its steps.

Nothing here imports gradio: a notebook can use the caches and the pools as the server does.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import inspect
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")

# --- priorities and memory ---------------------------------------------------------------------------


@functools.cache  # looked up once: release_free_memory runs after every long job
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


# --- pools: two lines of work ----------------------------------------------------------------------

# Quick work (one text's forward and figures, one toy model, a dashboard, a steering step) and long work (training,
# sweeps, SAEs, concepts) each have a line of their own, so a quick event never waits behind a long one. Each line
# runs one job at a time: more at once only hold the interpreter lock longer against the drawings, which run on
# gradio's own threads at the usual priority and go first.
LINES = {
    "quick": (1, 5),  # (workers, how much lower than the server's other threads: Linux scheduling priority)
    "long": (1, 10),
}
BACKGROUND_PREFIX = "superpos-background"  # every line's threads are named "superpos-background-<line>_<n>"
BACKGROUND_WORKERS = LINES["long"][0]
BACKGROUND_NICE = LINES["long"][1]
ENCODE_WORKERS = 2  # threads one large SAE encode is split over (``sae.PretrainedSAE.encode``)


def _lower_priority(nice: int) -> None:
    try:  # on Linux a thread is a task of its own: this lowers this thread only, and needs no privilege
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (OSError, AttributeError):  # another system: the work simply runs at the usual priority
        pass


def lower_this_threads_priority() -> None:
    """Let every other thread of the process go first (long work in the background: quick events are answered at once)."""
    _lower_priority(BACKGROUND_NICE)


@functools.cache  # made on first use, once per process and line: importing the module starts no thread
def line_pool(line: str = "long") -> ThreadPoolExecutor:
    """The pool of one line of work (``LINES``), its threads at that line's lower priority."""
    workers, nice = LINES[line]
    return ThreadPoolExecutor(
        workers, thread_name_prefix=f"{BACKGROUND_PREFIX}-{line}", initializer=functools.partial(_lower_priority, nice)
    )


def _forget_pools_in_a_forked_child() -> None:
    """A forked process (ZeroGPU runs each GPU call in one) has none of its parent's threads, though it has their
    pools: a job sent to one would wait forever. The child makes its own pools on first use instead."""
    line_pool.cache_clear()
    encode_pool.cache_clear()


def background_pool() -> ThreadPoolExecutor:
    """The pool every long job runs on (see ``in_background``)."""
    return line_pool("long")


@functools.cache
def encode_pool() -> ThreadPoolExecutor:
    """Two threads for halves of one large SAE encode: torch's matrix product releases the interpreter lock."""
    return ThreadPoolExecutor(max_workers=ENCODE_WORKERS, thread_name_prefix="sae-encode")


os.register_at_fork(after_in_child=_forget_pools_in_a_forked_child)


def on_background_thread(line: str | None = None) -> bool:
    """Whether this thread is one of a line's (of any line's, with None)."""
    name = threading.current_thread().name
    return name.startswith(f"{BACKGROUND_PREFIX}-{line}_" if line else BACKGROUND_PREFIX)


def in_background(fn=None, *, line: str = "long"):
    """Run an event's work on its line's lower-priority thread: ``@in_background`` for long work (training, a
    sweep, an SAE), ``@in_background(line="quick")`` for quick work (one text's forward, one toy model).

    When a class shares one server, a digit drawn while others train toy models should still be
    answered at once: the scheduler gives the quick events' threads the cores first. The event keeps
    its context variables (gradio's progress bar lives there); a generator's steps each run there
    too, so it still streams, and other jobs of its line run between its steps. When the job ends,
    the memory it freed is given back to the system (``release_free_memory``).
    """
    if fn is None:
        return functools.partial(in_background, line=line)
    if line not in LINES:
        raise ValueError(f"no line of work {line!r}: one of {', '.join(LINES)}")
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args, **kwargs):
            context = contextvars.copy_context()
            steps = context.run(fn, *args, **kwargs)
            try:
                while True:
                    try:
                        item = line_pool(line).submit(context.run, next, steps).result()
                    except StopIteration:
                        return
                    yield item
            finally:
                release_free_memory()

        return stream

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if on_background_thread(line):  # a job calling another of its own line: waiting on the pool would deadlock
            return fn(*args, **kwargs)
        try:
            return line_pool(line).submit(contextvars.copy_context().run, fn, *args, **kwargs).result()
        finally:
            release_free_memory()  # the job's temporaries, freed, go back to the system

    return run


def interpreter_exiting(error: BaseException) -> bool:
    """Whether background work failed only because the process is exiting (a load started as the server started).

    Python refuses new work to thread pools once it begins to exit, and libraries that read files on pools
    (transformers) then raise this; it says nothing about the files or the model.
    """
    return isinstance(error, RuntimeError) and "interpreter shutdown" in str(error)


# --- caches ------------------------------------------------------------------------------------------


class Recent(Generic[V]):
    """Keeps the ``size`` most recently used values by key; the least recently used goes first.

    ``get_or_make`` builds a missing value outside the lock, so a slow build (reading a model from
    disk) never holds up requests for other keys; threads that miss the same key at the same moment
    wait for one build and share it.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a cache needs room for at least one value; got size={size}")
        self.size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._making: dict[Hashable, _Making] = {}  # key -> the make under way
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        """The value for ``key`` (now the most recently used), or None."""
        with self._lock:
            if key not in self._values:
                return None
            self._values.move_to_end(key)
            return self._values[key]

    def put(self, key: Hashable, value: V) -> V:
        """Store ``value`` unless ``key`` already has one; returns the value kept."""
        with self._lock:
            kept = self._values.setdefault(key, value)
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)
            return kept

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value for ``key``; else made here, or, when another thread is making it now, that one's when it is
        done (thirty students clicking the same example: made once). A make that fails keeps nothing, and each
        caller that waited on it then makes it itself, meeting its own error. A thread of a line of work
        (``in_background``) makes it itself rather than wait: the make under way may be queued behind it on that
        line (a language-model reading batched there), and waiting would hold the line for good."""
        while True:
            found = self.get(key)
            if found is not None:
                return found
            with self._lock:
                making = self._making.get(key)
                mine = making is None
                if mine:
                    making = self._making[key] = _Making()
            if not mine:
                if on_background_thread():  # a line's thread never waits on another's make: it may need this line
                    return self.put(key, make())
                making.done.wait()
                if making.error is None:
                    continue  # it is kept now (or, were the cache tiny and busy, already pushed out: made again)
                return self.put(key, make())
            return making.run(self._lock, self._making, key, lambda: self.put(key, make()))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._values

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)


class _Making:
    """One value being made: who waits on it, and how it ended."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self, lock: threading.Lock, under_way: dict, key: Hashable, make_and_keep: Callable[[], V]) -> V:
        """Make the value (``make_and_keep`` also keeps it), then let whoever waits on it go: with its error, if any.
        ``under_way`` (key -> _Making, guarded by ``lock``) forgets it either way."""
        try:
            return make_and_keep()
        except BaseException as error:
            self.error = error
            raise
        finally:
            with lock:
                under_way.pop(key, None)
            self.done.set()


class Kept(Generic[V]):
    """Each key's value made once and kept for good; whoever asks while it is being made waits for it.

    For what a server computes once and shows everyone (a tab's opening view). Keyed by what the value
    depends on (a device, a model), never by an object that may be gone. A make that fails keeps
    nothing: the callers waiting on it get its error, and the next call makes it again. ``start``
    begins a make on a thread of its own, so that nothing has to wait for it to be under way.
    """

    def __init__(self) -> None:
        self._values: dict[Hashable, V] = {}
        self._making: dict[Hashable, _Making] = {}
        self._stages: dict[Hashable, tuple[float, str]] = {}  # key -> how far its make has got, for those who wait
        self._lock = threading.Lock()

    def reporter(self, key: Hashable) -> Callable[..., None]:
        """A progress callback (shaped like a ``gr.Progress``) for the make of ``key``: ``stage`` reads what it last said."""

        def report(fraction: float | None = None, desc: str | None = None, **_ignored) -> None:
            self._stages[key] = (float(fraction or 0.0), desc or "Starting")

        return report

    def stage(self, key: Hashable) -> tuple[float, str]:
        """(fraction, description) that the make of ``key`` last reported; (0, "Starting") before it reports."""
        return self._stages.get(key, (0.0, "Starting"))

    def stage_shown_by(self, key: Hashable, progress: Callable[..., None] | None) -> Callable[[], None] | None:
        """An ``on_wait`` that moves ``progress`` (shaped like a ``gr.Progress``) to the stage the make of ``key`` reports."""
        if progress is None:
            return None

        def show() -> None:
            fraction, desc = self.stage(key)
            progress(fraction, desc=desc)

        return show

    def get(self, key: Hashable) -> V | None:
        """The kept value, or None (never waits)."""
        with self._lock:
            return self._values.get(key)

    def put(self, key: Hashable, value: V) -> V:
        """Keep ``value`` for ``key`` from now on, in place of any kept before (a notebook's own copy of a model)."""
        with self._lock:
            self._values[key] = value
            return value

    def forget(self, key: Hashable) -> V | None:
        """Keep nothing for ``key`` any more (the next call makes it again); returns what was kept, or None."""
        with self._lock:
            return self._values.pop(key, None)

    def keys(self) -> list[Hashable]:
        """The keys with a kept value, now."""
        with self._lock:
            return list(self._values)

    def get_or_make(
        self,
        key: Hashable,
        make: Callable[[], V],
        on_wait: Callable[[], None] | None = None,
        poll_s: float = 0.25,
        _waited: bool = False,
    ) -> V:
        """The kept value; else make it here, or wait for the make under way (calling ``on_wait`` every ``poll_s``).

        A caller whose wait ends in a failed make tries once itself (the failure may have been the other
        caller's: a background start that ran out of memory); a second failure is its own to raise.
        """
        with self._lock:
            if key in self._values:
                return self._values[key]
            making = self._making.get(key)
            mine = making is None
            if mine:
                making = self._making[key] = _Making()
        if mine:
            return self._make(key, make, making)
        if on_background_thread():  # never wait on a line's thread: the make under way may need this very line
            value = make()
            with self._lock:
                return self._values.setdefault(key, value)
        while not making.done.wait(poll_s):
            if on_wait is not None:
                on_wait()
        if making.error is not None:
            if _waited:
                raise making.error
            return self.get_or_make(key, make, on_wait, poll_s, _waited=True)
        with self._lock:
            return self._values[key]

    def _make(self, key: Hashable, make: Callable[[], V], making: _Making) -> V:
        def keep() -> V:
            value = make()
            with self._lock:
                self._values[key] = value
            return value

        return making.run(self._lock, self._making, key, keep)

    def start(
        self, key: Hashable, make: Callable[[], V], name: str = "kept-value", first: bool = False
    ) -> threading.Thread | None:
        """Make the value on a thread of low priority, unless it is kept or under way already; returns the thread started.

        While an app is being composed (``warm_ups_in_order``) the make is held instead, and None returned: it begins
        once the app is built and the warm-ups marked ``first`` are done. Until it begins, a request for the value
        makes it itself rather than wait behind them.

        Not a daemon thread: one still inside torch when the interpreter exits aborted the whole process
        ("terminate called without an active exception", exit status 134). A process that ends right after
        it starts waits for the make instead (seconds).
        """

        def begin() -> _Making | None:  # registered as under way, or None when there is nothing to make
            with self._lock:
                if key in self._values or key in self._making:
                    return None
                making = self._making[key] = _Making()
                return making

        def make_it(making: _Making | None) -> None:
            if making is None:
                return
            try:
                self._make(key, make, making)
            except Exception:  # kept nowhere: the first request that needs the value makes it again, and sees the error
                logging.getLogger(__name__).warning(
                    "making %r in the background failed; it will be made on first use", key, exc_info=True
                )

        if _held_warm_ups is not None:  # registered only when it begins: till then a request makes it itself
            return start_warm_up(lambda: make_it(begin()), name, first)
        making = begin()  # registered before the thread runs: a second start, or a request, waits on this one
        return None if making is None else start_warm_up(lambda: make_it(making), name)


# --- warm-ups: what a server makes as it starts, before anyone asks -----------------------------------


@dataclass
class _HeldWarmUps:
    """The warm-ups asked for while an app is composed: those begun at once (``first``), and those held till after."""

    begun: list[threading.Thread]
    held: list[tuple[str, Callable[[], None]]]


_held_warm_ups: _HeldWarmUps | None = None  # while an app is composed (``warm_ups_in_order``)
_held_lock = threading.Lock()
_running_warm_ups: set[threading.Thread] = set()  # started and maybe not finished (``wait_for_warm_ups``)


def start_warm_up(job: Callable[[], None], name: str, first: bool = False) -> threading.Thread | None:
    """Run ``job`` on a thread of its own at low priority and return the thread; or, while an app is being composed
    (``warm_ups_in_order``), hold it till the app is built and return None. A ``first`` job begins at once even then,
    and the held ones wait for it. ``job`` handles its own errors.

    Not a daemon thread: see ``Kept.start``.
    """
    with _held_lock:
        holding = _held_warm_ups
        if holding is not None and not first:
            holding.held.append((name, job))
            return None

    def run() -> None:
        lower_this_threads_priority()  # page loads and drawings go first
        job()

    thread = threading.Thread(target=run, name=name)
    with _held_lock:
        _running_warm_ups.add(thread)
    thread.start()
    if holding is not None:
        holding.begun.append(thread)
    return thread


def wait_for_warm_ups(timeout: float | None = None) -> bool:
    """Wait till every warm-up started in this process (and any it started in turn) has finished; False if
    ``timeout`` seconds passed first. For a notebook, benchmark or test that swaps a model or a cache: a warm-up
    still running would read the stand-in, or fill the new cache, in place of the real model."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _held_lock:
            _running_warm_ups.difference_update([thread for thread in _running_warm_ups if not thread.is_alive()])
            running = list(_running_warm_ups)
        if not running:
            return True
        for thread in running:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False


@contextlib.contextmanager
def warm_ups_in_order() -> Iterator[None]:
    """While an app is composed: warm-ups marked ``first`` (``Kept.start``, ``start_warm_up``) begin at once; the others
    are held, and on leaving run one after another on one thread, in the order asked, once the first ones are done.

    A restarted server's tabs each drew their opening view as it started; all at once, on two cores, they held up
    the load a learner waits for longest (the language model's: its first text answered 17 s after the command,
    then 12 s in this order). Nested, or entered on another thread meanwhile: the outermost runs them all."""
    global _held_warm_ups
    with _held_lock:
        outermost = _held_warm_ups is None
        if outermost:
            _held_warm_ups = _HeldWarmUps([], [])
    try:
        yield
    finally:
        if outermost:
            with _held_lock:
                holding, _held_warm_ups = _held_warm_ups, None
            if holding.held:
                start_warm_up(functools.partial(_run_in_turn, holding), "superpos-warm-ups")


def _run_in_turn(holding: _HeldWarmUps) -> None:
    for thread in holding.begun:
        thread.join()
    for name, job in holding.held:
        try:
            job()
        except Exception:  # each job says what went wrong itself; one that does not must not stop the next
            logging.getLogger(__name__).warning("warm-up %s failed", name, exc_info=True)


# --- batching ----------------------------------------------------------------------------------------


class _Request:
    def __init__(self, item) -> None:
        self.item = item
        self.result = None
        self.error: BaseException | None = None
        self.done = threading.Event()  # answered
        self.turn = threading.Event()  # answered, or its turn to lead the next batch


class Batcher:
    """Requests of one kind that arrive together answered in one call: ``run(key, items) -> results`` on a line of
    work, for up to ``max_batch`` items of the same ``key`` at a time (a language model's forward over several
    texts: 1.7 times the texts per second at 4, on 2 cores).

    Nothing waits for a batch to fill: the first caller runs at once with whatever is waiting, and those who come
    while it runs go together in the next call, led by the first of them. When a batch fails, each of its items
    is run alone, so that one bad request is refused without the others.
    """

    def __init__(self, run: Callable[[Hashable, list], list], max_batch: int = 8, line: str = "quick") -> None:
        self.run, self.max_batch, self.line = run, max_batch, line
        self._waiting: dict[Hashable, list[_Request]] = {}
        self._leading: set[Hashable] = set()
        self._lock = threading.Lock()
        self.sizes: list[int] = []  # each batch's size, for tests and benchmarks (the last 1,000)

    def __call__(self, key: Hashable, item):
        if on_background_thread(self.line):  # already on the line: waiting there for a batch would deadlock it
            return self.run(key, [item])[0]
        request = _Request(item)
        with self._lock:
            self._waiting.setdefault(key, []).append(request)
            if key not in self._leading:
                self._leading.add(key)
                request.turn.set()
        request.turn.wait()
        if not request.done.is_set():
            self._lead(key)
        if request.error is not None:
            raise request.error
        return request.result

    def _lead(self, key: Hashable) -> None:
        with self._lock:
            waiting = self._waiting[key]
            batch, waiting[:] = waiting[: self.max_batch], waiting[self.max_batch :]
            self.sizes = [*self.sizes[-999:], len(batch)]
        try:
            self._answer(key, batch)
        finally:
            with self._lock:
                if waiting:
                    waiting[0].turn.set()  # the next batch's first request leads it
                else:
                    self._leading.discard(key)
                    del self._waiting[key]
            for request in batch:
                request.done.set()
                request.turn.set()

    def _answer(self, key: Hashable, batch: list[_Request]) -> None:
        work = in_background(self.run, line=self.line)
        try:
            results = work(key, [request.item for request in batch])
            for request, result in zip(batch, results, strict=True):
                request.result = result
        except Exception as error:
            if len(batch) == 1:
                batch[0].error = error
                return
            for request in batch:  # which one failed? each alone: the others are answered
                try:
                    request.result = work(key, [request.item])[0]
                except Exception as own:
                    request.error = own


# --- stop buttons ------------------------------------------------------------------------------------


class StopRequests:
    """Stop buttons for streamed work, by whoever started it (a browser session's key).

    A job runs inside ``running(key)`` and asks the function it gives between two of its steps whether to stop; when
    asked, it ends there on its own, with a last message saying so. Cancelling the event instead would leave
    whatever it had sent last (a "writing…" line), and a message already on its way could still arrive after the
    page had said "stopped". A stop for a key with nothing running is ignored, so nothing is kept for it.
    """

    def __init__(self) -> None:
        self._running: dict[Hashable, int] = {}  # key -> its jobs under way
        self._stopping: set[Hashable] = set()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def running(self, key: Hashable) -> Iterator[Callable[[], bool]]:
        """While inside, ``key`` has a job under way; yields ``stopped()``, true once a stop was asked for."""
        with self._lock:
            self._running[key] = self._running.get(key, 0) + 1
            self._stopping.discard(key)  # a stop asked for before this job began is not for it
        try:
            yield lambda: key in self._stopping
        finally:
            with self._lock:
                self._running[key] -= 1
                if not self._running[key]:
                    del self._running[key]
                    self._stopping.discard(key)

    def stop(self, key: Hashable) -> bool:
        """Ask ``key``'s jobs to stop; False when it has none under way."""
        with self._lock:
            if key not in self._running:
                return False
            self._stopping.add(key)
            return True


# --- queues ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queue:
    """One line of gradio's queue: the events that share it run at most ``limit`` at a time."""

    limit: int
    why: str


DEFAULT_LIMIT = 2  # events with no line of their own: about one per core
QUEUE_MAX_SIZE = 64  # requests waiting at once, beyond which gradio says the queue is full
DRAWINGS_AT_ONCE = 4  # drawings analysed at the same moment; the MNIST tab builds one set of live figures for each
QUEUES = {
    "page-load": Queue(16, "the address's tab check: instant, never behind work"),
    "network-view": Queue(4, "a layer's network diagram: a fraction of a second"),
    "mnist-simplenet": Queue(DRAWINGS_AT_ONCE, "one drawing through SimpleNet: quick, and what learners do most"),
    "mnist-train": Queue(2, "training SimpleNet live: seconds per epoch"),
    "mnist-send": Queue(16, "a drawing handed to the ResNet tab: copies a picture"),
    "toy": Queue(2, "one toy model trained: about a second"),
    "toy-sweep": Queue(1, "the sparsity sweep: twenty models at once"),
    "toy-opening": Queue(16, "the toy tab's opening view: made once, then served from memory"),
    "toy-sae": Queue(2, "a toy model, then an SAE on its hidden layer: a few seconds"),
    "toy-sae-sweep": Queue(1, "ten SAEs trained one after another: the longest toy job"),
    "resnet": Queue(2, "a picture through a ResNet, or its rank table"),
    "resnet-switch": Queue(4, "a change of model or layer: loads, or reads a kept model"),
    "resnet-examples": Queue(8, "a gallery example chosen: reads a file"),
    "resnet-open": Queue(16, "the ResNet tab's opening view: made once, then served from memory"),
    "lm": Queue(4, "a language model's forward and figures over one text: forwards that arrive together are batched"),
    "lm-open": Queue(16, "the language-model tab's opening view: made once, then served from memory"),
    "lm-sae": Queue(1, "the course's SAE trained on one text"),
    "lesson": Queue(
        2, "one lesson step's experiment, as its tab runs it: a toy model, a picture, a text, or a toy SAE"
    ),
    "lm-steer": Queue(2, "a prompt continued twice, with and without a feature: seconds, a token at a time"),
}


def queue(name: str) -> dict:
    """The ``concurrency_id`` and ``concurrency_limit`` of an event, from its line in ``QUEUES``.

    Events with the same name share one limit across the whole app (all of the language-model tab's
    analyses share "lm", whichever button started them).
    """
    return {"concurrency_id": name, "concurrency_limit": QUEUES[name].limit}
