"""A second process that reads a restarted server's first texts while the server's own copy of the model loads.

    python app.py     # app.py calls start_for_server(argv) before it imports gradio

Why: as a server starts, its main thread imports gradio (~3 s) and its load thread imports transformers and reads
the language model (~5 s). Both are Python under one interpreter lock, so even on two cores they run one after
the other, and the first text was answered about 10 s after the command. Forked before gradio is imported, this
process does the language-model half on the other core and answers the first texts (about 7 s after the command)
until the server's own copy is ready; then it is told to end. It reads with ``analyse_texts``, from the same files,
with the same number of threads, so its numbers are the server's (a test compares them).

Only on the CPU, where ``fork`` exists, for a model that loads from files already here and writes none
(``loading.loads_from_disk``): SmolLM2's first start writes its dequantised copy, which two processes must not do at
once. Anywhere else nothing starts and the server reads every text itself, as it always could.

    reader = early_reader.start("smollm2-135m-offline")   # before any thread starts
    reader.ready()                                         # loaded, and still there
    reader.analyse_texts(["It was the best of times."], layer=0)
    early_reader.retire("smollm2-135m-offline")            # the server's own copy is ready
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import threading
import time

import torch

from superpos_core.devices import resolve_device
from superpos_core.lm import analysis, loading
from superpos_core.lm.tokens import MAX_TOKENS

log = logging.getLogger(__name__)

LIFETIME_S = 120.0  # it ends by itself after this long: the server's own copy is ready long before (about 10 s)


class ReaderGone(RuntimeError):
    """The reader failed to load, ended, or was retired before answering: read the text in the server instead."""


class EarlyReader:
    """The process reading ``name`` and the pipe to it; one request at a time (the server's batcher sends several
    texts in one)."""

    def __init__(self, name: str, threads: int, allow_any: bool = False) -> None:
        self.name = name
        context = multiprocessing.get_context("fork")
        self._pipe, theirs = context.Pipe()
        # A daemon: it ends with the server (and, the pipe closed, after a server killed outright: see _serve).
        self._process = context.Process(
            target=_serve, args=(name, threads, allow_any, theirs), daemon=True, name=f"superpos-early-{name[-40:]}"
        )
        self._process.start()
        theirs.close()
        self._lock = threading.Lock()
        self._state = "loading"  # then "ready", or "gone"

    def ready(self) -> bool:
        """Loaded and still there: texts sent now are answered."""
        with self._lock:
            if self._state == "loading" and self._pipe.poll():
                try:
                    said, detail = self._pipe.recv()
                except (EOFError, OSError):
                    said, detail = "failed", "it ended"
                self._state = "ready" if said == "ready" else "gone"
                if said != "ready":
                    log.info("The early reader of %s is not used: %s", self.name, detail)
            return self._state == "ready"

    def analyse_texts(self, texts: list[str], layer: int, max_tokens: int = MAX_TOKENS) -> list[analysis.TextAnalysis]:
        """``analysis.analyse_texts`` in the reader (its errors raised here); ``ReaderGone`` when it cannot answer."""
        if not self.ready():
            raise ReaderGone(f"the early reader of {self.name} is not ready")
        with self._lock:
            if self._state != "ready":
                raise ReaderGone(f"the early reader of {self.name} was retired")
            try:
                self._pipe.send((list(texts), layer, max_tokens))
                said, answer = self._pipe.recv()
            except (EOFError, OSError) as error:
                self._state = "gone"
                raise ReaderGone(f"the early reader of {self.name} ended ({error or 'its pipe closed'})") from None
        if said == "error":
            raise answer
        return answer

    def close(self, timeout: float = 5.0) -> None:
        """Tell the reader to end, and wait up to ``timeout`` seconds for it."""
        with self._lock:
            self._state = "gone"
            try:
                self._pipe.send(None)
            except OSError:  # ended already
                pass
            self._pipe.close()
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()

    @property
    def alive(self) -> bool:
        return self._process.is_alive()


def _serve(name: str, threads: int, allow_any: bool, pipe) -> None:
    """The reader's whole life: load, say so, then answer requests until told to end, the pipe closes or
    ``LIFETIME_S`` passes."""
    torch.set_num_threads(threads)
    try:
        loaded = loading.load(name, allow_any=allow_any)
        said = ("ready", None)
    except Exception as error:  # the server's own load meets the same problem and tells the learner
        said = ("failed", f"{type(error).__name__}: {error}")
    try:
        pipe.send(said)
    except OSError:  # the server ended while this loaded
        return
    if said[0] != "ready":
        return
    ends = time.monotonic() + LIFETIME_S
    while pipe.poll(max(0.0, ends - time.monotonic())):
        try:
            request = pipe.recv()
        except EOFError:  # the server has gone
            return
        if request is None:
            return
        texts, layer, max_tokens = request
        try:
            answer = ("analyses", analysis.analyse_texts(loaded, texts, layer, max_tokens))
        except Exception as error:  # an empty text, a layer out of range: the server raises it as its own read would
            answer = ("error", error)
        try:
            pipe.send(answer)
        except OSError:  # the server has gone
            return
        except Exception:  # an error that cannot be pickled: its words are enough
            pipe.send(("error", RuntimeError(str(answer[1]))))


_readers: dict[str, EarlyReader] = {}  # model name -> its reader, on the CPU


def start(key_or_path: str, threads: int = 1, allow_any: bool = False) -> EarlyReader:
    """Fork a reader of the model (a catalogue key, or a folder with ``allow_any``); call it before any thread starts.
    ``threads``: the server's PyTorch threads per request (``app.py --threads``), so that both round alike."""
    name, _entry = loading._resolve(key_or_path, allow_any)
    if name not in _readers:
        _readers[name] = EarlyReader(name, threads, allow_any)
    return _readers[name]


def start_for_server(argv: list[str]) -> EarlyReader | None:
    """From the server's command line: a reader of the default model when the language-model tab is served on the
    CPU and the model loads from files already here; else None. Flags it does not read are left to the app."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--device", default="auto")
    flags.add_argument("--tab")
    flags.add_argument("--threads", type=int, default=1)
    flags.add_argument("-h", "--help", action="store_true")  # the app prints its help and ends: nothing to read
    known, _rest = flags.parse_known_args(argv)
    if known.help:
        return None
    try:
        on_cpu = resolve_device(known.device).type == "cpu"
    except ValueError:  # --device cuda without a GPU: the app says so and ends
        return None
    if known.tab not in (None, "lm") or not on_cpu or not hasattr(os, "fork"):
        return None
    model = loading.default_model()
    if not loading.loads_from_disk(model):
        return None
    return start(model, max(1, known.threads))


def ready_reader(name: str, device: str | torch.device) -> EarlyReader | None:
    """The reader of ``name`` on ``device`` when it can answer now, else None."""
    reader = _readers.get(name)
    if reader is None or torch.device(device).type != "cpu":
        return None
    return reader if reader.ready() else None


def retire(name: str) -> None:
    """The server's own copy of ``name`` is ready: end its reader, if it has one."""
    reader = _readers.pop(name, None)
    if reader is not None:
        reader.close()
        log.info("The early reader of %s has ended: the server reads with its own copy now.", name)
