"""The language-model tab: a text's tokens inside a real language model, its effective rank layer by
layer, and sparse autoencoders that pull features back out of the superposed residual stream."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from types import SimpleNamespace

import gradio as gr
import numpy as np
import torch

from demos import networks  # the network view (issue 13)
from demos.common import (
    CheckedNumber,
    CheckedSlider,
    ChoiceDropdown,
    ChoiceRadio,
    figure,
    network_view,
    note,
    quoted,
)
from superpos_core import concepts, lm, sae, serving
from superpos_core.figures import concepts as concept_figures
from superpos_core.figures import lm as lm_figures
from superpos_core.figures import sae as sae_figures
from superpos_core.figures.base import to_rgb
from superpos_core.serving import Recent, in_background

NOTES = {
    "heatmap": "One row per token, in reading order, exactly as the tokenizer cut the text (␣ is a space). One column per hidden "
    "dimension of the chosen layer; red is positive, blue negative. No single column means one word or idea: meaning is spread "
    "across many dimensions at once, and each dimension takes part in many meanings. A text longer than 64 tokens shows its "
    "first 64 rows (the ranks below use every token). An emoji split over several tokens is named on its first and marked ⋯ on the rest.",
    "ranks": "How many directions the tokens use at each layer: the effective rank, the course's count of singular values (largest "
    "first) whose running share of the squared total is still below 99%. Reaching 99% takes one more (the status line gives both). "
    "The activations are not centred, as in the course. The dashed line is the most it could ever be, min(tokens, d_model): "
    "a short text is the limit long before the model is. The BOS token read before the text is not counted.",
    "grid": "Each small square is one learned feature: the weights it uses to read the layer's activations, folded into a square so "
    "they fit. A feature is a direction in the layer, and most directions mix many dimensions.",
    "bars": "How strongly each learned feature fires on average over the text. With the L1 penalty most features stay quiet on most "
    "tokens; grey bars marked × never fired at all.",
    "token_features": "Which features fire on which token. A good sparse code lights up only a few features per row, so each token "
    "is described by a handful of features rather than hundreds of mixed-up dimensions.",
    "pretrained": "A sparse autoencoder trained by others on millions of GPT-2 tokens, with 24,576 features for 768 dimensions: "
    "32 features per dimension, superposition undone at scale. Each bar is a feature that fires strongly on this text; its "
    "Neuronpedia page shows the texts that make it fire most. Its features mean that only on inputs like its training data, so "
    f"it reads the text as it was trained: in windows of {sae.GPT2_SMALL_RES_JB.context_size} tokens, each after <|endoftext|>, with "
    f"each token's mean over the {sae.GPT2_SMALL_RES_JB.d_in} dimensions taken away (TransformerLens, which it was trained with, "
    "centres GPT-2's weights so that this mean is 0).",
}
EXAMPLES = [
    "It was the best of times, it was the worst of times.",
    "The cat sat on the mat. The dog sat on the log.",
    "def add(a, b):\n    return a + b",
    "Paris is the capital of France, and Berlin is the capital of",
    "Superposition lets a network store more features than it has neurons. 🧠",
]
VIEWS = ("most variable 64 dimensions", "all dimensions")
SAE_DEFAULTS = sae.CourseSAEConfig()  # the course's recipe: 16 features, L1 0.01, 500 epochs, seed 0
MAX_LAYER = 40  # the slider's range before a model tells us its own

# Analyses of recent texts, so moving the layer slider, switching the view or training an SAE reuses the
# forward pass. A few entries only: one long text holds tens of MB of hidden states.
CACHED_TEXTS = 4
_analyses: Recent[lm.TextAnalysis] = Recent(CACHED_TEXTS)  # (model, device, text) -> every layer's activations


def default_model() -> str:
    """The first model that can be used now: GPT-2 small, else the offline SmolLM2, else GPT-2 anyway (its status says why not)."""
    for key in ("gpt2", "smollm2-135m-offline"):
        if key in lm.CATALOGUE and lm.available(key):
            return key
    return lm.DEFAULT


def layer_count(model: str, device: torch.device = torch.device("cpu")) -> int:
    """Layers of a model (embeddings + one per block), without loading it when it is not loaded yet."""
    loaded = lm.loaded_now(model, device)
    if loaded is not None:
        return loaded.n_layers
    entry = lm.CATALOGUE.get(model)
    return entry.n_blocks + 1 if entry is not None and entry.n_blocks else MAX_LAYER + 1


def missing_models_note() -> str:
    """One line naming the catalogue's models that are not on this machine (empty when all are here)."""
    missing = [entry.title.split(" (")[0] for entry in lm.CATALOGUE.values() if not lm.available(entry.key)]
    if not missing:
        return ""
    return f"Not on this machine: {', '.join(missing)} (marked in the list; choose one to see how to get it)."


def model_status(model: str, allow_any: bool = False) -> str:
    entry = lm.CATALOGUE.get(model)
    if entry is None:
        if allow_any and HUB_ID.fullmatch(str(model)):
            return f"`{model}` is not in the catalogue: it is loaded from the Hugging Face cache, or downloaded, on first use."
        return f"Unknown model {model!r}."
    return f"{entry.about} {lm.status(model)[1]}"


# What a Hugging Face model id looks like (owner/name). With --allow-any-model a learner may type one;
# anything else (a path on the server, a URL) is refused before it reaches the loader.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")


def _whole(value, name: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a whole number; got {quoted(value)}.", print_exception=False) from None
    if not np.isfinite(number) or number != int(number):
        raise gr.Error(f"{name} must be a whole number; got {quoted(value)}.", print_exception=False)
    return int(number)


PROGRESS_TICK_S = 0.25  # how often a waiting request moves its progress bar
quiet = lambda *a, **k: None  # noqa: E731  no progress bar: a helper event, or work nobody is waiting on


def _load(model: str, device: torch.device, progress, allow_any: bool = False) -> lm.LoadedLM:
    """The model, loaded once per process; while it loads (for this request, or warming since the server started),
    the progress bar moves and says how long it has taken."""
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
            progress(job.fraction(), desc=job.describe())
        return job.result()
    except lm.ModelUnavailable as error:
        raise gr.Error(str(error), print_exception=False, title="Model unavailable") from None


def _analysis(text, model: str, layer, device: torch.device, progress, allow_any: bool = False) -> lm.TextAnalysis:
    """The text's analysis at ``layer``: from the cache when this text was read by this model before."""
    if not isinstance(text, str) or not text.strip():
        raise gr.Error(
            "The text is empty: type a sentence or two for the model to read, or click an example.",
            print_exception=False,
        )
    layer = _whole(layer, "The layer")
    loaded = _load(model, device, progress, allow_any)
    key = (model, str(loaded.device), text)

    def read() -> lm.TextAnalysis:
        progress(0.5, desc=f"Reading the text with {loaded.title}")
        return lm.analyse_text(loaded, text, layer)

    try:
        return _analyses.get_or_make(key, read).at_layer(layer)
    except (lm.TextInputError, lm.LayerError) as error:
        raise gr.Error(str(error), print_exception=False) from None


def text_analysis(
    text: str, model: str, layer: int, device: torch.device = torch.device("cpu"), allow_any: bool = False
) -> lm.TextAnalysis:
    """What the tab's handlers read a text with: its analysis at ``layer``, from the tab's cache of recent texts
    when this model read this text before (a notebook or benchmark can reuse the forward pass a handler made)."""
    return _analysis(text, model, layer, device, quiet, allow_any)


def forget_texts() -> None:
    """Empty the tab's cache of recent texts, so the next handler call reads its text with a fresh forward pass."""
    _analyses.clear()


def _labels(analysis: lm.TextAnalysis) -> list[str]:
    return analysis.labels


def _heatmap(analysis: lm.TextAnalysis, view: str) -> np.ndarray:
    dimensions = None if view == VIEWS[1] else analysis.most_variable_dimensions(64)
    title = f"{analysis.model}, layer {analysis.layer}: {len(analysis.tokens)} tokens × {analysis.d_model} dimensions"
    with lm_figures.lend_heatmap("activations", len(analysis.tokens)) as panel:
        return lm_figures.lm_token_heatmap(panel, analysis.activations, _labels(analysis), dimensions, title)


def _sae_token_features(feature_acts: np.ndarray, analysis: lm.TextAnalysis) -> np.ndarray:
    with lm_figures.lend_heatmap("sae", len(analysis.tokens)) as panel:
        return sae_figures.sae_token_features(panel, feature_acts, _labels(analysis))


def analyse_text_event(
    text,
    model: str,
    layer,
    view: str = VIEWS[0],
    device: torch.device = torch.device("cpu"),
    progress=gr.Progress(),
    allow_any: bool = False,
):
    """The main event (``api_name="lm"``): one forward pass, every layer kept.

    Returns the /lm summary, the heatmap, the rank-per-layer plot, the top-5 next tokens and a status line.
    """
    analysis = _analysis(text, model, layer, device, progress, allow_any)
    ranks = analysis.ranks()
    with lm_figures.lend_rank_plot() as panel:
        rank_plot = panel.update(
            ranks,
            analysis.rank_bound,
            analysis.d_model,
            analysis.layer,
            f"{analysis.model}: effective rank of the token matrix, layer by layer",
        )
    next_tokens = {lm.token_label(token): p for token, p in analysis.next_tokens}
    rank = ranks[analysis.layer]
    status = (
        f"**{len(analysis.tokens)} tokens** at layer {analysis.layer} of {analysis.n_layers - 1}: effective rank **{rank}** "
        f"out of at most {analysis.rank_bound} (d_model {analysis.d_model}); {analysis.rank_to_reach()} singular values reach 99% of the energy. "
        f"The model's next-token guess: **{lm.token_label(analysis.next_tokens[0][0])}**."
    )
    if analysis.bos_note:
        status += f"\n\nℹ️ {analysis.bos_note}"
    notes = (
        analysis.notes
        + analysis.layer_notes()
        + ([analysis.split_characters_note] if analysis.split_characters_note else [])
    )
    if notes:
        status += "\n\n" + "\n".join(f"- ⚠️ {line}" for line in notes)
    return analysis.summary(), _heatmap(analysis, view), rank_plot, next_tokens, status


def switch_view(
    text, model: str, layer, view: str, device: torch.device = torch.device("cpu"), allow_any: bool = False
):
    """Re-draw the heatmap from the cached analysis (helper event)."""
    return _heatmap(_analysis(text, model, layer, device, lambda *a, **k: None, allow_any), view)


def train_sae_event(
    text,
    model: str,
    layer,
    n_features,
    l1_weight,
    epochs,
    seed,
    device: torch.device = torch.device("cpu"),
    progress=gr.Progress(),
    allow_any: bool = False,
):
    """``api_name="lm_sae"``: the course's SAE, trained on this text's activations at the chosen layer."""
    try:
        l1 = float(l1_weight)
    except (TypeError, ValueError):
        raise gr.Error(f"The L1 weight must be a number; got {l1_weight!r}.", print_exception=False) from None
    config = sae.CourseSAEConfig(
        n_features=_whole(n_features, "The number of features"),
        l1_weight=l1,
        epochs=_whole(epochs, "The number of epochs"),
        seed=_whole(seed, "The seed"),
    )
    analysis = _analysis(text, model, layer, device, progress, allow_any)
    progress(0, desc="Training the sparse autoencoder")
    try:
        result = sae.train_course_sae(
            torch.as_tensor(analysis.activations).to(device),
            config,
            on_epoch=lambda done, total, loss: progress(
                done / total, desc=f"Epoch {done:,} of {total:,}: loss {loss:.4g}"
            ),
        )
    except sae.SAEInputError as error:
        raise gr.Error(str(error), print_exception=False) from None
    summary = {
        "features": int(result.config.n_features),
        "l0": round(float(result.l0), 4),
        "mse": round(float(result.final_mse), 6),
        "mean_activation": [round(float(v), 6) for v in result.mean_activation],
    }
    status = (
        f"Trained {result.config.n_features} features on {len(analysis.tokens)} tokens of layer {analysis.layer}: reconstruction error "
        f"{result.mse_before:.4g} → **{result.final_mse:.4g}**, **{result.l0:.1f}** features active per token on average"
        f"{f', {result.dead_features} never fire' if result.dead_features else ''}."
    )
    return (
        summary,
        to_rgb(sae_figures.sae_feature_grid(result.encoder_rows)),
        to_rgb(sae_figures.sae_activation_bars(result.mean_activation)),
        _sae_token_features(result.feature_acts, analysis),
        status,
    )


KEEP_SAES = 2  # pretrained SAEs kept in memory, most recently used first (about 150 MB each)
_release_saes: Recent[sae.PretrainedSAE] = Recent(KEEP_SAES)  # (layer, device) -> its SAE


def _release_sae(layer: int, device: torch.device) -> sae.PretrainedSAE:
    """GPT-2 small's SAE for ``layer`` on ``device``, read from the Hugging Face cache once and kept for the next request."""
    return _release_saes.get_or_make(
        (layer, str(torch.device(device))), lambda: sae.fetch_release_sae(layer, local_files_only=True).to(device)
    )


@dataclass(frozen=True)
class _SAEReading:
    """What a pretrained SAE found in one text: all the panel and a click on a token need."""

    analysis: lm.TextAnalysis
    fed: sae.SAEInput  # what the SAE read: the text after the BOS, in windows, centred, as the SAE's settings say
    fed_note: str  # that, in one sentence for the learner
    peaks: list[float]  # (T,) each token's strongest feature activation
    over_text: list[sae.FeatureHit]  # the strongest features over the whole text
    per_token: list[list[sae.FeatureHit]]  # (T,) each token's strongest features


TOP_FEATURES = 10
_readings: Recent[_SAEReading] = Recent(CACHED_TEXTS)  # (model, layer, device, text) -> what its SAE found


def _read_with(model_sae: sae.PretrainedSAE, analysis: lm.TextAnalysis, loaded: lm.LoadedLM) -> _SAEReading:
    # The SAE's own input, not the analysis's hidden state: GPT-2 small's SAEs were trained on centred
    # activations of 128-token windows that start with <|endoftext|>, and must be fed the same (sae_input
    # reads each SAE's own settings, and reuses the analysis's forward pass when the text fits one window).
    fed = sae.sae_input(model_sae, loaded, analysis.token_ids, analysis)
    with torch.inference_mode():
        features = model_sae.encode(fed.activations).cpu()  # (T, d_sae), on the SAE's device
    values, indices = features.topk(
        min(TOP_FEATURES, features.shape[1]), dim=1
    )  # (T, k) each token's strongest, once for every click
    per_token = [
        [sae.FeatureHit(int(i), float(v), t) for v, i in zip(vs, ids) if v > 0]
        for t, (vs, ids) in enumerate(zip(values, indices))
    ]
    return _SAEReading(
        analysis,
        fed,
        _fed_note(fed, loaded.tokenizer),
        features.amax(dim=1).tolist(),
        sae.top_features(features, k=TOP_FEATURES),
        per_token,
    )


def _fed_note(fed: sae.SAEInput, tokenizer) -> str:
    """One sentence on what the SAE read, e.g. "after <|endoftext|>, centred, in 3 windows of up to 128 tokens"."""
    how = (
        [f"after {lm.token_label(tokenizer.convert_ids_to_tokens(fed.bos))}"]
        if fed.bos is not None
        else ["with no token before the text"]
    )
    if fed.centred:
        how.append("centred (each token's mean over its dimensions taken away)")
    how.append(
        f"in {fed.windows} windows of up to {fed.window} tokens, each read afresh"
        if fed.windows > 1
        else f"in one window (a window holds up to {fed.window} tokens)"
    )
    return "Read as the SAE was trained: " + ", ".join(how) + "."


def _pretrained_features(text, model: str, layer, device: torch.device) -> tuple[str, None] | tuple[None, _SAEReading]:
    """(why not, None) when no pretrained SAE can read this; else (None, what it read, kept for the next click)."""
    release = sae.GPT2_SMALL_RES_JB
    if model != "gpt2":
        # Only point to GPT-2 small when it is here: offline, choosing it would only lead to another message.
        then = (
            "Choose GPT-2 small to use them."
            if lm.available("gpt2")
            else f"GPT-2 small is not on this machine, so they cannot be used here. To use them: {lm.how_to_fetch(lm.CATALOGUE['gpt2'])}"
        )
        return (
            f"The pretrained SAEs here ({release.d_sae:,} features each, `{release.repo_id}`) read **GPT-2 small**'s residual stream, "
            f"so they cannot read this model's activations. {then}",
            None,
        )
    try:
        layer = _whole(layer, "The layer")
        if layer not in release.layers:
            return (
                f"GPT-2 small's pretrained SAEs read the residual stream entering blocks {release.layers[0]}–{release.layers[-1]}; layer {layer} is after the last block. Choose a layer from 0 to 11.",
                None,
            )
        model_sae = _release_sae(layer, device)
    except sae.SAELoadError as error:
        get = f"Get it (about 150 MB) once, on a machine with internet: `python -m superpos_core.sae --layers {layer}`."
        return f"The pretrained SAE for layer {layer} is not on this machine ({error}). {get}", None
    except (sae.SAEInputError, gr.Error) as error:
        return str(error), None
    if not isinstance(text, str) or not text.strip():
        return "The pretrained SAE is here: analyse a text to see its features.", None
    try:
        return None, _readings.get_or_make(
            (model, layer, str(device), text),
            lambda: _read_with(model_sae, _analysis(text, model, layer, device, quiet), _load(model, device, quiet)),
        )
    except sae.SAEInputError as error:
        return str(error), None


def _feature_links(hits: list[sae.FeatureHit], layer: int, labels: list[str], at_token: bool) -> str:
    where = "" if at_token else " at “{}”"
    return "\n".join(
        f"- [feature {h.index}]({sae.neuronpedia_url(layer, h.index)}): {h.activation:.2f}"
        + where.format(labels[h.token])
        for h in hits
    )


def pretrained_sae_panel(text, model: str, layer, device: torch.device = torch.device("cpu")):
    """GPT-2 small's pretrained SAE on the whole text (helper event).

    Returns the status (with a Neuronpedia link per feature), the bars of the strongest features (or
    None), and the text's tokens shaded by their strongest feature, for the learner to click (or None).
    """
    why, reading = _pretrained_features(text, model, layer, device)
    if why:
        return why, None, None
    analysis, hits = reading.analysis, reading.over_text
    labels = _labels(analysis)
    top = max(reading.peaks)
    tokens = [
        (token, round(peak / top, 3) if top > 0 else 0.0)
        for token, peak in zip(analysis.shown_or_tokens, reading.peaks)
    ]
    if not hits:
        return (
            f"The pretrained SAE is here, but none of its features fire on this text. {reading.fed_note}",
            None,
            tokens,
        )
    release, layer = sae.GPT2_SMALL_RES_JB, analysis.layer
    plot = sae_figures.pretrained_feature_bars(
        [h.index for h in hits],
        [h.activation for h in hits],
        [labels[h.token] for h in hits],
        f"GPT-2 small, layer {layer}: strongest of {release.d_sae:,} features",
    )
    status = (
        f"Pretrained SAE for layer {layer} loaded ({release.d_sae:,} features). {reading.fed_note} Strongest on this text:\n{_feature_links(hits, layer, labels, False)}\n\n"
        "**Click a token** in the text below to see the features that fire on it."
    )
    return status, to_rgb(plot), tokens


def pretrained_token_panel(text, model: str, layer, token, device: torch.device = torch.device("cpu")):
    """The strongest pretrained features on one token of the text, the one the learner clicked (helper event)."""
    why, reading = _pretrained_features(text, model, layer, device)
    if why:
        return why, None
    labels = _labels(reading.analysis)
    try:
        token = sae.token_position(_whole(token, "The token position"), len(labels))
    except sae.SAEInputError as error:
        return str(error), None
    hits, word = reading.per_token[token], labels[token]
    if not hits:
        return f"No pretrained feature fires on token {token} (“{word}”).", None
    layer = reading.analysis.layer
    plot = sae_figures.pretrained_feature_bars(
        [h.index for h in hits],
        [h.activation for h in hits],
        [word] * len(hits),
        f"GPT-2 small, layer {layer}: strongest features on token {hits[0].token} (“{word}”)",
        xlabel="activation on this token",
    )
    return (
        f"Token {hits[0].token} (“{word}”): its strongest features\n{_feature_links(hits, layer, labels, True)}",
        to_rgb(plot),
    )


def choose_model(model: str, device: torch.device = torch.device("cpu"), allow_any: bool = False):
    """A new model: its status and its layer range (helper event; nothing loads)."""
    count = layer_count(model, device)
    return model_status(model, allow_any), gr.update(maximum=count - 1, value=count // 2)


# --- the tab's opening view: the default example's pictures, computed once per server process and kept --------

_openings: dict[tuple, tuple] = {}  # (text, model, layer, view, device) -> analyse_text_event's outputs
_openings_lock = threading.Lock()  # one thread draws an opening view; the others wait for it and share it
_warming: set[tuple] = set()
_warming_lock = threading.Lock()


def opening_inputs(device: torch.device) -> tuple[str, str, int, str]:
    """(text, model, layer, view) the tab opens with: its first example, the default model, the middle layer."""
    model = default_model()
    return EXAMPLES[0], model, layer_count(model, device) // 2, VIEWS[0]


def opening_view(text: str, model: str, layer: int, view: str, device: torch.device, keep: bool = True) -> tuple:
    """``analyse_text_event``'s outputs for the tab's opening inputs, drawn once per process and kept.

    Keyed by everything the pictures depend on (never by an app: many apps share one process), and only a
    finished result is kept: a failure is raised to the caller and the next caller tries again.
    """
    key = (text, model, int(layer), view, str(torch.device(device)))
    kept = _openings.get(key)
    if kept is not None:
        return kept
    if not keep:
        return analyse_text_event(text, model, layer, view, device, quiet)
    with _openings_lock:
        if key not in _openings:
            _openings[key] = analyse_text_event(text, model, layer, view, device, quiet)
        return _openings[key]


def warm_up(device: torch.device) -> threading.Thread | None:
    """Load the default model and draw the opening view on a thread of its own, as the server starts.

    Once per process per (model, device) while it runs or once it has succeeded; after a failure the next
    app built (or the first page opened) tries again. Returns the thread, or None when there is nothing to do.
    """
    text, model, layer, view = opening_inputs(device)
    key = (text, model, layer, view, str(torch.device(device)))
    if not lm.available(model):
        return None
    with _warming_lock:
        if key in _openings or key in _warming:
            return None
        _warming.add(key)

    def run() -> None:
        try:
            _load(model, device, quiet)
            opening_view(text, model, layer, view, device)
        except Exception as error:  # not kept: a page that opens later tries again, and shows why if it fails too
            lm.log.warning("Warming up %s on %s failed: %s", model, device, error)
        finally:
            with _warming_lock:
                _warming.discard(key)

    thread = threading.Thread(
        target=run, name=f"superpos-lm-warm-up-{model}-{device}"
    )  # not a daemon: see lm.load_in_background
    thread.start()
    return thread


def _wait_for_model(model, device: torch.device, progress, allow_any: bool) -> None:
    """Wait, with a moving progress bar, for a model that is loading, before an event's work goes to the background pool.

    Waiting there would hold the pool's only worker for the whole load. Errors are left to the event itself,
    which reports them in its own order (an empty text before an unknown model).
    """
    try:
        _load(model, device, progress, allow_any)
    except gr.Error:
        pass


# Pressing Enter in the layer's number box analyses that layer. Gradio's slider reports a typed number only when
# the box loses focus (its "release"); Enter alone did nothing. Listening on the document survives re-renders.
LAYER_ENTER_JS = """() => {
  if (window.superposLayerEnter) return;
  window.superposLayerEnter = true;
  document.addEventListener('keydown', (event) => {
    const box = event.target;
    if (event.key !== 'Enter' || !(box instanceof HTMLInputElement) || box.type !== 'number' || !box.closest('#lm-layer')) return;
    event.preventDefault();
    setTimeout(() => box.blur(), 0);  // after the typed value has reached the slider's state
  }, true);
}"""


# --- concepts (the course's chapter 4) ----------------------------------------------------------------

CONCEPT_NOTES = {
    "bars": "Left, as in the course: Pearson's correlation, across the hidden dimensions, between each concept's vector (the mean of "
    "its words' hidden states) and each sentence's mean hidden state, averaged over the sentences of each label. These bars are "
    "often high and nearly equal: every hidden state shares a large common part (a few dimensions are big for every token), and "
    "that part swamps the rest. Right: the same after taking the average concept from each concept and the average sentence from "
    "each sentence, which leaves what sets each one apart (with only two concepts the two are then exact opposites, mirror-image "
    "bars). If the layer carries a concept, its tallest bar here is its own label's. "
    "The differences are small and change from layer to layer: read them as a hint, not a proof.",
    "pca": "Each dot is one sentence: its mean hidden state, placed along the two directions in which the sentences differ most "
    "(principal components; each axis says what share of the variation it holds). Sentences of one label that sit together differ "
    "from the others along the layer's main directions; clouds that overlap differ, if at all, in weaker directions.",
}


def concepts_event(
    concept_words,
    sentences,
    model: str,
    layer,
    device: torch.device = torch.device("cpu"),
    progress=gr.Progress(),
    allow_any: bool = False,
):
    """``api_name="lm_concepts"``: concept word lists against labelled sentences at the chosen layer.

    Returns the /lm_concepts summary, the correlation bars, the sentences' PCA and a status line.
    """
    try:  # the learner's lists first: a typo is reported before any model loads
        concept_lists = concepts.parse_concepts(concept_words)
        labelled = concepts.parse_sentences(sentences)
    except concepts.ConceptInputError as error:
        raise gr.Error(str(error), print_exception=False) from None
    layer = _whole(layer, "The layer")
    loaded = _load(model, device, progress, allow_any)
    progress(0.5, desc=f"Reading the concept words and {len(labelled)} sentences with {loaded.title}")
    try:
        analysis = concepts.analyse_concepts(loaded, concept_lists, labelled, layer)
    except (concepts.ConceptInputError, lm.LayerError) as error:
        raise gr.Error(str(error), print_exception=False) from None
    where = f"{analysis.model}, layer {analysis.layer}"
    bars = concept_figures.concept_correlation_bars(
        analysis.concept_names,
        analysis.labels,
        analysis.by_label(),
        analysis.by_label(centred=True),
        f"{where}: each concept against the sentences of each label",
    )
    coordinates, explained = analysis.pca()
    pca = concept_figures.concept_pca_scatter(
        coordinates,
        [s.label for s in analysis.sentences],
        explained,
        [s.text for s in analysis.sentences],
        f"{where}: the sentences' mean hidden states on their two main directions",
    )
    closest = ", ".join(
        f"{name} → **{label}**" + ("" if name not in analysis.labels else " ✓" if label == name else " ✗")
        for name, label in analysis.closest_labels().items()
    )
    words = sum(len(ws) for ws in analysis.concepts.values())
    status = (
        f"**{len(analysis.concepts)} concepts** ({words} words) against **{len(analysis.sentences)} sentences** under {len(analysis.labels)} labels, "
        f"at layer {analysis.layer} of {loaded.n_layers - 1} (d_model {analysis.d_model}). After centring, each concept is closest to the sentences "
        f"labelled: {closest}. The two main directions hold {explained[0]:.0%} and {explained[1]:.0%} of the sentences' variation."
    )
    if analysis.notes:
        status += "\n\n" + "\n".join(f"- ⚠️ {line}" for line in analysis.notes)
    return analysis.summary(), to_rgb(bars), to_rgb(pca), status


def render_concepts(device: torch.device, model: gr.Dropdown, layer: gr.Slider, allow_any_model: bool = False) -> None:
    """The Concepts section, read with the tab's model and layer."""
    gr.Markdown(
        "### Concepts (the course's chapter 4)\nDoes the model hold an idea such as *positive* as a direction? A concept here is a list of "
        "words, and its vector is the average of the words' hidden states at the layer chosen above; a sentence's vector is the average "
        "over its tokens. Edit both lists: concepts one per line as `name: word, word, …` (each word must be a single token of the model, "
        "as common English words are), sentences one per line as `label: sentence`, under at least two labels."
    )
    with gr.Row():
        words_box = gr.Textbox(
            value=concepts.format_concepts(concepts.CONCEPTS),
            label="Concepts (name: word, word, …)",
            lines=4,
            max_lines=10,
            elem_id="lm-concept-words",
        )
        sentences_box = gr.Textbox(
            value=concepts.format_sentences(concepts.SENTENCES),
            label="Labelled sentences (label: sentence)",
            lines=8,
            max_lines=16,
            elem_id="lm-concept-sentences",
        )
    run = gr.Button("Compare the concepts with the sentences")
    status = gr.Markdown(elem_id="lm-concepts-status")
    bars = figure("Each concept's correlation with each label's sentences", elem_id="lm-concepts-bars")
    note(CONCEPT_NOTES["bars"])
    pca = figure("The sentences' hidden states on their two main directions (PCA)", elem_id="lm-concepts-pca")
    note(CONCEPT_NOTES["pca"])
    with gr.Accordion("Concept numbers (the /lm_concepts API's JSON)", open=False):
        summary = gr.JSON(label="Concepts summary", elem_id="lm-concepts-json")

    @in_background
    def compare_concepts(concept_words, sentences, model, layer, progress=gr.Progress()):
        return concepts_event(concept_words, sentences, model, layer, device, progress, allow_any_model)

    run.click(
        compare_concepts,
        inputs=[words_box, sentences_box, model, layer],
        outputs=[summary, bars, pca, status],
        api_name="lm_concepts",
        **serving.queue("lm"),
    )


def render(blocks: gr.Blocks, device: torch.device, allow_any_model: bool = False) -> SimpleNamespace:
    """Lay out the language-model tab inside the current ``gr.Tab``; returns its main components."""
    gr.Markdown(
        "## Inside a language model\nType a text and look at how a real language model holds it, layer by layer: every token becomes a vector "
        "with hundreds of dimensions. How many directions do the tokens really use? And can a sparse autoencoder pull readable features "
        "back out of the mix (the course's third experiment)?"
    )
    opening = opening_inputs(device)
    _, first, _, _ = opening
    count = layer_count(first, device)
    warm_up(device)  # the default model loads while the page is served, and its opening view is drawn once
    with gr.Row():
        with gr.Column(scale=5, min_width=300):
            text = gr.Textbox(value=EXAMPLES[0], label="Your text", lines=4, max_lines=12, elem_id="lm-text")
            gr.Examples(EXAMPLES, inputs=text, label="Quick examples")
        with gr.Column(scale=4, min_width=300):
            model = ChoiceDropdown(
                [(lm.choice_label(e.key), e.key) for e in lm.CATALOGUE.values()],
                value=first,
                label="Model" + (" (or type a Hugging Face model id)" if allow_any_model else ""),
                elem_id="lm-model",
                allow_custom_value=allow_any_model,
            )
            about = gr.Markdown(
                "\n\n".join(filter(None, [model_status(first), missing_models_note()])), elem_id="lm-model-status"
            )
            # 0..MAX_LAYER accepted from API callers; the model's own range is checked (LayerError) on use.
            layer = CheckedSlider(
                0, count - 1, value=count // 2, step=1, label="Layer (0 = embeddings)", elem_id="lm-layer"
            )
            view = ChoiceRadio(list(VIEWS), value=VIEWS[0], label="Heatmap columns", elem_id="lm-view")
            run = gr.Button("Analyse the text", variant="primary")
    status = gr.Markdown(elem_id="lm-status")
    next_tokens = gr.Label(label="What the model expects next (top 5)", num_top_classes=5, elem_id="lm-next")
    heatmap = figure("The chosen layer's activations, token by token", elem_id="lm-heatmap")
    note(NOTES["heatmap"])
    ranks = figure("Effective rank, layer by layer", elem_id="lm-ranks")
    note(NOTES["ranks"])
    with gr.Accordion("Numbers behind the pictures (the /lm API's JSON)", open=False):
        summary = gr.JSON(label="Summary", elem_id="lm-json")

    gr.Markdown("### A sparse autoencoder trained on your text (the course's way)")
    with gr.Row():
        n_features = CheckedSlider(4, 64, value=SAE_DEFAULTS.n_features, step=1, label="Features")
        l1_weight = CheckedNumber(value=SAE_DEFAULTS.l1_weight, label="L1 weight (sparsity penalty)", minimum=0)
        epochs = CheckedSlider(50, 2000, value=SAE_DEFAULTS.epochs, step=50, label="Epochs")
        seed = CheckedNumber(value=SAE_DEFAULTS.seed, precision=0, label="Seed")
    train = gr.Button("Train the SAE on this text and layer")
    sae_status = gr.Markdown(elem_id="lm-sae-status")
    grid = figure("Learned features", elem_id="lm-sae-grid")
    note(NOTES["grid"])
    with gr.Row():
        with gr.Column():
            bars = figure("Activation strength of each feature", elem_id="lm-sae-bars")
            note(NOTES["bars"])
        with gr.Column():
            token_features = figure("Which features fire on which token", elem_id="lm-sae-tokens")
            note(NOTES["token_features"])
    with gr.Accordion("SAE numbers (the /lm_sae API's JSON)", open=False):
        sae_summary = gr.JSON(label="SAE summary", elem_id="lm-sae-json")

    gr.Markdown("### The field's way: a pretrained SAE for GPT-2 small")
    pretrained_status = gr.Markdown(elem_id="lm-pretrained-status")
    # Shown once a pretrained SAE has read the text: until then the status above says what is missing.
    with gr.Column(visible=False) as pretrained_box:
        pretrained = figure("Strongest pretrained features on this text", elem_id="lm-pretrained")
        note(NOTES["pretrained"])
        pretrained_tokens = gr.HighlightedText(
            label="The text's tokens, shaded by their strongest pretrained feature: click one",
            show_legend=False,
            show_inline_category=False,
            combine_adjacent=False,
            interactive=False,
            elem_id="lm-pretrained-tokens",
        )
        token_status = gr.Markdown(elem_id="lm-token-status")
        token_plot = figure("Strongest pretrained features on the clicked token", elem_id="lm-token-features")

    inputs = [text, model, layer, view]
    outputs = [summary, heatmap, ranks, next_tokens, status]

    # Named wrappers (not lambdas): their parameter names are the API's. A model still loading is waited for
    # here, with a moving progress bar, and only then does the work go to the background pool.
    def analyse(text, model, layer, view, progress=gr.Progress()):
        _wait_for_model(model, device, progress, allow_any_model)
        return in_background(analyse_text_event)(text, model, layer, view, device, progress, allow_any_model)

    def open_tab(text, model, layer, view, progress=gr.Progress()):
        """The default example's pictures as the page opens: kept from the warm-up, or waited for with a moving bar."""
        if model in lm.CATALOGUE and not lm.available(model):
            return None, None, None, None, f"⚠️ {model_status(model)}"
        try:
            _load(model, device, progress, allow_any_model)
            return in_background(opening_view)(
                text, model, layer, view, device, keep=(text, model, layer, view) == opening
            )
        except gr.Error as error:
            return None, None, None, None, f"⚠️ {error.message}"

    @in_background
    def look_up_pretrained(t, m, l):
        status, plot, tokens = pretrained_sae_panel(t, m, l, device)
        return status, plot, tokens, gr.Column(visible=tokens is not None)

    @in_background
    def pick_token(t, m, l, evt: gr.SelectData):
        return pretrained_token_panel(t, m, l, evt.index, device)

    def train_sae(text, model, layer, n_features, l1_weight, epochs, seed, progress=gr.Progress()):
        _wait_for_model(model, device, progress, allow_any_model)
        return in_background(train_sae_event)(
            text, model, layer, n_features, l1_weight, epochs, seed, device, progress, allow_any_model
        )

    pretrained_outputs = [pretrained_status, pretrained, pretrained_tokens, pretrained_box]
    # The opening view fills the tab's pictures as the page loads; the learner's own analysis cancels it, so a
    # slow opening (the model still warming) can never arrive after, and over, what the learner asked for.
    opened = blocks.load(
        open_tab,
        inputs=inputs,
        outputs=outputs,
        api_visibility="private",
        **serving.queue("lm-open"),
    )
    blocks.load(None, js=LAYER_ENTER_JS)
    # The three ways to ask for an analysis share one queue ("lm") and each cancels a late opening view.
    asking = dict(inputs=inputs, outputs=outputs, **serving.queue("lm"), cancels=[opened])
    for event in (
        run.click(analyse, api_name="lm", **asking),
        text.submit(analyse, api_visibility="private", **asking),
        layer.release(analyse, api_visibility="private", show_progress="minimal", **asking),
    ):
        event.success(
            look_up_pretrained,
            inputs=[text, model, layer],
            outputs=pretrained_outputs,
            api_visibility="private",
            **serving.queue("lm"),
        )
    pretrained_tokens.select(
        pick_token,
        inputs=[text, model, layer],
        outputs=[token_status, token_plot],
        api_visibility="private",
        **serving.queue("lm"),
    )
    view.input(
        lambda t, m, l, v: switch_view(t, m, l, v, device, allow_any_model),
        inputs=inputs,
        outputs=heatmap,
        api_visibility="private",
        **serving.queue("lm"),
        show_progress="hidden",
    )
    # On a change of model only: the list also reports "input" when it is opened and closed again without a choice,
    # and the layer the learner had typed was then reset to the middle one.
    model.change(
        lambda m: choose_model(m, device, allow_any_model),
        inputs=model,
        outputs=[about, layer],
        api_visibility="private",
        queue=False,
    )
    train.click(
        train_sae,
        inputs=[text, model, layer, n_features, l1_weight, epochs, seed],
        outputs=[sae_summary, grid, bars, token_features, sae_status],
        api_name="lm_sae",
        **serving.queue("lm-sae"),
    )
    blocks.load(
        lambda t, m, l: look_up_pretrained(t if m != "gpt2" else "", m, l),
        inputs=[text, model, layer],
        outputs=pretrained_outputs,
        api_visibility="private",
        **serving.queue("lm"),
    )
    render_concepts(device, model, layer, allow_any_model)

    # The network this tab uses, as the course shows it first (demos/networks.py): described once an analysis has loaded it.
    network_view(
        lambda m, l: networks.lm_html(m, l, device),
        inputs=[model, layer],
        triggers=[model, layer, status],
        elem_id="lm-network",
    )
    return SimpleNamespace(text=text, model=model, layer=layer)
