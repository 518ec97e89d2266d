"""Causal language models the app can explore: a catalogue (data), loading, and per-text analysis.

    from superpos_core import lm
    loaded = lm.load("gpt2")
    analysis = lm.analyse_text(loaded, "It was the best of times.", layer=6)   # one forward pass
    analysis.tokens, analysis.activations.shape, analysis.effective_rank(), analysis.summary()

One idea a module, each importing only those above it:

    catalogue.py   the models (data), and where each comes from: the Hub's cache, a GGUF in a PyPI package
    gguf_cache.py  SmolLM2 dequantised once and kept on disk, so later starts read it in about a second
    tokens.py      the text as the model reads it (cleaned, capped) and its tokens as the learner sees them
    loading.py     load once per process, in the background with a progress bar; what a model's status line says
    analysis.py    one forward pass over a text, every layer kept: ``analyse_text`` and ``TextAnalysis``

The names below are re-exported so that callers write ``lm.load``, ``lm.CATALOGUE``, ``lm.TextAnalysis``. A test
that swaps a function patches the submodule that reads it (``lm.loading._load``, ``lm.catalogue._hub_reachable``);
patching the name here would change nothing the package calls.
"""

import logging

from superpos_core.lm.analysis import (
    TOP_NEXT,
    LayerError,
    TextAnalysis,
    analyse_text,
    analyse_texts,
    check_layer,
    most_variable_dimensions,
)
from superpos_core.lm.catalogue import (
    CATALOGUE,
    DEFAULT,
    GGUF_EXTRAS,
    REACHABILITY_TTL_S,
    WEIGHT_FILES,
    LMEntry,
    gguf_path,
    how_to_fetch,
    hub_cache_dir,
    hub_offline,
    hub_reachable_now,
)
from superpos_core.lm.loading import (
    LoadedLM,
    LoadingJob,
    ModelUnavailable,
    available,
    choice_label,
    default_model,
    forget,
    load,
    load_in_background,
    loaded_now,
    loads_from_disk,
    register,
    status,
)
from superpos_core.lm.tokens import (
    CONTINUED,
    MAX_CHARS,
    MAX_TOKENS,
    TextInputError,
    any_token_id,
    bos_token_id,
    clean_text,
    readable_token,
    shown_tokens,
    token_label,
)

log = logging.getLogger(__name__)  # the tab's warnings about this package; each submodule logs under its own name

__all__ = [
    "CATALOGUE",
    "CONTINUED",
    "DEFAULT",
    "GGUF_EXTRAS",
    "MAX_CHARS",
    "MAX_TOKENS",
    "REACHABILITY_TTL_S",
    "TOP_NEXT",
    "WEIGHT_FILES",
    "LMEntry",
    "LayerError",
    "LoadedLM",
    "LoadingJob",
    "ModelUnavailable",
    "TextAnalysis",
    "TextInputError",
    "analyse_text",
    "analyse_texts",
    "any_token_id",
    "available",
    "bos_token_id",
    "check_layer",
    "choice_label",
    "clean_text",
    "default_model",
    "forget",
    "gguf_path",
    "how_to_fetch",
    "hub_cache_dir",
    "hub_offline",
    "hub_reachable_now",
    "load",
    "load_in_background",
    "loaded_now",
    "loads_from_disk",
    "most_variable_dimensions",
    "readable_token",
    "register",
    "shown_tokens",
    "status",
    "token_label",
]
