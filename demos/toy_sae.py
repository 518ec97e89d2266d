"""The toy-model tab's SAE section: train an SAE on the toy model's hidden layer and grade it against the true features.

The toy tab (``demos/toy.py``) lays this section out below its own and hands it its controls: the SAE reads
the toy model that ``/toy`` trains for the same n, m, S, r, steps and seed.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
import torch

from superpos_core import serving, toy, toy_sae
from superpos_core.figures import toy as toy_figures
from superpos_core.figures.base import to_rgb
from superpos_core.serving import in_background

from .common import MAX_SEED, Panels, note, number, on_gpu, whole_number
from .components import figure, figure_with_note

# The SAE controls' values when the tab opens: 2n latents for the opening n = 5 (the box follows n, see ``wire``).
DEFAULTS = {
    "latents": 10,
    "penalty": toy_sae.ToySAEConfig.penalty,
    "sae_steps": toy_sae.ToySAEConfig.steps,
    "sae_seed": 0,
}
TOY_CONTROLS = ("n", "m", "sparsity", "decay", "steps", "seed")  # the toy model's, as /toy reads them
CONTROLS = (*TOY_CONTROLS, "latents", "penalty", "sae_steps", "sae_seed")  # the /toy_sae API's inputs, in its order
SWEEP_CONTROLS = (*TOY_CONTROLS, "latents", "sae_steps", "sae_seed")  # the /toy_sae_sweep API's inputs
# What each event fills, by name, the JSON summary first (the API's order of outputs).
TRAINED = ("sae_summary", "sae_status", "sae_cosines", "sae_directions", "sae_directions_hint")
SWEPT = ("sae_sweep_summary", "sae_sweep_plot")

ReadToy = Callable[..., toy.ToyConfig]  # the toy tab's six controls -> its config, with the toy tab's messages

NOTES = {
    "cosines": "Each row is a true feature's direction Wᵢ, each column one SAE latent's decoder direction; the colour is their "
    f"cosine, red +1 (the same direction), blue −1 (opposite). Each feature is paired with one latent of its own (outlined), the "
    f"pairing with the largest total cosine; the partners come first, in feature order. A feature counts as recovered when its "
    f"outlined cell is at least {toy_sae.RECOVERED_AT} (solid outline; dashed below). A latent pointing at −Wᵢ scores −1: it does "
    "not count.",
    "directions": "Arrows: the true features Wᵢ, as in the picture above. Dashed lines: the SAE's decoder directions, each drawn "
    "at length 1; a black one is paired with the feature whose colour its dot has, a grey one with none. A recovered feature has "
    "a black dashed line along its arrow.",
    "sweep": "One SAE per penalty, all trained side by side in one run: the same toy model, the same starting weights and "
    "the same batches, so the penalty is all that differs. "
    "Red: features recovered (paired cosine ≥ 0.95). Blue: explained variance, about the mean (predicting the mean scores 0, a "
    "perfect reconstruction 1).",
}

INTRO = """### Train an SAE on its hidden layer
Here the true features are known: feature *i* is stored along Wᵢ. A sparse autoencoder sees only the hidden vectors h = Wx
(fresh samples of the same data) and tries to write each one as a few of its latents. Does it find the directions Wᵢ? Each
latent's decoder direction is compared with each Wᵢ, and each feature is paired with a latent of its own. The SAE's sparsity is an
L1 penalty on its activations, each weighted by its decoder direction's length (Adam with a decaying learning rate; latents that
never fire are re-initialised towards vectors it reconstructs badly, as in *Towards Monosemanticity*)."""


def _sae_config(latents, penalty, sae_steps, sae_seed) -> toy_sae.ToySAEConfig:
    """The SAE controls as sent: each read here, so that a message names the control (None latents: 2n)."""
    return toy_sae.ToySAEConfig(
        latents=None if latents in (None, "") else whole_number(latents, "SAE latents", 1, toy_sae.MAX_LATENTS),
        penalty=number(penalty, "Sparsity penalty"),
        steps=whole_number(sae_steps, "SAE steps", 1, toy_sae.MAX_SAE_STEPS),
        seed=whole_number(sae_seed, "SAE seed", 0, MAX_SEED),
    )


def _toy_then_sae(read_toy: ReadToy, toy_controls, sae_config, sae_runs: int, train_saes, progress, device):
    """Check every control, train the toy model ``/toy`` trains for them, then ``train_saes(toy_result, on_step)``.

    One progress bar over both: the toy model's steps, then ``sae_runs`` SAEs' steps. Returns (the toy model,
    what ``train_saes`` returned). A bad SAE setting is said before the toy model trains.
    """
    try:
        toy_config = read_toy(*toy_controls)
        checked, _notes = toy_config.checked()
        sae_steps = sae_config.checked(checked.n_features).steps
        share = checked.steps / (checked.steps + sae_runs * sae_steps)  # of the bar, for the toy model
        progress(0, desc="Toy model")
        toy_result = toy.train(
            toy_config,
            on_step=lambda done, total: progress(share * done / total, desc=f"Toy model: step {done:,} of {total:,}"),
            device=device,
        )
        return toy_result, train_saes(
            toy_result,
            lambda done, total: progress(share + (1 - share) * done / total, desc=f"SAE: step {done:,} of {total:,}"),
        )
    except toy.ToyInputError as error:
        raise gr.Error(str(error), print_exception=False) from None


def _status(graded: toy_sae.ToySAEResult) -> str:
    """One line of what was measured: features recovered, explained variance, L0 against the data's, dead latents."""
    c = graded.toy.config
    line = (
        f"**Recovered {graded.recovered} of {c.n_features} features** (paired cosine ≥ {toy_sae.RECOVERED_AT}) · "
        f"explained variance {graded.explained_variance:.3f} (about the mean) · L0 {graded.l0:.3f} latents per vector, "
        f"against {graded.true_l0:.3f} features per vector in the data · {graded.dead} of {graded.config.latents} latents dead."
    )
    notes = graded.toy.notes + graded.notes
    return line + ("\n\n" + " ".join(f"⚠️ {n}" for n in notes) if notes else "")


def train_toy_sae(
    read_toy: ReadToy,
    n,
    m,
    sparsity,
    decay,
    steps,
    seed,
    latents,
    penalty,
    sae_steps,
    sae_seed,
    progress=gr.Progress(),
    device: torch.device = torch.device("cpu"),
):
    """``api_name="toy_sae"``: train the toy model, then an SAE on its hidden layer; the grading and figures, by name (``TRAINED``)."""
    sae_config = _sae_config(latents, penalty, sae_steps, sae_seed)
    toy_result, graded = _toy_then_sae(
        read_toy,
        (n, m, sparsity, decay, steps, seed),
        sae_config,
        1,
        lambda trained, on_step: toy_sae.train_toy_sae(trained, sae_config, on_step, device),
        progress,
        device,
    )
    progress(1.0, desc="Drawing the figures")
    two_dimensions = toy_result.config.m_hidden == 2
    directions = (
        to_rgb(
            toy_figures.toy_sae_directions(toy_result.W, graded.decoder_directions, graded.partner, graded.recovered)
        )
        if two_dimensions
        else None
    )
    return {
        "sae_summary": graded.summary(),
        "sae_status": _status(graded),
        "sae_cosines": to_rgb(toy_figures.toy_sae_cosines(graded.cosines, graded.partner, toy_sae.RECOVERED_AT)),
        "sae_directions": gr.update(value=directions, visible=two_dimensions),
        "sae_directions_hint": gr.update(visible=not two_dimensions),
    }


def sweep_toy_sae(
    read_toy: ReadToy,
    n,
    m,
    sparsity,
    decay,
    steps,
    seed,
    latents,
    sae_steps,
    sae_seed,
    progress=gr.Progress(),
    device: torch.device = torch.device("cpu"),
):
    """``api_name="toy_sae_sweep"``: one SAE per penalty of ``toy_sae.SWEEP_PENALTIES``; the summary and plot (``SWEPT``)."""
    sae_config = _sae_config(latents, 0.0, sae_steps, sae_seed)
    toy_result, swept = _toy_then_sae(
        read_toy,
        (n, m, sparsity, decay, steps, seed),
        sae_config,
        len(toy_sae.SWEEP_PENALTIES),
        lambda trained, on_step: toy_sae.penalty_sweep(trained, sae_config, on_step=on_step, device=device),
        progress,
        device,
    )
    progress(1.0, desc="Drawing the figure")
    plot = toy_figures.toy_sae_sweep(
        swept.penalties, swept.recovered, swept.explained_variance, toy_result.config.n_features, toy_sae.RECOVERED_AT
    )
    return {"sae_sweep_summary": swept.summary(), "sae_sweep_plot": to_rgb(plot)}


def error_line(read_toy: ReadToy, *controls, what: str = "No SAE trained") -> str:
    """What the SAE status says after a run failed: the message its controls get, in place of the last result."""
    toy_controls, sae_controls = controls[:6], controls[6:]
    try:
        config = read_toy(*toy_controls)
        config.checked()
        if len(sae_controls) == 3:  # the sweep's: latents, SAE steps, SAE seed (no penalty)
            sae_controls = (sae_controls[0], 0.0, *sae_controls[1:])
        _sae_config(*sae_controls).checked(config.n_features)
    except (gr.Error, toy.ToyInputError) as error:
        return f"⚠️ **{what}**: {getattr(error, 'message', None) or error}"
    return f"⚠️ **{what}**: the run failed. Try again, or with fewer steps."


def twice(n):
    """The latents box's value for ``n`` features: 2n (or left as it is while n is no whole number)."""
    try:
        return 2 * whole_number(n, "Features n", 1, toy.MAX_FEATURES)
    except gr.Error:
        return gr.skip()


def _failure_status(read_toy: ReadToy, what: str):
    """The event that follows a failed run: the SAE status line says why (``error_line``)."""

    def failed(*controls):
        return {"sae_status": error_line(read_toy, *controls, what=what)}

    return failed


def layout() -> Panels:
    """Lay out the SAE section inside the toy tab (below its own controls, which it reads); its components, by name."""
    gr.Markdown(INTRO)
    with gr.Row():
        latents = gr.Number(
            value=DEFAULTS["latents"],
            precision=0,
            label=f"SAE latents (2n when n is moved; from n to {toy_sae.MAX_LATENTS})",
            elem_id="toy-sae-latents",
        )
        penalty = gr.Number(
            value=DEFAULTS["penalty"],
            minimum=0,
            step=0.01,
            label="Sparsity penalty (L1 weight)",
            elem_id="toy-sae-penalty",
        )
        sae_steps = gr.Slider(
            100,
            toy_sae.MAX_SAE_STEPS,
            value=DEFAULTS["sae_steps"],
            step=100,
            label="SAE steps",
            elem_id="toy-sae-steps",
        )
        sae_seed = gr.Number(value=DEFAULTS["sae_seed"], precision=0, label="SAE seed")
    with gr.Row():
        sae_button = gr.Button("Train an SAE on the hidden layer", variant="primary")
        sae_sweep_button = gr.Button(f"Sweep {len(toy_sae.SWEEP_PENALTIES)} penalties")
    sae_status = gr.Markdown(elem_id="toy-sae-status")
    with gr.Row():
        sae_cosines = figure_with_note(
            "Cosine of each true feature with each latent", NOTES["cosines"], elem_id="toy-sae-cosines", column=True
        )
        with gr.Column():
            sae_directions = figure("The SAE's directions over the features (m = 2)", elem_id="toy-sae-directions")
            sae_directions_hint = gr.Markdown(
                "The directions picture needs exactly two hidden dimensions: set m = 2.", visible=False
            )
            note(NOTES["directions"])
    with gr.Accordion("Numbers behind the pictures (the /toy_sae API's JSON)", open=False):
        sae_summary = gr.JSON(label="SAE summary", elem_id="toy-sae-json")
    sae_sweep_plot = figure_with_note(
        "Features recovered and explained variance against the penalty", NOTES["sweep"], elem_id="toy-sae-sweep"
    )
    with gr.Accordion("Penalty sweep numbers (the /toy_sae_sweep API's JSON)", open=False):
        sae_sweep_summary = gr.JSON(label="Penalty sweep summary")
    return Panels(
        latents=latents,
        penalty=penalty,
        sae_steps=sae_steps,
        sae_seed=sae_seed,
        sae_button=sae_button,
        sae_sweep_button=sae_sweep_button,
        sae_status=sae_status,
        sae_cosines=sae_cosines,
        sae_directions=sae_directions,
        sae_directions_hint=sae_directions_hint,
        sae_summary=sae_summary,
        sae_sweep_plot=sae_sweep_plot,
        sae_sweep_summary=sae_sweep_summary,
    )


def wire(panels: Panels, read_toy: ReadToy, device: torch.device) -> None:
    """The SAE section's events (``/toy_sae``, ``/toy_sae_sweep``); ``panels`` holds the toy tab's controls and this section's."""

    # preprocess=False, as /toy: the values arrive as sent, and our checks name the control.
    # Named wrappers (not lambdas): their parameter names are the API's.
    @panels.filled_by
    @in_background
    def train_sae(n, m, sparsity, decay, steps, seed, latents, penalty, sae_steps, sae_seed, progress=gr.Progress()):
        controls = (n, m, sparsity, decay, steps, seed, latents, penalty, sae_steps, sae_seed)
        return train_toy_sae(read_toy, *controls, progress=progress, device=device)

    @panels.filled_by
    @in_background
    def sweep_sae(n, m, sparsity, decay, steps, seed, latents, sae_steps, sae_seed, progress=gr.Progress()):
        controls = (n, m, sparsity, decay, steps, seed, latents, sae_steps, sae_seed)
        return sweep_toy_sae(read_toy, *controls, progress=progress, device=device)

    # Moving n sets the latents to 2n, the default (.input: only a person's change; a typed count then stays).
    panels["n"].input(
        twice,
        inputs=panels["n"],
        outputs=panels["latents"],
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )
    errors = dict(api_visibility="private", queue=False, preprocess=False, show_progress="hidden")
    for button, event, inputs, outputs, api_name, queue, what in (
        ("sae_button", train_sae, CONTROLS, TRAINED, "toy_sae", "toy-sae", "No SAE trained"),
        (
            "sae_sweep_button",
            sweep_sae,
            SWEEP_CONTROLS,
            SWEPT,
            "toy_sae_sweep",
            "toy-sae-sweep",
            "The sweep did not run",
        ),
    ):
        panels[button].click(
            on_gpu(event, duration=120),
            inputs=panels(*inputs),
            outputs=panels(*outputs),
            api_name=api_name,
            **serving.queue(queue),
            preprocess=False,
        ).failure(
            # API callers get the error itself; in the page the SAE status line says it, the other outputs stay.
            panels.filled_by(_failure_status(read_toy, what)),
            inputs=panels(*inputs),
            outputs=panels("sae_status", *outputs),
            **errors,
        )
