"""The language-model tab: a text's tokens inside a real language model, its effective rank layer by
layer, and sparse autoencoders that pull features back out of the superposed residual stream."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import gradio as gr
import numpy as np
import torch

from superpos_core import lm, sae, serving
from superpos_core.figures import lm as lm_figures
from superpos_core.figures import sae as sae_figures
from superpos_core.figures.base import to_rgb
from superpos_core.serving import Kept, in_background

from . import (
    links,
    lm_concepts,
    lm_features,
    lm_sae,
    lm_steer,
    networks,  # the network view (issue 13)
)
from .common import Panels, network_view, on_gpu, whole_number
from .components import CheckedNumber, CheckedSlider, ChoiceDropdown, ChoiceRadio, figure_with_note
from .lm_concepts import concepts_event
from .lm_features import feature_event, features_event
from .lm_reading import (
    HUB_ID,
    forget_texts,
    load_model,
    model_title,
    quiet,
    read_text,
    text_analysis,
    wait_for_model,
)
from .lm_sae import pretrained_sae_panel, pretrained_token_panel
from .lm_steer import steer_event

# The tab's events, for notebooks, tests and benchmarks, whichever of its modules holds them.
__all__ = [
    "analyse_text_event",
    "concepts_event",
    "feature_event",
    "features_event",
    "forget_texts",
    "pretrained_sae_panel",
    "pretrained_token_panel",
    "render",
    "steer_event",
    "text_analysis",
    "train_sae_event",
]

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


default_model = lm.default_model  # the tab opens on it


def layer_count(model: str, device: torch.device = torch.device("cpu")) -> int:
    """Layers of a model (embeddings + one per block), without loading it when it is not loaded yet."""
    loaded = lm.loaded_now(model, device)
    if loaded is not None:
        return loaded.n_layers
    entry = lm.CATALOGUE.get(model)
    return entry.n_blocks + 1 if entry is not None and entry.n_blocks else MAX_LAYER + 1


def missing_models_note() -> str:
    """One line naming the catalogue's models that are not on this machine (empty when all are here)."""
    missing = [model_title(entry.key) for entry in lm.CATALOGUE.values() if not lm.available(entry.key)]
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
    analysis: lm.TextAnalysis | None = None,
):
    """The main event (``api_name="lm"``): one forward pass, every layer kept.

    Returns {"summary": the /lm summary, "heatmap", "ranks": the rank-per-layer plot, "next_tokens": the top 5,
    "status": a status line}, in the order the API returns them. With ``analysis`` (this text's, read already) no
    forward pass is made here.
    """
    if analysis is None:
        analysis = read_text(text, model, layer, device, progress, allow_any)
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
    return {
        "summary": analysis.summary(),
        "heatmap": _heatmap(analysis, view),
        "ranks": rank_plot,
        "next_tokens": next_tokens,
        "status": status,
    }


def switch_view(
    text, model: str, layer, view: str, device: torch.device = torch.device("cpu"), allow_any: bool = False
):
    """Re-draw the heatmap from the cached analysis (helper event)."""
    return _heatmap(read_text(text, model, layer, device, quiet, allow_any), view)


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
    """``api_name="lm_sae"``: the course's SAE, trained on this text's activations at the chosen layer.

    Returns {"summary": the /lm_sae summary, "grid": the learned features, "bars": their mean activations,
    "token_features": tokens × features, "status": a status line}, in the order the API returns them.
    """
    try:
        l1 = float(l1_weight)
    except (TypeError, ValueError):
        raise gr.Error(f"The L1 weight must be a number; got {l1_weight!r}.", print_exception=False) from None
    config = sae.CourseSAEConfig(
        n_features=whole_number(n_features, "The number of features"),
        l1_weight=l1,
        epochs=whole_number(epochs, "The number of epochs"),
        seed=whole_number(seed, "The seed"),
    )
    analysis = read_text(text, model, layer, device, progress, allow_any)
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
    return {
        "summary": summary,
        "grid": to_rgb(sae_figures.sae_feature_grid(result.encoder_rows)),
        "bars": to_rgb(sae_figures.sae_activation_bars(result.mean_activation)),
        "token_features": _sae_token_features(result.feature_acts, analysis),
        "status": status,
    }


def choose_model(model: str, device: torch.device = torch.device("cpu"), allow_any: bool = False, layer=None):
    """A new model: its status and its layer range (helper event; nothing loads). The layer moves to the middle one,
    or to ``layer`` when given and in range (a link's)."""
    count = layer_count(model, device)
    keep = isinstance(layer, (int, float)) and not isinstance(layer, bool) and 0 <= layer < count
    return model_status(model, allow_any), gr.update(maximum=count - 1, value=int(layer) if keep else count // 2)


def link_for(allow_any_model: bool) -> links.TabLink:
    """``?tab=lm&model=…&layer=12&text=…&view=…``: the tab's controls, named as the /lm API names its inputs."""

    def check(values: dict) -> None:
        model = values.get("model", default_model())
        if model not in lm.CATALOGUE and not allow_any_model:
            raise ValueError(f"there is no model {model!r} here; choose one of {', '.join(lm.CATALOGUE)}")
        if "layer" in values:
            count = layer_count(model)
            if not 0 <= values["layer"] < count:
                raise ValueError(f"layer={values['layer']} is out of range: {model} has layers 0 to {count - 1}")
        if "view" in values and values["view"] not in VIEWS:
            raise ValueError(f"view={values['view']!r} is not one of {', '.join(repr(v) for v in VIEWS)}")
        if "text" in values and not values["text"].strip():
            raise ValueError("text is empty")

    return links.TabLink(
        "lm",
        (
            links.Param("model", "model", str),
            links.Param("layer", "layer", int),
            links.Param("text", "text", str),
            links.Param("view", "view", str),
        ),
        check,
    )


# --- the tab's opening view: the default example's pictures, computed once per server process and kept --------

# (text, model, layer, view, device) -> analyse_text_event's outputs. One make per key at a time (others wait and
# share it); views of other keys never wait on it.
_openings: Kept[dict] = Kept()
_warming: set[tuple] = set()
_warming_lock = threading.Lock()


def opening_inputs(device: torch.device, model: str | None = None) -> tuple[str, str, int, str]:
    """(text, model, layer, view) the tab opens with: its first example, the default model (or ``model``), its middle
    layer, the first view."""
    model = model or default_model()
    return EXAMPLES[0], model, layer_count(model, device) // 2, VIEWS[0]


def opening_view(text: str, model: str, layer: int, view: str, device: torch.device, keep: bool = True) -> dict:
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
    return _openings.get_or_make(key, lambda: analyse_text_event(text, model, layer, view, device, quiet))


def warm_up(device: torch.device) -> threading.Thread | None:
    """Load the default model and draw the opening view on a thread of its own, as the server starts.

    Once per process per (model, device) while it runs or once it has succeeded; after a failure the next
    app built (or the first page opened) tries again. Returns the thread, or None when there is nothing to do.
    As an app is composed it begins at once, and the other tabs' warm-ups wait for it (``serving.warm_ups_in_order``).
    """
    text, model, layer, view = opening_inputs(device)
    key = (text, model, layer, view, str(torch.device(device)))
    if not lm.available(model):
        return None
    with _warming_lock:
        if _openings.get(key) is not None or key in _warming:
            return None
        _warming.add(key)

    def run() -> None:
        try:
            load_model(model, device, quiet)
            opening_view(text, model, layer, view, device)
        except Exception as error:  # not kept: a page that opens later tries again, and shows why if it fails too
            if not serving.interpreter_exiting(error):  # the server stopped before the model was ready: nothing to say
                lm.log.warning("Warming up %s on %s failed: %s", model, device, error)
        finally:
            with _warming_lock:
                _warming.discard(key)

    # Before the other tabs' warm-ups: the model takes longest, and a learner waits for it.
    return serving.start_warm_up(run, f"superpos-lm-warm-up-{model}-{device}", first=True)


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


# --- layout, then wiring ---------------------------------------------------------------------------


def layout(first: str, count: int, allow_any_model: bool) -> SimpleNamespace:
    """The tab's components, in the current ``gr.Tab``, opening on model ``first`` with ``count`` layers."""
    gr.Markdown(
        "## Inside a language model\nType a text and look at how a real language model holds it, layer by layer: every token becomes a vector "
        "with hundreds of dimensions. How many directions do the tokens really use? And can a sparse autoencoder pull readable features "
        "back out of the mix (the course's third experiment)?"
    )
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
            run = gr.Button("Analyse the text", variant="primary", elem_id="lm-run")
    status = gr.Markdown(elem_id="lm-status")
    link = links.layout("lm")
    wanted_layer = gr.Number(value=None, visible=False)  # a link's layer, kept through the change of model it makes
    next_tokens = gr.Label(label="What the model expects next (top 5)", num_top_classes=5, elem_id="lm-next")
    heatmap = figure_with_note("The chosen layer's activations, token by token", NOTES["heatmap"], elem_id="lm-heatmap")
    ranks = figure_with_note("Effective rank, layer by layer", NOTES["ranks"], elem_id="lm-ranks")
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
    grid = figure_with_note("Learned features", NOTES["grid"], elem_id="lm-sae-grid")
    with gr.Row():
        with gr.Column():
            bars = figure_with_note("Activation strength of each feature", NOTES["bars"], elem_id="lm-sae-bars")
        with gr.Column():
            token_features = figure_with_note(
                "Which features fire on which token", NOTES["token_features"], elem_id="lm-sae-tokens"
            )
    with gr.Accordion("SAE numbers (the /lm_sae API's JSON)", open=False):
        sae_summary = gr.JSON(label="SAE summary", elem_id="lm-sae-json")
    feature_section = lm_features.layout(first)
    steer_section = lm_steer.layout()
    pretrained = lm_sae.layout()
    return SimpleNamespace(
        features=feature_section,
        steer=steer_section,
        text=text,
        model=model,
        about=about,
        layer=layer,
        view=view,
        run=run,
        train=train,
        sae_controls=[n_features, l1_weight, epochs, seed],
        pretrained=pretrained,
        # Each event's outputs, named as its handler names them, in the order its API returns them.
        analysis=Panels(summary=summary, heatmap=heatmap, ranks=ranks, next_tokens=next_tokens, status=status),
        sae=Panels(summary=sae_summary, grid=grid, bars=bars, token_features=token_features, status=sae_status),
        link=Panels(text=text, model=model, layer=layer, view=view, wanted_layer=wanted_layer, **link),
    )


def wire(tab: SimpleNamespace, blocks: gr.Blocks, device: torch.device, allow_any_model: bool, opening: tuple) -> None:
    """The tab's events: the analysis (and the opening view), the course's SAE, and the helper events."""
    inputs = [tab.text, tab.model, tab.layer, tab.view]
    shown = tab.analysis
    nothing = dict.fromkeys(shown.names)

    # Named wrappers (not lambdas): their parameter names are the API's. A model still loading is waited for
    # here, with a moving progress bar, and only then does the work go to the background pool.
    def analyse(text, model, layer, view, progress=gr.Progress()):
        # early: a restarted server's early reader may read the text while the server's own copy loads
        wait_for_model(model, device, progress, allow_any_model, early=True)
        if (text, model, layer, view) == opening:  # the tab's own example, as a class clicks it: drawn once, kept
            return shown.keyed(in_background(opening_view, line="quick")(text, model, layer, view, device))
        # The forward pass is asked for here, so that texts sent at the same moment share one (lm_reading's batcher);
        # the figures are then drawn on the quick line.
        analysis = read_text(text, model, layer, device, progress, allow_any_model)
        return shown.keyed(
            in_background(analyse_text_event, line="quick")(
                text, model, layer, view, device, progress, allow_any_model, analysis
            )
        )

    def open_tab(text, model, layer, view, progress=gr.Progress()):
        """The default example's pictures as the page opens: kept from the warm-up, or waited for with a moving bar."""
        if model in lm.CATALOGUE and not lm.available(model):
            return shown.keyed({**nothing, "status": f"⚠️ {model_status(model)}"})
        try:
            load_model(model, device, progress, allow_any_model, early=True)
            keep = (text, model, layer, view) == opening
            return shown.keyed(in_background(opening_view, line="quick")(text, model, layer, view, device, keep=keep))
        except gr.Error as error:
            return shown.keyed({**nothing, "status": f"⚠️ {error.message}"})

    def train_sae(text, model, layer, n_features, l1_weight, epochs, seed, progress=gr.Progress()):
        wait_for_model(model, device, progress, allow_any_model)
        return tab.sae.keyed(
            in_background(train_sae_event)(
                text, model, layer, n_features, l1_weight, epochs, seed, device, progress, allow_any_model
            ),
        )

    outputs = shown()
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
    analyses = [
        tab.run.click(on_gpu(analyse), api_name="lm", **asking),
        tab.text.submit(on_gpu(analyse), api_visibility="private", **asking),
        tab.layer.release(on_gpu(analyse), api_visibility="private", show_progress="minimal", **asking),
    ]
    lm_features.wire(tab.features, blocks, device, tab.text, tab.model, after=analyses)
    lm_steer.wire(tab.steer, device, tab.model, tab.features.layer, tab.features.feature)
    lm_sae.wire(tab.pretrained, blocks, device, inputs=[tab.text, tab.model, tab.layer], after=analyses)
    tab.view.input(
        lambda t, m, l, v: switch_view(t, m, l, v, device, allow_any_model),
        inputs=inputs,
        outputs=shown["heatmap"],
        api_visibility="private",
        **serving.queue("lm"),
        show_progress="hidden",
    )
    # On a change of model only: the list also reports "input" when it is opened and closed again without a choice,
    # and the layer the learner had typed was then reset to the middle one.
    tab.model.change(
        lambda m, wanted: (*choose_model(m, device, allow_any_model, wanted), None),
        inputs=[tab.model, tab.link["wanted_layer"]],
        outputs=[tab.about, tab.layer, tab.link["wanted_layer"]],
        api_visibility="private",
        queue=False,
    )
    first = tab.model.value

    def from_link(values: dict) -> dict:
        """A link's controls; its layer also kept aside, where its model is not the one the page opens on."""
        moved = values.get("model", first) != first and "layer" in values
        return {**values, "wanted_layer": values["layer"]} if moved else values

    links.wire(
        blocks,
        tab.link,
        link_for(allow_any_model),
        apply=from_link,
        sets=("text", "model", "layer", "view", "wanted_layer"),
        on_screen=("text", "model", "layer", "view"),
        shown=lambda text, model, layer, view: {"text": text, "model": model, "layer": layer, "view": view},
        run_button="lm-run",
    )
    tab.train.click(
        on_gpu(train_sae, duration=120),
        inputs=[tab.text, tab.model, tab.layer, *tab.sae_controls],
        outputs=tab.sae(),
        api_name="lm_sae",
        **serving.queue("lm-sae"),
    )


def render(blocks: gr.Blocks, device: torch.device, allow_any_model: bool = False) -> SimpleNamespace:
    """Lay out the language-model tab inside the current ``gr.Tab`` and wire it; returns its main components."""
    opening = opening_inputs(device)
    _, first, _, _ = opening
    count = layer_count(first, device)
    warm_up(device)  # the default model loads while the page is served, and its opening view is drawn once
    tab = layout(first, count, allow_any_model)
    wire(tab, blocks, device, allow_any_model, opening)
    lm_concepts.render(device, tab.model, tab.layer, allow_any_model)

    # The network this tab uses, as the course shows it first (demos/networks.py): described once an analysis has loaded it.
    network_view(
        lambda m, l: networks.lm_html(m, l, device),
        inputs=[tab.model, tab.layer],
        triggers=[tab.model, tab.layer, tab.analysis["status"]],
        elem_id="lm-network",
    )
    return SimpleNamespace(text=tab.text, model=tab.model, layer=tab.layer)
