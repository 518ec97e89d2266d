"""The language-model tab's pretrained-SAE panel: the field's SAEs (for GPT-2 small) on the learner's text, with a
Neuronpedia link per feature, and the features of any token the learner clicks."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import gradio as gr
import torch

from superpos_core import lm, sae, serving
from superpos_core.figures import sae as sae_figures
from superpos_core.figures.base import to_rgb
from superpos_core.serving import Recent, in_background

from .common import Panels, clickable_tokens, whole_number
from .components import figure, figure_with_note
from .lm_reading import CACHED_TEXTS, load_model, model_title, quiet, read_text

NOTE = (
    "A sparse autoencoder trained by others on millions of GPT-2 tokens, with 24,576 features for 768 dimensions: "
    "32 features per dimension, superposition undone at scale. Each bar is a feature that fires strongly on this text; its "
    "Neuronpedia page shows the texts that make it fire most. Its features mean that only on inputs like its training data, so "
    f"it reads the text as it was trained: in windows of {sae.GPT2_SMALL_RES_JB.context_size} tokens, each after <|endoftext|>, with "
    f"each token's mean over the {sae.GPT2_SMALL_RES_JB.d_in} dimensions taken away (TransformerLens, which it was trained with, "
    "centres GPT-2's weights so that this mean is 0)."
)
TOP_FEATURES = 10
KEEP_SAES = 2  # pretrained SAEs kept in memory, most recently used first (about 150 MB each)
_release_saes: Recent[sae.PretrainedSAE] = Recent(KEEP_SAES)  # (release, layer, device) -> its SAE


def _release_sae(release: sae.PretrainedRelease, layer: int, device: torch.device) -> sae.PretrainedSAE:
    """The release's SAE for ``layer`` on ``device``, read from the Hugging Face cache once and kept for the next request."""
    return _release_saes.get_or_make(
        (release.name, layer, str(torch.device(device))),
        lambda: sae.fetch_release_sae(layer, release=release, local_files_only=True).to(device),
    )


@dataclass(frozen=True)
class _SAEReading:
    """What a pretrained SAE found in one text: all the panel and a click on a token need."""

    release: sae.PretrainedRelease
    analysis: lm.TextAnalysis
    found: sae.FeatureReading  # its input, each token's peak, the strongest features overall and per token
    fed_note: str  # how the SAE read the text, in one sentence for the learner


# (model, the load's serial, layer, device, text) -> what its SAE found
_readings: Recent[_SAEReading] = Recent(CACHED_TEXTS)


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


def _no_release(model: str) -> str:
    """Why no pretrained SAE reads ``model``, and where the catalogue's SAEs can be used instead."""
    release = next(iter(sae.PRETRAINED_RELEASES.values()))  # the catalogue's first release: today, GPT-2 small's
    title = model_title(release.model)
    # Only point to the release's model when it is here: offline, choosing it would only lead to another message.
    then = (
        f"Choose {title} to use them."
        if lm.available(release.model)
        else f"{title} is not on this machine, so they cannot be used here. To use them: {lm.how_to_fetch(lm.CATALOGUE[release.model])}"
    )
    return (
        f"The pretrained SAEs here ({release.d_sae:,} features each, `{release.repo_id}`) read **{title}**'s residual stream, "
        f"so they cannot read this model's activations. {then}"
    )


def _pretrained_features(text, model: str, layer, device: torch.device) -> tuple[str, None] | tuple[None, _SAEReading]:
    """(why not, None) when no pretrained SAE can read this; else (None, what it read, kept for the next click)."""
    release = sae.release_for_model(model)
    if release is None:
        return _no_release(model), None
    try:
        layer = whole_number(layer, "The layer")
        if layer not in release.layers:
            first, last = release.layers[0], release.layers[-1]
            return (
                f"{model_title(model)}'s pretrained SAEs read the residual stream entering blocks {first}–{last}; layer {layer} is after the last block. Choose a layer from {first} to {last}.",
                None,
            )
        model_sae = _release_sae(release, layer, device)
    except sae.SAELoadError as error:
        named = "" if release is sae.GPT2_SMALL_RES_JB else f" --release {release.name}"  # the command's default
        size = f" (about {release.download_mb} MB)" if release.download_mb else ""
        get = f"Get it{size} once, on a machine with internet: `python -m superpos_core.sae{named} --layers {layer}`."
        return f"The pretrained SAE for layer {layer} is not on this machine ({error}). {get}", None
    except (sae.SAEInputError, gr.Error) as error:
        return str(error), None
    if not isinstance(text, str) or not text.strip():
        return "The pretrained SAE is here: analyse a text to see its features.", None

    loaded = load_model(model, device, quiet)

    def read() -> _SAEReading:
        analysis = read_text(text, model, layer, device, quiet)
        found = sae.read_features(model_sae, loaded, analysis.token_ids, analysis, k=TOP_FEATURES)
        return _SAEReading(release, analysis, found, _fed_note(found.fed, loaded.tokenizer))

    try:
        return None, _readings.get_or_make((model, loaded.serial, layer, str(device), text), read)
    except sae.SAEInputError as error:
        return str(error), None


def _feature_links(reading: _SAEReading, hits: list[sae.FeatureHit], at_token: bool) -> str:
    labels, layer = reading.analysis.labels, reading.analysis.layer
    where = "" if at_token else " at “{}”"
    return "\n".join(
        f"- [feature {h.index}]({sae.neuronpedia_url(layer, h.index, reading.release)}): {h.activation:.2f}"
        + where.format(labels[h.token])
        for h in hits
    )


def pretrained_sae_panel(text, model: str, layer, device: torch.device = torch.device("cpu")) -> dict:
    """The model's pretrained SAE on the whole text (helper event).

    Returns {"status": the status (with a Neuronpedia link per feature), "plot": the bars of the strongest
    features (or None), "tokens": the text's tokens shaded by their strongest feature, to click (or None)}.
    """
    why, reading = _pretrained_features(text, model, layer, device)
    if why:
        return {"status": why, "plot": None, "tokens": None}
    analysis, found = reading.analysis, reading.found
    labels, hits = analysis.labels, found.over_text
    top = max(found.peaks)
    tokens = [
        (token, round(peak / top, 3) if top > 0 else 0.0) for token, peak in zip(analysis.shown_or_tokens, found.peaks)
    ]
    if not hits:
        why = f"The pretrained SAE is here, but none of its features fire on this text. {reading.fed_note}"
        return {"status": why, "plot": None, "tokens": tokens}
    release, layer = reading.release, analysis.layer
    plot = sae_figures.pretrained_feature_bars(
        [h.index for h in hits],
        [h.activation for h in hits],
        [labels[h.token] for h in hits],
        f"{model_title(release.model)}, layer {layer}: strongest of {release.d_sae:,} features",
    )
    status = (
        f"Pretrained SAE for layer {layer} loaded ({release.d_sae:,} features). {reading.fed_note} Strongest on this text:\n{_feature_links(reading, hits, False)}\n\n"
        "**Click a token** in the text below to see the features that fire on it."
    )
    return {"status": status, "plot": to_rgb(plot), "tokens": tokens}


def pretrained_token_panel(text, model: str, layer, token, device: torch.device = torch.device("cpu")):
    """The strongest pretrained features on one token of the text, the one the learner clicked (helper event):
    (status, bars or None)."""
    why, reading = _pretrained_features(text, model, layer, device)
    if why:
        return why, None
    labels = reading.analysis.labels
    try:
        token = sae.token_position(whole_number(token, "The token position"), len(labels))
    except sae.SAEInputError as error:
        return str(error), None
    hits, word = reading.found.per_token[token], labels[token]
    if not hits:
        return f"No pretrained feature fires on token {token} (“{word}”).", None
    layer = reading.analysis.layer
    plot = sae_figures.pretrained_feature_bars(
        [h.index for h in hits],
        [h.activation for h in hits],
        [word] * len(hits),
        f"{model_title(reading.release.model)}, layer {layer}: strongest features on token {hits[0].token} (“{word}”)",
        xlabel="activation on this token",
    )
    return (
        f"Token {hits[0].token} (“{word}”): its strongest features\n{_feature_links(reading, hits, True)}",
        to_rgb(plot),
    )


# --- layout, then wiring ---------------------------------------------------------------------------


def layout() -> SimpleNamespace:
    """The panel's components, in the current Blocks: hidden until a pretrained SAE has read the text."""
    gr.Markdown("### The field's way: a pretrained SAE for GPT-2 small")
    status = gr.Markdown(elem_id="lm-pretrained-status")
    # Shown once a pretrained SAE has read the text: until then the status above says what is missing.
    with gr.Column(visible=False) as box:
        plot = figure_with_note("Strongest pretrained features on this text", NOTE, elem_id="lm-pretrained")
        tokens = clickable_tokens(
            "The text's tokens, shaded by their strongest pretrained feature: click one", "lm-pretrained-tokens"
        )
        token_status = gr.Markdown(elem_id="lm-token-status")
        token_plot = figure("Strongest pretrained features on the clicked token", elem_id="lm-token-features")
    return SimpleNamespace(
        status=status, box=box, plot=plot, tokens=tokens, token_status=token_status, token_plot=token_plot
    )


def wire(panel: SimpleNamespace, blocks: gr.Blocks, device: torch.device, inputs: list, after: list) -> None:
    """Fill the panel after each analysis in ``after`` and as the page opens; a click on a token shows its features.

    Args:
        panel: from ``layout``.
        inputs: the tab's text, model and layer components.
        after: the analysis events the panel follows (it reads the forward pass they made).
    """
    outputs = Panels(status=panel.status, plot=panel.plot, tokens=panel.tokens, box=panel.box)

    @in_background(line="quick")
    def look_up_pretrained(text, model, layer):
        shown = pretrained_sae_panel(text, model, layer, device)
        return outputs.keyed({**shown, "box": gr.Column(visible=shown["tokens"] is not None)})

    @in_background(line="quick")
    def pick_token(text, model, layer, evt: gr.SelectData):
        return pretrained_token_panel(text, model, layer, evt.index, device)

    look_up = dict(inputs=inputs, outputs=outputs(), api_visibility="private", **serving.queue("lm"))
    for event in after:
        event.success(look_up_pretrained, **look_up)
    panel.tokens.select(
        pick_token,
        inputs=inputs,
        outputs=[panel.token_status, panel.token_plot],
        api_visibility="private",
        **serving.queue("lm"),
    )
    # As the page opens, a model with a release says whether its SAE is here, without reading the text yet.
    blocks.load(lambda t, m, l: look_up_pretrained(t if sae.release_for_model(m) is None else "", m, l), **look_up)
