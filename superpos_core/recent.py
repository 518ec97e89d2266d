"""A small cache of the most recently used values, shared safely by a server's threads."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from superpos_core.devices import lower_this_threads_priority

V = TypeVar("V")


class Recent(Generic[V]):
    """Keeps the ``size`` most recently used values by key; the least recently used goes first.

    ``get_or_make`` builds a missing value outside the lock, so a slow build (reading a model from
    disk) never holds up requests for other keys; two threads that miss the same key at the same
    moment may both build it, and the first one stored is kept.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a cache needs room for at least one value; got size={size}")
        self.size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
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
        found = self.get(key)
        return found if found is not None else self.put(key, make())

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
        try:
            value = make()
            with self._lock:
                self._values[key] = value
            return value
        except BaseException as error:
            making.error = error
            raise
        finally:
            with self._lock:
                self._making.pop(key, None)
            making.done.set()

    def start(self, key: Hashable, make: Callable[[], V], name: str = "kept-value") -> threading.Thread | None:
        """Make the value on a daemon thread of low priority, unless it is kept or under way already; returns the thread started."""
        with self._lock:
            if key in self._values or key in self._making:
                return None
            making = self._making[key] = (
                _Making()
            )  # registered before the thread runs: a second start, or a request, waits on this one

        def run() -> None:
            lower_this_threads_priority()  # page loads and drawings go first
            try:
                self._make(key, make, making)
            except Exception:  # kept nowhere: the first request that needs the value makes it again, and sees the error
                import logging

                logging.getLogger(__name__).warning(
                    "making %r in the background failed; it will be made on first use", key, exc_info=True
                )

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread
