"""The language-model tab's Concepts section (the course's chapter 4): concept word lists against labelled
sentences, read with the tab's model at its layer."""

from __future__ import annotations

import gradio as gr
import torch

from superpos_core import concepts, lm, serving
from superpos_core.figures import concepts as concept_figures
from superpos_core.figures.base import to_rgb
from superpos_core.serving import in_background

from .common import Panels, on_gpu, whole_number
from .components import figure_with_note
from .lm_reading import load_model

NOTES = {
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

    Returns {"summary": the /lm_concepts summary, "bars": the correlation bars, "pca": the sentences' PCA,
    "status": a status line}.
    """
    try:  # the learner's lists first: a typo is reported before any model loads
        concept_lists = concepts.parse_concepts(concept_words)
        labelled = concepts.parse_sentences(sentences)
    except concepts.ConceptInputError as error:
        raise gr.Error(str(error), print_exception=False) from None
    layer = whole_number(layer, "The layer")
    loaded = load_model(model, device, progress, allow_any)
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
    return {"summary": analysis.summary(), "bars": to_rgb(bars), "pca": to_rgb(pca), "status": status}


# --- layout, then wiring ---------------------------------------------------------------------------


def layout() -> Panels:
    """The Concepts section's components, by name (its outputs first, in the /lm_concepts API's order)."""
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
    bars = figure_with_note(
        "Each concept's correlation with each label's sentences", NOTES["bars"], elem_id="lm-concepts-bars"
    )
    pca = figure_with_note(
        "The sentences' hidden states on their two main directions (PCA)", NOTES["pca"], elem_id="lm-concepts-pca"
    )
    with gr.Accordion("Concept numbers (the /lm_concepts API's JSON)", open=False):
        summary = gr.JSON(label="Concepts summary", elem_id="lm-concepts-json")
    return Panels(summary=summary, bars=bars, pca=pca, status=status, words=words_box, sentences=sentences_box, run=run)


OUTPUTS = ("summary", "bars", "pca", "status")  # what /lm_concepts returns, in its order


def wire(panels: Panels, device: torch.device, model: gr.Dropdown, layer: gr.Slider, allow_any_model: bool) -> None:
    """The /lm_concepts event, read with the tab's model and layer."""

    @panels.filled_by
    @in_background
    def compare_concepts(concept_words, sentences, model, layer, progress=gr.Progress()):
        return concepts_event(concept_words, sentences, model, layer, device, progress, allow_any_model)

    panels["run"].click(
        on_gpu(compare_concepts),
        inputs=[panels["words"], panels["sentences"], model, layer],
        outputs=panels(*OUTPUTS),
        api_name="lm_concepts",
        **serving.queue("lm"),
    )


def render(device: torch.device, model: gr.Dropdown, layer: gr.Slider, allow_any_model: bool = False) -> None:
    """The Concepts section, read with the tab's model and layer: its layout, then its wiring."""
    wire(layout(), device, model, layer, allow_any_model)
