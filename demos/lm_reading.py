"""How every panel of the language-model tab reads a text: the model loaded once, with a moving progress bar
while it loads, and the analyses of recent texts kept, so that moving the layer slider, switching the view or
training an SAE reuses the forward pass."""

from __future__ import annotations

import re

import gradio as gr
import torch

from superpos_core import lm
from superpos_core.lm import early_reader
from superpos_core.serving import Batcher, Recent

from .common import quoted, whole_number

# What a Hugging Face model id looks like (owner/name). With --allow-any-model a learner may type one;
# anything else (a path on the server, a URL) is refused before it reaches the loader.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")

PROGRESS_TICK_S = 0.25  # how often a waiting request moves its progress bar
quiet = lambda *a, **k: None  # noqa: E731  no progress bar: a helper event, or work nobody is waiting on

# A few entries only: one long text holds tens of MB of hidden states.
CACHED_TEXTS = 4
# (model, device, the load's serial or "early", text) -> every layer's activations
_analyses: Recent[lm.TextAnalysis] = Recent(CACHED_TEXTS)


def model_title(key: str) -> str:
    """A catalogue model's short name, as the learner reads it in the list ("GPT-2 small")."""
    return lm.CATALOGUE[key].title.split(" (")[0]


def load_model(
    model: str, device: torch.device, progress, allow_any: bool = False, early: bool = False
) -> lm.LoadedLM | early_reader.EarlyReader:
    """The model, loaded once per process; while it loads (for this request, or warming since the server started),
    the progress bar moves and says how long it has taken. With ``early``, for events that only read a text: the
    server's early reader instead, when it is ready first (``superpos_core.lm.early_reader``)."""
    if not isinstance(model, str):
        raise gr.Error(f"Choose a model by its name; got {quoted(model)}.", print_exception=False)
    typed = model not in lm.CATALOGUE
    if typed and not (allow_any and HUB_ID.fullmatch(model) and ".." not in model):
        known = ", ".join(lm.CATALOGUE)
        hint = " or a Hugging Face model id such as EleutherAI/pythia-160m" if allow_any else ""
        raise gr.Error(
            f"Unknown model {model[:100]!r}. Choose one of: {known}{hint}.",
            print_exception=False,
            title="Model unavailable",
        )
    try:
        job = lm.load_in_background(model, device, allow_any=typed)
        while not job.wait(PROGRESS_TICK_S):
            if early and (reader := early_reader.ready_reader(model, device)) is not None:
                return reader
            progress(job.fraction(), desc=job.describe())
        loaded = job.result()
        early_reader.retire(model)  # the server's own copy is ready
        return loaded
    except lm.ModelUnavailable as error:
        raise gr.Error(str(error), print_exception=False, title="Model unavailable") from None


def wait_for_model(model, device: torch.device, progress, allow_any: bool, early: bool = False) -> None:
    """Wait, with a moving progress bar, for a model that is loading, before an event's work goes to the background pool.

    Waiting there would hold the pool's only worker for the whole load. Errors are left to the event itself,
    which reports them in its own order (an empty text before an unknown model). ``early``: as ``load_model``'s.
    """
    try:
        load_model(model, device, progress, allow_any, early)
    except gr.Error:
        pass


def _read_together(_key, items: list[tuple[lm.LoadedLM | early_reader.EarlyReader, str]]) -> list[lm.TextAnalysis]:
    reader, texts = items[0][0], [text for _, text in items]
    if isinstance(reader, early_reader.EarlyReader):
        return reader.analyse_texts(texts, 0)
    return lm.analyse_texts(reader, texts, 0)


# Texts sent at the same moment by several learners are read by the model in one forward pass (``analyse_texts``).
_forwards = Batcher(_read_together, max_batch=8, line="quick")


def read_text(text, model: str, layer, device: torch.device, progress, allow_any: bool = False) -> lm.TextAnalysis:
    """The text's analysis at ``layer``: from the cache when this text was read by this model before."""
    if not isinstance(text, str) or not text.strip():
        raise gr.Error(
            "The text is empty: type a sentence or two for the model to read, or click an example.",
            print_exception=False,
        )
    layer = whole_number(layer, "The layer")
    loaded = load_model(model, device, progress, allow_any, early=True)
    if isinstance(loaded, early_reader.EarlyReader):
        try:
            return _read_with(loaded, (model, str(device), "early"), text, layer, lm.CATALOGUE[model].title, progress)
        except early_reader.ReaderGone:  # retired or ended meanwhile: the server's own copy reads it
            loaded = load_model(model, device, progress, allow_any)
    return _read_with(loaded, (model, str(loaded.device), loaded.serial), text, layer, loaded.title, progress)


def _read_with(reader, this_load: tuple, text: str, layer: int, title: str, progress) -> lm.TextAnalysis:
    """The text's analysis at ``layer``, read by ``reader`` (a loaded model, or the early reader) unless kept."""

    def read() -> lm.TextAnalysis:
        progress(0.5, desc=f"Reading the text with {title}")
        return _forwards(this_load, (reader, text)).at_layer(layer)

    try:
        return _analyses.get_or_make((*this_load, text), read).at_layer(layer)
    except (lm.TextInputError, lm.LayerError) as error:
        raise gr.Error(str(error), print_exception=False) from None


def text_analysis(
    text: str, model: str, layer: int, device: torch.device = torch.device("cpu"), allow_any: bool = False
) -> lm.TextAnalysis:
    """What the tab's handlers read a text with: its analysis at ``layer``, from the tab's cache of recent texts
    when this model read this text before (a notebook or benchmark can reuse the forward pass a handler made)."""
    return read_text(text, model, layer, device, quiet, allow_any)


def forget_texts() -> None:
    """Empty the tab's cache of recent texts, so the next handler call reads its text with a fresh forward pass."""
    _analyses.clear()
