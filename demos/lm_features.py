"""The language-model tab's feature dashboards: the SAE trained here for the offline SmolLM2 on 1.6 million tokens of
real text, the features it finds in the learner's text (click a token to see its own), and any feature's dashboard
(its strongest contexts over the corpus, examples from weaker bands, how often it fires, what it makes the model say)."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import gradio as gr
import numpy as np
import torch

from superpos_core import lm, sae, serving
from superpos_core.figures import dashboards as dashboard_figures
from superpos_core.figures import lm as lm_figures
from superpos_core.figures.base import to_rgb
from superpos_core.lm import features
from superpos_core.serving import in_background

from .common import Panels, clickable_tokens, on_gpu, quoted, whole_number
from .components import CheckedNumber, figure_with_note
from .lm_reading import load_model, quiet, read_text

NOTES = {
    "density": "Each feature's share of the corpus's tokens where it fires, on a log scale: one bar counts the features "
    "with about that share. Features right of the dashed line fire on more than one token in ten (dense); the title "
    "counts the features that never fired on the held-out text's 65,536 tokens (dead).",
    "heatmap": "One row per token of your text, one column per feature among the text's strongest (numbered as in the "
    "dashboards). A sparse code lights only a few cells in each row: each token is described by a handful of features.",
    "histogram": "How strongly this feature fires where it fires at all, over the corpus's tokens (log scale). Most of "
    "a feature's firings are weak; the examples above are its strongest.",
}
INTERVAL_NAMES = {0.75: "strong", 0.5: "medium", 0.25: "weak", 0.0: "weakest"}
EXAMPLE_CSS = """
.superpos-example { font-family: ui-monospace, monospace; font-size: 0.85em; white-space: pre; overflow-x: auto;
  line-height: 1.7; }
.superpos-example code { color: #666; margin-right: 0.5em; }
"""


def _unavailable(error: Exception) -> gr.Error:
    return gr.Error(str(error), print_exception=False, title="No feature dashboards")


def feature_sae_for(model, layer, device: torch.device, progress=None) -> features.FeatureSAE:
    """The SAE for the model and layer; a pretrained one's dashboards are built here on first use, with ``progress``."""
    loaded = None
    if features.bundled_layer(model) is None and sae.release_for_model(model) is not None and progress is not None:
        loaded = load_model(model, device, progress)
    try:
        return features.feature_sae(model, layer, device, loaded, progress)
    except (features.FeaturesUnavailable, sae.SAELoadError) as error:
        raise _unavailable(error) from None


def token_column(pairs: list, value: str = "{:+.3f}") -> str:
    """[[token, value]] as one cell of a Markdown table: each token as the examples show it, then its value."""
    return "<br>".join(
        f"<code>{dashboard_figures.shaded_tokens([t], [0.0], 1.0)}</code> {value.format(v)}" for t, v in pairs
    )


def about(model: str) -> str:
    """What the SAE for ``model`` is and how it scores on held-out text, as the section's opening lines."""
    layer = features.bundled_layer(model)
    if layer is None:
        have = ", ".join(
            f"**{lm.CATALOGUE[key].title.split(' (')[0]}**" for key in features.BUNDLED if key in lm.CATALOGUE
        )
        if sae.release_for_model(model) is not None:
            return (
                f"The SAE trained here reads {have}. For this model, **Find its features** uses its pretrained SAE (layer "
                f"{features.RELEASE_LAYER} unless you name one), and builds each feature's dashboard from a slice of the "
                "same corpus the first time (a few minutes, then kept on disk)."
            )
        return f"The SAE trained here reads {have}: choose it above to see its features."
    found = features.read_feature_sae(features.BUNDLED[model], model)
    p = found.provenance
    held, ce = p.get("held_out", {}), p.get("ce_loss", {})
    tokens = found.dashboards.arrays["rows"]
    lines = [
        f"An SAE with **{found.d_sae:,} features** for the {found.sae.d_in} dimensions of layer {found.layer}, trained here on "
        f"{int(tokens):,} tokens of real text (the King James Bible, Python's documentation and standard library, Linux "
        "manual pages). Measured on held-out text it never saw:",
        "",
        "| explained variance | features firing per token (L0) | dead features | dense features (>10% of tokens) | CE loss recovered |",
        "|---|---|---|---|---|",
        f"| {held.get('explained_variance', float('nan')):.3f} | {held.get('l0', float('nan')):.1f} | "
        f"{held.get('dead', 0):,} of {found.d_sae:,} | {held.get('dense', 0):,} | "
        + (f"{ce['recovered']:.1%} |" if ce.get("recovered") is not None else "not measured |"),
        "",
        "CE loss recovered: how much of the model's next-token loss survives when the SAE's reconstruction replaces "
        "the layer (100%: nothing lost; 0%: as bad as zeroing the layer). "
        + (
            f"Clean {ce['clean']:.3f}, with the SAE {ce['spliced']:.3f}, layer zeroed {ce['zeroed']:.3f} nats per token."
            if ce
            else ""
        ),
    ]
    return "\n".join(lines)


def sae_layer(model: str) -> int | None:
    """The layer the section reads for ``model``: its SAE's own, a pretrained release's default, or None."""
    own = features.bundled_layer(model)
    if own is not None:
        return own
    return features.RELEASE_LAYER if sae.release_for_model(model) is not None else None


@functools.lru_cache(maxsize=4)
def density_figure(model: str) -> np.ndarray | None:
    """The SAE's feature-density histogram, or None when ``model`` has no SAE here (drawn once per model)."""
    if features.bundled_layer(model) is None:
        return None
    found = features.read_feature_sae(features.BUNDLED[model], model)
    return to_rgb(
        dashboard_figures.density_histogram(
            found.dashboards.arrays["density"], f"Layer {found.layer} SAE, over the corpus"
        )
    )


def _choices(hits: list[list], labels: list[str] | None = None) -> list[tuple[str, int]]:
    """Radio choices, one per feature: "#12 · 3.41" (and where it peaks, with ``labels`` per hit)."""
    return [
        (f"#{hit[0]} · {hit[1]:.2f}" + (f" at “{labels[k]}”" if labels else ""), int(hit[0]))
        for k, hit in enumerate(hits)
    ]


def features_event(text, model: str, layer=None, device: torch.device = torch.device("cpu"), progress=gr.Progress()):
    """``api_name="lm_features"``: the SAE's features on each token of the text.

    Returns {"summary": the /lm_features summary, "status", "tokens": the tokens shaded by their strongest feature,
    "heatmap": tokens × the text's strongest features, "picked": the strongest features over the text, to open}.
    """
    found = feature_sae_for(model, layer, device, progress)
    analysis = read_text(text, model, found.layer, device, progress)
    loaded = load_model(model, device, progress)
    try:
        summary = features.text_features(found, loaded, text, analysis)
    except (features.FeaturesUnavailable, sae.SAEInputError) as error:
        raise _unavailable(error) from None
    peaks = [hits[0][1] if hits else 0.0 for hits in summary["per_token"]]
    top = max(peaks, default=0.0)
    shaded = [(token, round(p / top, 3) if top > 0 else 0.0) for token, p in zip(analysis.shown_or_tokens, peaks)]
    labels = analysis.labels
    strongest = summary["top_features"]
    ev = summary["explained_variance"]
    status = (
        f"**{summary['l0']:.1f}** of {found.d_sae:,} features fire per token on average"
        + (f"; they rebuild **{ev:.0%}** of this text's variance at layer {found.layer}" if ev is not None else "")
        + ". **Click a token** below to see its strongest features, and a feature to open its dashboard."
    )
    shown = [index for index, _, _ in strongest]
    heatmap = None
    if shown:
        values = features.features_on_tokens(found, loaded, text, shown, analysis)  # (T, k)
        with lm_figures.lend_heatmap("sae", len(labels)) as panel:
            heatmap = panel.update(
                values,
                labels,
                [(c, f"#{index}") for c, index in enumerate(shown)],
                f"{found.name}: the text's {len(shown)} strongest features",
                "feature (strongest on the text first)",
                "token",
            )
    return {
        "summary": summary,
        "status": status,
        "tokens": shaded,
        "heatmap": heatmap,
        "picked": gr.Radio(
            choices=_choices(strongest, [labels[position] for _, _, position in strongest]),
            value=None,
            label="Strongest features on the whole text (peak activation, and where): pick one to open its dashboard",
        ),
    }


def token_event(text, model: str, layer, token, device: torch.device = torch.device("cpu")):
    """The strongest features on one clicked token (helper event): {"status", "picked": the Radio of them}."""
    found = feature_sae_for(model, layer, device)
    analysis = read_text(text, model, found.layer, device, quiet)
    summary = features.text_features(found, load_model(model, device, quiet), text, analysis)
    try:
        position = sae.token_position(whole_number(token, "The token position"), len(summary["tokens"]))
    except sae.SAEInputError as error:
        return {"status": str(error)}
    hits, word = summary["per_token"][position], analysis.labels[position]
    if not hits:
        return {
            "status": f"No feature fires on token {position} (“{word}”).",
            "picked": gr.Radio(choices=[], value=None),
        }
    return {
        "status": f"Token {position} (“{word}”): its {len(hits)} strongest features. Pick one to open its dashboard.",
        "picked": gr.Radio(
            choices=_choices(hits), value=None, label=f"Features on token {position} (“{word}”), strongest first"
        ),
    }


def search_event(model: str, layer, word, device: torch.device = torch.device("cpu")):
    """Features that fire most on a word across the corpus (helper event): {"status", "picked"}."""
    found = feature_sae_for(model, layer, device)
    loaded = load_model(model, device, quiet)
    try:
        results = features.search_word(found, loaded.tokenizer, word)
    except ValueError as error:
        return {"status": str(error), "picked": gr.Radio(choices=[], value=None)}
    if not results:
        return {
            "status": f"{quoted(str(word).strip())} is not in the corpus as one token's end: try another word.",
            "picked": gr.Radio(choices=[], value=None),
        }
    best = max(results, key=lambda r: r["count"])
    split = f", read as {best['tokens']} tokens (looked up by the last)" if best["tokens"] > 1 else ""
    return {
        "status": f"“{best['form'].strip()}” is met {best['count']:,} times in the corpus as “{best['token']}”{split}. "
        "The features that fire most on it, by their mean activation there:",
        "picked": gr.Radio(
            choices=_choices(best["features"]), value=None, label=f"Features on “{best['token']}”: pick one"
        ),
    }


def feature_event(model: str, layer, feature, device: torch.device = torch.device("cpu"), progress=gr.Progress()):
    """``api_name="lm_feature"``: one feature's dashboard.

    Returns {"summary": the /lm_feature summary, "header", "top": its strongest contexts (HTML), "intervals":
    contexts from weaker bands (HTML), "histogram": its activation histogram, "logits": the tokens it promotes
    and suppresses}.
    """
    found = feature_sae_for(model, layer, device, progress)
    feature = whole_number(feature, "The feature", 0, found.d_sae - 1)
    loaded = load_model(model, device, progress)
    summary = features.feature_dashboard(found, loaded.tokenizer, feature)
    examples = summary["top_examples"]
    strongest = max((max(e["activations"]) for e in examples), default=0.0)
    top = dashboard_figures.example_rows([(e["tokens"], e["activations"]) for e in examples], strongest)
    bands = []
    for band in summary["interval_examples"]:
        name = INTERVAL_NAMES.get(band["low"], f"{band['low']:.0%}")
        rows = dashboard_figures.example_rows([(e["tokens"], e["activations"]) for e in band["examples"]], strongest)
        bands.append(
            f"<p><b>{name.capitalize()}</b>: {band['low']:.0%}–{band['high']:.0%} of its strongest "
            f"({strongest:.2f})</p>{rows or '<p><i>none in the corpus</i></p>'}"
        )
    density = summary["density"]
    fires = (
        f"on **{density:.3%}** of the corpus's {summary['corpus_tokens']:,} tokens (log₁₀ density "
        f"{np.log10(density):.2f}: where it sits in the density histogram above)"
        if density
        else "**never**, on the corpus"
    )
    link = f" · [its Neuronpedia page]({summary['neuronpedia']})" if summary.get("neuronpedia") else ""
    header = (
        f"### Feature {feature} of {found.d_sae:,} (layer {found.layer}){link}\nIt fires {fires}"
        + (f"; strongest activation {strongest:.2f}." if examples else ".")
        + " Below: its strongest contexts over the corpus, each token shaded by the feature's activation on it (the "
        "strongest token bold and underlined; hover a token for its value)."
    )

    logits = (
        "**What it makes the model say** (its direction through the unembedding: the logit change per unit of activation, "
        "were nothing after the layer to change it)\n\n"
        f"| promoted | suppressed |\n|---|---|\n| {token_column(summary['top_logits'])} | {token_column(summary['bottom_logits'])} |"
    )
    histogram = dashboard_figures.activation_histogram(
        np.asarray(summary["histogram"]["counts"]),
        np.asarray(summary["histogram"]["edges"]),
        f"Feature {feature}: its non-zero activations over the corpus",
    )
    return {
        "summary": summary,
        "header": header,
        "top": f"<style>{EXAMPLE_CSS}</style>" + (top or "<p><i>It never fired on the corpus.</i></p>"),
        "intervals": f"<style>{EXAMPLE_CSS}</style>" + "".join(bands),
        "histogram": to_rgb(histogram),
        "logits": logits,
    }


# --- layout, then wiring ---------------------------------------------------------------------------


def layout(model: str) -> SimpleNamespace:
    """The section's components, in the current Blocks, opening on the tab's first model."""
    gr.Markdown("### Real features: an SAE trained here on millions of tokens")
    intro = gr.Markdown(about(model), elem_id="lm-features-about")
    density = figure_with_note("How often each feature fires", NOTES["density"], elem_id="lm-features-density")
    with gr.Row():
        layer = CheckedNumber(
            value=sae_layer(model),
            label="SAE layer (empty: the SAE's own)",
            precision=0,
            minimum=0,
            elem_id="lm-features-layer",
        )
        run = gr.Button("Find its features in the text", elem_id="lm-features-run")
    status = gr.Markdown(elem_id="lm-features-status")
    tokens = clickable_tokens("The text's tokens, shaded by their strongest feature: click one", "lm-features-tokens")
    picked = gr.Radio(choices=[], label="Features: pick one to open its dashboard", elem_id="lm-features-picked")
    heatmap = figure_with_note(
        "Tokens × the text's strongest features", NOTES["heatmap"], elem_id="lm-features-heatmap"
    )
    with gr.Row():
        word = gr.Textbox(
            label="Search the corpus: a word", placeholder="e.g. Moses, def, socket", elem_id="lm-features-word"
        )
        search = gr.Button("Features that fire on it", elem_id="lm-features-search")
    with gr.Accordion("Numbers behind the features (the /lm_features API's JSON)", open=False):
        summary = gr.JSON(label="Features of the text", elem_id="lm-features-json")

    gr.Markdown("#### A feature's dashboard")
    with gr.Row():
        feature = CheckedNumber(value=0, label="Feature", precision=0, minimum=0, elem_id="lm-feature-index")
        open_ = gr.Button("Open its dashboard", elem_id="lm-feature-open")
    header = gr.Markdown(elem_id="lm-feature-header")
    top = gr.HTML(elem_id="lm-feature-top")
    with gr.Accordion("Examples from weaker bands of its range", open=False):
        intervals = gr.HTML(elem_id="lm-feature-intervals")
    with gr.Row():
        with gr.Column():
            histogram = figure_with_note("Its activations", NOTES["histogram"], elem_id="lm-feature-histogram")
        with gr.Column():
            logits = gr.Markdown(elem_id="lm-feature-logits")
    with gr.Accordion("The dashboard's numbers (the /lm_feature API's JSON)", open=False):
        feature_summary = gr.JSON(label="Feature", elem_id="lm-feature-json")
    return SimpleNamespace(
        intro=intro,
        density=density,
        layer=layer,
        run=run,
        word=word,
        search=search,
        feature=feature,
        open=open_,
        picked=picked,
        found=Panels(summary=summary, status=status, tokens=tokens, heatmap=heatmap, picked=picked),
        dashboard=Panels(
            summary=feature_summary, header=header, top=top, intervals=intervals, histogram=histogram, logits=logits
        ),
    )


def wire(section: SimpleNamespace, blocks: gr.Blocks, device: torch.device, text, model, after: list) -> None:
    """The section's events: features of the text (its API, after each analysis, as the page opens), a clicked
    token, a word searched, and a feature's dashboard (its API, and from any feature picked)."""
    found, dashboard = section.found, section.dashboard

    @in_background(line="quick")
    def lm_features(text, model, layer, progress=gr.Progress()):
        return found.keyed(features_event(text, model, layer, device, progress))

    def quietly(text, model, layer):
        """After an analysis or as the page opens: what the section can show, or why not, never an error badge.
        A pretrained SAE's dashboards are built only when the learner asks (the button): they take minutes."""
        if features.bundled_layer(model) is None and not features.release_ready(model, layer):
            nothing = {"tokens": None, "heatmap": None, "picked": gr.Radio(choices=[], value=None)}
            return found.keyed({"status": about(model), **nothing})
        try:
            return lm_features(text, model, layer, quiet)
        except gr.Error as error:
            return found.keyed({"status": f"⚠️ {error.message}"})

    @in_background(line="quick")
    def pick_token(text, model, layer, evt: gr.SelectData):
        return found.keyed(token_event(text, model, layer, evt.index, device))

    @in_background(line="quick")
    def look_up(model, layer, word):
        return found.keyed(search_event(model, layer, word, device))

    @in_background(line="quick")
    def lm_feature(model, layer, feature, progress=gr.Progress()):
        return dashboard.keyed(feature_event(model, layer, feature, device, progress))

    def open_picked(model, layer, picked):
        if picked is None:
            return {section.feature: gr.Number()}
        return {section.feature: int(picked), **lm_feature(model, layer, int(picked), quiet)}

    section.run.click(
        on_gpu(lm_features),
        inputs=[text, model, section.layer],
        outputs=found(),
        api_name="lm_features",
        **serving.queue("lm"),
    )
    private = dict(api_visibility="private", **serving.queue("lm"))
    reading = [text, model, section.layer]
    for event in after:
        event.success(quietly, inputs=reading, outputs=found(), show_progress="minimal", **private)

    def first_dashboard(model, layer, summary, chosen):
        """As the page opens, once the default text's features are in: the dashboard of the strongest of them, unless
        the learner has already typed another feature than the box's first 0 (read as this step starts)."""
        if not summary or not summary.get("top_features") or chosen not in (None, 0):
            return {}
        first = int(summary["top_features"][0][0])
        try:
            return {section.feature: first, **lm_feature(model, layer, first, quiet)}
        except gr.Error:
            return {}

    opened = blocks.load(quietly, inputs=reading, outputs=found(), show_progress="hidden", **private)
    # A learner who opens a dashboard before the opening one has arrived keeps theirs: their choice cancels it, or,
    # before it has begun, the feature they typed tells it to leave the dashboard alone.
    opening_dashboard = opened.then(
        first_dashboard,
        inputs=[model, section.layer, found["summary"], section.feature],
        outputs=[section.feature, *dashboard()],
        show_progress="hidden",
        **private,
    )
    found["tokens"].select(pick_token, inputs=reading, outputs=found("status", "picked"), **private)
    searching = [model, section.layer, section.word]
    section.search.click(look_up, inputs=searching, outputs=found("status", "picked"), **private)
    section.word.submit(look_up, inputs=searching, outputs=found("status", "picked"), **private)
    section.open.click(
        on_gpu(lm_feature),
        inputs=[model, section.layer, section.feature],
        outputs=dashboard(),
        api_name="lm_feature",
        **serving.queue("lm"),
        cancels=[opening_dashboard],
    )
    section.picked.input(
        open_picked,
        inputs=[model, section.layer, section.picked],
        outputs=[section.feature, *dashboard()],
        **private,
        cancels=[opening_dashboard],
    )
    blocks.load(density_figure, inputs=model, outputs=section.density, api_visibility="private", queue=False)
    model.change(
        lambda m: (about(m), density_figure(m), sae_layer(m)),
        inputs=model,
        outputs=[section.intro, section.density, section.layer],
        api_visibility="private",
        queue=False,
    )
