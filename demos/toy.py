"""The toy-model tab: superposition from first principles, trained live."""

from __future__ import annotations

import copy
import math

import gradio as gr
import numpy as np
import torch

from superpos_core import network, serving, toy
from superpos_core.figures import toy as toy_figures
from superpos_core.figures.base import to_rgb
from superpos_core.serving import Kept, Recent, in_background

from . import links
from . import toy_sae as toy_sae_section
from .common import MAX_SEED, Panels, network_view, note, number, on_gpu, whole_number
from .components import figure, figure_with_note

# The controls' values when the tab opens: the pentagon, five features in two dimensions.
DEFAULTS = {"n": 5, "m": 2, "sparsity": 0.99, "decay": 1.0, "steps": 1000, "seed": 0}
LEVEL_RANGE = (0.0, 3.0)  # the log-scale slider's k, for S = 1 - 10⁻ᵏ from 0 to 0.999
OPENING: Kept[dict] = Kept()  # the defaults' trained model, once per (device, controls) for the whole process
# What each event fills, by name, the JSON summary first (the API's order of outputs).
TRAINED = ("summary", "status", "gram", "bars", "dimensionality", "arrows", "arrows_hint")
SWEPT = ("sweep_summary", "sweep_plot")
CONTROLS = ("n", "m", "sparsity", "decay", "steps", "seed")  # the /toy API's inputs, in its order

NOTES = {
    "gram": "Each cell is how much two features' directions overlap (WᵀW). A red diagonal with white elsewhere: every kept feature "
    "has a direction of its own. Off-diagonal colour: features share directions, which is superposition. The bias b on the right "
    "goes negative when the model needs to filter out the small interference from other features.",
    "bars": "Bar height: how strongly each feature is stored (about 1 = kept, 0 = dropped). Bar colour: how much of other features lies "
    "along its direction. Dark bars have a direction to themselves; bright bars are in superposition.",
    "dimensionality": "Dᵢ is the share of a hidden dimension that feature i gets: 1 on its own axis, ¾ in a tetrahedron, ⅔ in a triangle, "
    "½ in an antipodal pair, ⅖ in a pentagon, ⅜ in a square antiprism (⅓ in a hexagon, in a plane). Features per dimension is "
    "‖W‖²_F / m: each feature counts its squared length. Kept features grow longer than 1 to beat the bias, so a trained pentagon "
    "reads about 3.4 rather than the 2.5 of five unit arrows.",
    "arrows": "With two hidden dimensions every feature is an arrow in the plane. Dense features of falling importance (r < 1): two "
    "arrows at right angles, the rest vanish. Dense features of equal importance (r = 1) are all alike, so the model keeps any 2-dimensional "
    "slice of them: several shorter arrows, none on its own axis, still only two features' worth. Sparse features with equal importance: "
    "five arrows 72° apart, a pentagon. Five features in two dimensions.",
    "sweep": "One training run of 20 models at once, from dense (left) to very sparse (right). Left: features with ‖Wᵢ‖ > 0.5, fully or "
    "partly stored. Right: features per dimension, ‖W‖²_F / m; above the dotted line at 1 the model packs more than one feature's worth "
    "into each dimension, which is superposition. As the features get sparser the model stops dropping features and starts packing them. "
    "With r = 1 dense features are all alike: the model spreads its m dimensions thinly over several of them, so the left count can pass m "
    "while the right stays at 1, with no superposition. r = 0.9 gives the crispest picture.",
}

EXPLANATION = """### Why superposition happens
A network has fewer neurons than the world has features. If features were always present together, storing two in one direction
would make them collide all the time, so the model keeps only the most important ones. But most features are *sparse*: any one
of them is rarely active. Then two features sharing a direction rarely collide, and the ReLU can clean up the small overlap. So
the model stores more features than it has dimensions, in superposition.

You saw this in a real network on the **Draw a digit** tab: fc1's 128 neurons each fire for several digits (polysemanticity), and
its weights keep about 112 directions in use. The ResNet and language-model tabs look for the same signature in far larger networks.
"""


def _log_sparsity(level: float) -> float:
    """The sparsity slider's position k -> S = 1 - 10⁻ᵏ (k = 0 is dense, k = 3 is S = 0.999)."""
    return round(1.0 - 10.0 ** (-float(level)), 6)


def _level(sparsity) -> float | None:
    """S -> the log-scale slider's k = -log₁₀(1 - S), held to the slider's range; None if S is no usable number."""
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value) or not 0 <= value < 1:
        return None
    level = -math.log10(1.0 - value)
    return round(min(max(level, LEVEL_RANGE[0]), LEVEL_RANGE[1]), 4)


def sparsity_to_level(sparsity):
    """The S box was typed in: move the slider to match (or leave it where it is while S is not a number yet)."""
    level = _level(sparsity)
    return gr.skip() if level is None else level


def read_controls(n, m, sparsity, decay, steps, seed) -> toy.ToyConfig:
    """The controls as sent (``preprocess=False``): each read here, so that a message names the control."""
    return toy.ToyConfig(
        n_features=whole_number(n, "Features n"),
        m_hidden=whole_number(m, "Hidden dimensions m"),
        sparsity=number(sparsity, "Sparsity S"),
        importance_decay=number(decay, "Importance decay r"),
        steps=number(steps, "Training steps") if steps is not None else 0,
        seed=whole_number(seed, "Seed", -MAX_SEED, MAX_SEED),
    )


def _verdict(result: toy.ToyResult) -> str:
    """One sentence on what the trained W shows, decided from its geometry (``toy.in_superposition``)."""
    c, norms = result.config, result.feature_norms
    dims = f"{c.m_hidden} dimension{'s' * (c.m_hidden > 1)}"
    kept, per_dimension = toy.represented(result.W), result.features_per_dimension
    if result.superposition:
        return (
            f"**Superposition**: {per_dimension:.2f} features per dimension (‖W‖²_F / m, clearly above 1) — {kept} of "
            f"{c.n_features} features stored (‖Wᵢ‖ > 0.5) in **{dims}**, sharing directions"
        )
    verdict = f"**No superposition**: {per_dimension:.2f} features per dimension (‖W‖²_F / m, at most about 1): no more than one feature's worth per dimension"
    partial = norms[norms > 0.5]
    if kept > c.m_hidden:
        verdict += (
            f". The {kept} features with ‖Wᵢ‖ > 0.5 are each only partly stored (norms {partial.min():.2f} to {partial.max():.2f}): "
            f"the model keeps a {c.m_hidden}-dimensional slice spread over them, which no feature has to itself"
        )
    else:
        verdict += f" — {kept} of {c.n_features} features stored (‖Wᵢ‖ > 0.5) in **{dims}**, the rest dropped"
    return verdict


def error_line(n, m, sparsity, decay, steps, seed, what: str = "Not trained") -> str:
    """What the status says after a run failed: the message the controls get, in place of the last result."""
    try:
        read_controls(n, m, sparsity, decay, steps, seed).checked()
    except (gr.Error, toy.ToyInputError) as error:
        return f"⚠️ **{what}**: {getattr(error, 'message', None) or error}"
    return f"⚠️ **{what}**: the run failed. Try again, or with fewer steps."


def train_toy(n, m, sparsity, decay, steps, seed, progress=gr.Progress(), device: torch.device = torch.device("cpu")):
    """The main event (``api_name="toy"``): train the toy model; its summary and figures, by name (``TRAINED``)."""
    config = read_controls(n, m, sparsity, decay, steps, seed)
    progress(0, desc="Training")
    try:
        result = toy.train(
            config,
            on_step=lambda done, total: progress(done / total, desc=f"Step {done:,} of {total:,}"),
            device=device,
        )
    except toy.ToyInputError as error:
        raise gr.Error(str(error), print_exception=False) from None
    progress(1.0, desc="Drawing the figures")
    W, c = result.W, result.config
    status = _verdict(result) + f" (sparsity {c.sparsity:g}, loss {result.loss:.4g}, best of {c.restarts} seeds)."
    if result.notes:
        status += "\n\n" + " ".join(f"⚠️ {note}" for note in result.notes)
    arrows = to_rgb(toy_figures.toy_arrows(W)) if c.m_hidden == 2 else None
    return {
        "summary": result.summary(),
        "status": status,
        "gram": to_rgb(toy_figures.toy_gram(W, result.b)),
        "bars": to_rgb(toy_figures.toy_feature_bars(result.feature_norms, result.interference)),
        "dimensionality": to_rgb(toy_figures.toy_dimensionality(result.dimensionality, result.features_per_dimension)),
        "arrows": gr.update(value=arrows, visible=arrows is not None),
        "arrows_hint": gr.update(visible=arrows is None),
    }


def sweep_toy(n, m, decay, steps, seed, progress=gr.Progress(), device: torch.device = torch.device("cpu")):
    """``api_name="toy_sweep"``: one batched run over 20 sparsities; its summary and figure, by name (``SWEPT``)."""
    config = read_controls(n, m, 0.0, decay, steps, seed)
    progress(0, desc="Training 20 sparsities at once")
    try:
        results = toy.sweep(
            config,
            on_step=lambda done, total: progress(done / total, desc=f"Step {done:,} of {total:,}"),
            device=device,
        )
    except toy.ToyInputError as error:
        raise gr.Error(str(error), print_exception=False) from None
    progress(1.0, desc="Measuring the 20 models and drawing the figure")
    sparsities = np.array([r.config.sparsity for r in results])
    kept = [toy.represented(r.W) for r in results]
    per_dimension = [r.features_per_dimension for r in results]
    summary = {
        "n_features": config.n_features,
        "m": config.m_hidden,
        "sparsity": [round(float(s), 6) for s in sparsities],
        "represented": kept,
        "features_per_dimension": [round(float(v), 5) for v in per_dimension],
        "superposition": [r.superposition for r in results],
    }
    figure = toy_figures.toy_sweep(sparsities, kept, per_dimension, config.n_features, config.m_hidden)
    return {"sweep_summary": summary, "sweep_plot": to_rgb(figure)}


def _opening(device: torch.device):
    """The kept opening model's key (everything it depends on) and how to make it, reporting how far it has got."""
    key = (str(torch.device(device)), tuple(sorted(DEFAULTS.items())))

    return key, lambda: train_toy(**DEFAULTS, progress=OPENING.reporter(key), device=device)


def opening_result(device: torch.device = torch.device("cpu"), progress=None):
    """The defaults' trained model and figures, computed once per process and device and kept (``OPENING``).

    What every visitor sees when the tab opens; started in the background when the tab is built, so the
    first visitor does not wait for it, and one who comes sooner waits with a progress bar that follows
    the training. A failure is not kept: the next visitor trains it again.
    """
    key, make = _opening(device)
    kept = OPENING.get_or_make(key, make, on_wait=OPENING.stage_shown_by(key, progress))
    return copy.deepcopy(kept)  # gradio may change the updates it is handed; the kept ones stay as they are


# (device, controls) -> train_toy's outputs: identical requests at the same moment (a class clicking one example)
# train once, and a recent one is answered at once. Seeded, so the same controls always give the same model.
_recent: Recent[dict] = Recent(8)


def shared_result(n, m, sparsity, decay, steps, seed, progress=None, device: torch.device = torch.device("cpu")):
    """``train_toy``'s outputs, trained once for identical controls (the defaults' from ``opening_result``)."""
    config = read_controls(n, m, sparsity, decay, steps, seed)  # a wrong control is refused here, naming it
    if config == read_controls(**DEFAULTS):
        return opening_result(device, progress)
    key = (str(torch.device(device)), config)  # a frozen dataclass: hashable, equal when every control is
    kept = _recent.get_or_make(key, lambda: train_toy(n, m, sparsity, decay, steps, seed, progress, device))
    return copy.deepcopy(kept)  # gradio may change the updates it is handed; the kept ones stay as they are


def start_opening(device: torch.device = torch.device("cpu")) -> None:
    """Begin computing ``opening_result`` in the background (nothing happens if it is kept or under way)."""
    OPENING.start(*_opening(device), name="superpos-toy-opening")


def network_html(n, m) -> str:
    """The toy model for these controls as a module list (``toy.ToyModel``), its hidden layer marked."""
    try:
        model = toy.ToyModel(
            whole_number(n, "Features n", 1, toy.MAX_FEATURES),
            whole_number(m, "Hidden dimensions m", 1, toy.MAX_HIDDEN),
        )
    except gr.Error as error:
        return f"<p>⚠️ {error.message}</p>"
    rows = network.describe(model, torch.zeros(1, model.hidden.in_features), captured=["hidden"])
    return network.as_html(rows, highlight="hidden", printed=repr(model)) + (
        "<p>The tab draws <code>hidden.weight</code>, which is W, and <code>readout.bias</code>, which is b. The readout uses W again, "
        "transposed (tied weights), so W is counted once.</p>"
    )


def check_link(values: dict) -> None:
    """Refuse a link's toy settings that the tab would not run as they are (see ``links.TabLink``)."""
    config, notes = read_controls(**{**DEFAULTS, **values}).checked()
    if notes:
        raise ValueError(" ".join(notes))
    if config.n_features < 2:
        raise ValueError(f"n must be at least 2 here (got {config.n_features}): one feature has nothing to share with")
    if config.steps < 100:
        raise ValueError(f"steps must be at least 100 here (got {config.steps})")


# ?tab=toy&n=6&m=2&S=0.99&r=1&steps=2000&seed=0: S and r as the course writes them; the API's names read too.
LINK = links.TabLink(
    "toy",
    (
        links.Param("n", "n", int),
        links.Param("m", "m", int),
        links.Param("S", "sparsity", float, ("sparsity",)),
        links.Param("r", "decay", float, ("decay",)),
        links.Param("steps", "steps", int),
        links.Param("seed", "seed", int),
    ),
    check_link,
)


def layout() -> Panels:
    """Lay out the toy-model tab inside the current ``gr.Tab``; its components, by name."""
    gr.Markdown(
        "## Toy model of superposition\nSqueeze *n* features through *m* < *n* hidden dimensions and read them back: "
        "x′ = ReLU(WᵀWx + b). Each feature is zero with probability *S* and uniform in [0, 1] otherwise; feature *i* matters rⁱ as much "
        "as feature 0. Train it and see which features survive, and how they share the space (Elhage et al., 2022, *Toy Models of Superposition*)."
    )
    with gr.Row():
        n = gr.Slider(2, toy.MAX_FEATURES, value=DEFAULTS["n"], step=1, label="Features n", elem_id="toy-n")
        m = gr.Slider(1, toy.MAX_HIDDEN, value=DEFAULTS["m"], step=1, label="Hidden dimensions m", elem_id="toy-m")
        decay = gr.Slider(
            0.5, 1.0, value=DEFAULTS["decay"], step=0.01, label="Importance decay r (feature i matters rⁱ)"
        )
    with gr.Row():
        level = gr.Slider(
            *LEVEL_RANGE,
            value=_level(DEFAULTS["sparsity"]),
            step=0.05,
            label="Sparsity, log scale: 1 − S = 10^(−k)",
            elem_id="toy-level",
        )
        sparsity = gr.Number(
            value=DEFAULTS["sparsity"],
            label="Sparsity S (chance a feature is 0)",
            minimum=0,
            maximum=0.999,
            step=0.001,
            elem_id="toy-sparsity",
        )
        steps = gr.Slider(
            100, toy.MAX_STEPS, value=DEFAULTS["steps"], step=100, label="Training steps", elem_id="toy-steps"
        )
        seed = gr.Number(value=DEFAULTS["seed"], precision=0, label="Seed")
    with gr.Row():
        train_button = gr.Button("Train the toy model", variant="primary", elem_id="toy-train")
        sweep_button = gr.Button("Sweep 20 sparsities")
    status = gr.Markdown(elem_id="toy-status")
    link = links.layout("toy")
    with gr.Row():
        gram = figure_with_note("WᵀW and the bias", NOTES["gram"], column=True)
        bars = figure_with_note("Which features are kept, and which share", NOTES["bars"], column=True)
    with gr.Row():
        dimensionality = figure_with_note("Feature dimensionality", NOTES["dimensionality"], column=True)
        with gr.Column():
            arrows = figure("Features in the hidden plane (m = 2)")
            arrows_hint = gr.Markdown(
                "The arrow picture needs exactly two hidden dimensions: set m = 2.", visible=False
            )
            note(NOTES["arrows"])
    with gr.Accordion("Numbers behind the pictures (the /toy API's JSON)", open=False):
        summary = gr.JSON(label="Summary", elem_id="toy-json")
    sweep_plot = figure_with_note("The phase change: represented features against sparsity", NOTES["sweep"])
    with gr.Accordion("Sweep numbers (the /toy_sweep API's JSON)", open=False):
        sweep_summary = gr.JSON(label="Sweep summary")
    gr.Markdown(EXPLANATION)
    network_view(
        network_html,
        inputs=[n, m],
        triggers=[n, m],
        initial=network_html(DEFAULTS["n"], DEFAULTS["m"]),
        elem_id="toy-network",
    )
    return Panels(
        n=n,
        m=m,
        sparsity=sparsity,
        decay=decay,
        steps=steps,
        seed=seed,
        level=level,
        train_button=train_button,
        sweep_button=sweep_button,
        status=status,
        gram=gram,
        bars=bars,
        dimensionality=dimensionality,
        arrows=arrows,
        arrows_hint=arrows_hint,
        summary=summary,
        sweep_plot=sweep_plot,
        sweep_summary=sweep_summary,
        **link,
    )


def wire(blocks: gr.Blocks, panels: Panels, device: torch.device) -> None:
    """The toy-model tab's events: training (``/toy``), the sweep (``/toy_sweep``), the opening view, the S controls."""
    level, sparsity = panels["level"], panels["sparsity"]
    # The slider and the S box always agree: moving either sets the other (.input: only a person's change, so no loop).
    level.input(
        _log_sparsity, inputs=level, outputs=sparsity, api_visibility="private", queue=False, show_progress="hidden"
    )
    sparsity.input(
        sparsity_to_level,
        inputs=sparsity,
        outputs=level,
        api_visibility="private",
        queue=False,
        show_progress="hidden",
        preprocess=False,
    )

    # preprocess=False: the controls' values arrive as sent, so that our checks (which name the
    # control, and cap the steps rather than refuse them) answer API callers, not gradio's bounds.
    # Named wrappers (not lambdas): their parameter names are the API's.
    @panels.filled_by
    @in_background(line="quick")
    def train(n, m, sparsity, decay, steps, seed, progress=gr.Progress()):
        return shared_result(n, m, sparsity, decay, steps, seed, progress, device)

    @panels.filled_by
    @in_background
    def sweep(n, m, decay, steps, seed, progress=gr.Progress()):
        return sweep_toy(n, m, decay, steps, seed, progress, device)

    # API callers get the error itself. In the page the status line then says it, in place of the last result; the
    # failed run's other outputs are left as they are (skipped), which clears their Error badges.
    errors = dict(api_visibility="private", queue=False, preprocess=False, show_progress="hidden")
    panels["train_button"].click(
        on_gpu(train),
        inputs=panels(*CONTROLS),
        outputs=panels(*TRAINED),
        api_name="toy",
        **serving.queue("toy"),
        preprocess=False,
    ).failure(
        panels.filled_by(lambda *controls: {"status": error_line(*controls)}),
        inputs=panels(*CONTROLS),
        outputs=panels(*TRAINED),
        **errors,
    )
    swept_by = ("n", "m", "decay", "steps", "seed")
    panels["sweep_button"].click(
        on_gpu(sweep, duration=120),
        inputs=panels(*swept_by),
        outputs=panels(*SWEPT),
        api_name="toy_sweep",
        **serving.queue("toy-sweep"),
        preprocess=False,
    ).failure(
        panels.filled_by(
            lambda n, m, decay, steps, seed: {
                "status": error_line(n, m, 0.0, decay, steps, seed, what="The sweep did not run")
            }
        ),
        inputs=panels(*swept_by),
        outputs=panels("status", *SWEPT),
        **errors,
    )
    # The opening model is kept once per process (started here, in the background), so it is there when a visitor comes.
    start_opening(device)
    links.opening(
        blocks, panels, LINK, lambda progress: opening_result(device, progress), TRAINED, serving.queue("toy-opening")
    )
    links.wire(
        blocks,
        panels,
        LINK,
        apply=lambda values: {**values, "level": _level(values["sparsity"])} if "sparsity" in values else values,
        sets=(*CONTROLS, "level"),
        on_screen=CONTROLS,
        shown=lambda *values: dict(zip(CONTROLS, values)),
        run_button="toy-train",
    )


def render(blocks: gr.Blocks, device: torch.device = torch.device("cpu")) -> None:
    """Lay out the toy-model tab inside the current ``gr.Tab`` and wire its events, then its SAE section (``demos/toy_sae.py``)."""
    panels = layout()
    wire(blocks, panels, device)
    # The SAE section reads this tab's six controls, through this tab's own checks of them.
    section = toy_sae_section.layout()
    toy_sae_section.wire(Panels(**panels.components, **section.components), read_controls, device)
