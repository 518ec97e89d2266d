"""The language-model tab's steering: a feature of the SAE turned up (or down) while the model writes, the prompt
continued with and without it side by side as the tokens come, and what moved in the next-token distribution."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import gradio as gr
import torch

from superpos_core import serving
from superpos_core.lm import steering
from superpos_core.serving import in_background

from .common import Panels, note, number, on_gpu, whole_number
from .components import CheckedNumber, CheckedSlider, ChoiceRadio
from .lm_features import feature_sae_for, token_column
from .lm_reading import load_model, wait_for_model

PROMPT = "Yesterday I went to the market and"
STRENGTH, MAX_STRENGTH = 1.0, 10.0
TOKENS = 32
MAX_SEED = 2**32 - 1
DECODINGS = ("greedy (the likeliest token each time)", "sampled (temperature 1, from the seed)")
STOPS = serving.StopRequests()  # the Stop button's requests, by browser session
WRITING = "▌"  # after a continuation still being written
NOTE = (
    "Both continuations start from the same prompt and the same decoding; the only difference is the feature's "
    "decoder direction, added to the residual stream at the SAE's layer on every token after the BOS, scaled so that "
    "strength 1 is what the feature itself adds where it fires typically strongly. Around strength 1 what the "
    "feature stands for tends to show; much beyond, the added vector outweighs the stream (both norms are in the "
    "status line) and the model often falls into repeating a token."
)


def _decoding(seed) -> str:
    return "greedy decoding (the likeliest token each time)" if seed is None else f"sampling with seed {seed}"


def steer_event(
    prompt,
    model: str,
    layer,
    feature,
    strength,
    tokens,
    seed,
    device: torch.device = torch.device("cpu"),
    progress=gr.Progress(),
    stopped: Callable[[], bool] = lambda: False,
):
    """``api_name="lm_steer"`` (a generator: the summary grows as the tokens come).

    Yields {"summary": the /lm_steer summary so far, "status", "baseline", "steered": the two continuations, "shift":
    the next tokens that gained and lost probability}; the last one has ``summary["complete"]``, unless
    ``stopped()`` turned true between two tokens (the Stop button): the last one then says where it stopped.
    """
    found = feature_sae_for(model, layer, device, progress)
    feature = whole_number(feature, "The feature", 0, found.d_sae - 1)
    strength = number(strength, "The strength")
    tokens = whole_number(tokens, "The number of new tokens", 1, steering.MAX_TOKENS)
    seed = None if seed is None else whole_number(seed, "The seed", 0, MAX_SEED)
    loaded = load_model(model, device, progress)
    progress(0.5, desc=f"Reading the prompt with {loaded.title}, with and without feature {feature}")
    try:
        steps = steering.steer_steps(found, loaded, prompt, feature, strength, tokens, seed)
        summary = next(steps)
    except (steering.SteeringError, ValueError) as error:
        raise gr.Error(str(error), print_exception=False, title="Cannot steer") from None
    activation = summary["feature_activation"]
    told = (
        f"Feature **#{feature}** at strength **{strength:g}**: adding {strength:g} × its typical strong activation "
        f"({summary['typical_activation']:.2f}) × its decoder direction at layer {found.layer}, a vector of norm "
        f"{summary['added_norm']:.1f} (the prompt's last token's stream there has norm {summary['stream_norm']:.1f}). "
        f"On that token the feature reads **{activation['baseline']:.2f}** without steering and "
        f"**{activation['steered']:.2f}** with it. The next token's distribution moved by KL = "
        f"**{summary['kl']:.3f}** nats."
    )
    shift = (
        "**The next token after the prompt: gained and lost most probability** (Δp, steered minus baseline)\n\n"
        f"| gained | lost |\n|---|---|\n| {token_column(summary['gained'], '{:+.3f}') or '—'} | "
        f"{token_column(summary['lost'], '{:+.3f}') or '—'} |"
    )
    labels = {
        "baseline": gr.Textbox(value=WRITING, label="Without steering (the baseline)"),
        "steered": gr.Textbox(value=WRITING, label=f"With feature #{feature} at strength {strength:g}"),
    }
    yield {"summary": summary, "status": f"{told}\n\nWriting {tokens} new tokens each…", "shift": shift, **labels}
    while not summary["complete"]:
        if stopped():  # between two tokens: the hook is off the model, and what is written stays
            steps.close()
            yield {
                "summary": summary,
                "status": f"{told}\n\n⏹ Stopped after {summary['generated']} of {tokens} new tokens each: the "
                "continuations are as far as they had got.",
                "baseline": summary["baseline"],
                "steered": summary["steered"],
            }
            return
        summary = next(steps)
        writing = "" if summary["complete"] else WRITING
        done = (
            f"Done: {summary['generated']} new tokens each, {_decoding(seed)}."
            if summary["complete"]
            else f"Writing: {summary['generated']} of {tokens} new tokens each, {_decoding(seed)}. **Stop** keeps "
            "what is written."
        )
        yield {
            "summary": summary,
            "status": f"{told}\n\n{done}",
            "baseline": summary["baseline"] + writing,
            "steered": summary["steered"] + writing,
        }


# --- layout, then wiring ---------------------------------------------------------------------------


def layout() -> SimpleNamespace:
    """The section's components, in the current Blocks, under a feature's dashboard."""
    gr.Markdown(
        "#### Steer the model with this feature\nA dashboard says what makes a feature fire; steering shows what it "
        "*does*. Turn the feature up (or, with a negative strength, down) while the model continues your prompt."
    )
    prompt = gr.Textbox(value=PROMPT, label="Prompt", lines=2, max_lines=6, elem_id="lm-steer-prompt")
    with gr.Row():
        strength = CheckedSlider(
            -MAX_STRENGTH,
            MAX_STRENGTH,
            value=STRENGTH,
            step=0.25,
            label="Strength (× the feature's typical strong activation; negative turns it down)",
            elem_id="lm-steer-strength",
        )
        tokens = CheckedSlider(
            1,
            steering.MAX_TOKENS,
            value=TOKENS,
            step=1,
            label=f"New tokens (at most {steering.MAX_TOKENS})",
            elem_id="lm-steer-tokens",
        )
    with gr.Row():
        decoding = ChoiceRadio(list(DECODINGS), value=DECODINGS[0], label="Decoding", elem_id="lm-steer-decoding")
        seed = CheckedNumber(
            value=0,
            label="Seed (for sampling: the same for both runs)",
            precision=0,
            minimum=0,
            maximum=MAX_SEED,
            elem_id="lm-steer-seed",
        )
    with gr.Row():
        run = gr.Button("Steer with this feature", variant="primary", elem_id="lm-steer-run")
        stop = gr.Button("Stop", variant="stop", elem_id="lm-steer-stop")
    status = gr.Markdown(
        "Open a feature's dashboard above, then press **Steer with this feature**: the model continues the prompt "
        "twice, without and with it, side by side.",
        elem_id="lm-steer-status",
    )
    with gr.Row():
        baseline = gr.Textbox(
            label="Without steering (the baseline)",
            placeholder="The model's own continuation appears here, token by token.",
            lines=4,
            interactive=False,
            elem_id="lm-steer-baseline",
        )
        steered = gr.Textbox(
            label="With the feature turned up",
            placeholder="The steered continuation appears here, token by token.",
            lines=4,
            interactive=False,
            elem_id="lm-steer-steered",
        )
    note(NOTE)
    shift = gr.Markdown(elem_id="lm-steer-shift")
    with gr.Accordion("Steering's numbers (the /lm_steer API's JSON)", open=False):
        summary = gr.JSON(label="Steering", elem_id="lm-steer-json")
    return SimpleNamespace(
        controls=[prompt, strength, tokens, seed],
        decoding=decoding,
        run=run,
        api=gr.Button(visible=False),  # the /lm_steer endpoint: the API's seed is empty (None) for greedy decoding
        stop=stop,
        shown=Panels(summary=summary, status=status, baseline=baseline, steered=steered, shift=shift),
    )


def wire(section: SimpleNamespace, device: torch.device, model, layer, feature) -> None:
    """Steering (its API, and the button's own event: the same, streamed), a Stop button, and the button naming the
    feature it steers."""
    shown = section.shown
    prompt, strength, tokens, seed = section.controls

    def writing(prompt, model, layer, feature, strength, tokens, seed, progress, key):
        with STOPS.running(key) as stopped:
            for values in steer_event(prompt, model, layer, feature, strength, tokens, seed, device, progress, stopped):
                yield shown.keyed(values)

    def lm_steer(prompt, model, layer, feature, strength, tokens, seed, request: gr.Request, progress=gr.Progress()):
        # A model still loading is waited for here; each token's work then goes to the background pool.
        wait_for_model(model, device, progress, False)
        key = request.session_hash if request is not None else None
        yield from in_background(writing, line="quick")(
            prompt, model, layer, feature, strength, tokens, seed, progress, key
        )

    def steer_button(
        prompt, model, layer, feature, strength, tokens, decoding, seed, request: gr.Request, progress=gr.Progress()
    ):
        # A Number box cannot start empty in the browser (it shows 0), so greedy decoding is a choice of its own here.
        sampled = None if decoding == DECODINGS[0] else seed
        yield from lm_steer(prompt, model, layer, feature, strength, tokens, sampled, request, progress)

    section.api.click(
        on_gpu(lm_steer),
        inputs=[prompt, model, layer, feature, strength, tokens, seed],
        outputs=shown(),
        api_name="lm_steer",
        **serving.queue("lm-steer"),
    )
    section.run.click(
        on_gpu(steer_button),
        inputs=[prompt, model, layer, feature, strength, tokens, section.decoding, seed],
        outputs=shown(),
        api_visibility="private",
        **serving.queue("lm-steer"),
    )

    def stop(request: gr.Request):
        STOPS.stop(request.session_hash)

    section.stop.click(stop, api_visibility="private", queue=False)
    feature.change(
        lambda f: gr.Button(value=f"Steer with feature #{f}" if f is not None else "Steer with this feature"),
        inputs=feature,
        outputs=section.run,
        api_visibility="private",
        queue=False,
    )
