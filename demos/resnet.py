"""The ResNet tab: any conv layer of a real ResNet, its feature maps and its effective rank."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import numpy as np
import torch

from demos.common import ChoiceDropdown, ReadableUploads, figure, in_background, note, quoted
from demos import networks  # the network view (issue 13)
from demos.common import network_view
from superpos_core import figures, mnist, resnets
from superpos_core.conv_rank import TABLE_HEADERS

NOTES = {
    "maps": "The 16 channels of this layer that respond most to the picture, strongest first (each tile shares one colour scale). "
    "Early layers respond to edges and strokes at every position; deeper layers to larger, rarer patterns on a coarser grid.",
    "overlay": "The layer's mean activation over all its channels, stretched over the picture: where in the image this layer is busy.",
    "ranks": "The course's experiment over a reference set, one point per conv layer. Its effective rank is a count: of the singular values of the "
    "layer's (channels × positions) activations, how many have a running share of the squared total still below 99% (one fewer than the number "
    "needed to reach 99%). Left as a count beside the channel count, right as a share of the channels. Blue dots: the course's count, on the "
    "conv's output as it is, before its BatchNorm, so each channel's mean counts as energy too. Green line: the same count once each channel's "
    "mean over the reference set is taken away (the centred count). Hollow orange points: the reference set had fewer than 4 numbers per "
    "channel there, so the rank is capped by the sample, not the layer.",
}
READING = (
    "The ratio is the rank over the channel count. Near 1: reaching 99% of the energy takes nearly as many directions as there are channels. "
    "Low: few directions reach 99% of it, and the many others share the last 1%. That measures how concentrated the energy is, not how many "
    "channels are combinations of the others: the weak directions are weak, not empty. The centred count leaves out the channels' means, "
    "which in the course's count are energy like any other."
)
NO_IMAGE = "🖼️ Upload a picture, paste one, use the webcam, or click an example below it."
# Figures reused from one picture to the next, lent to one request at a time: the feature-map grid,
# and each model's rank plot.
_feature_panels = figures.PanelPool(lambda _key: figures.FeatureMapPanel(resnets.MAP_SIDE))
_rank_panels = figures.PanelPool()


class SafeImage(ReadableUploads, gr.Image):
    """An Image input whose unreadable uploads give a clear message instead of a traceback."""


def _load(model: str, device: torch.device) -> resnets.LoadedResNet:
    try:
        return resnets.load(model, device)
    except resnets.ModelUnavailable as error:
        raise gr.Error(str(error), print_exception=False, title="Model unavailable") from None


def _rank_plot(loaded: resnets.LoadedResNet, layer: str) -> tuple[str, list, np.ndarray]:
    """The model's rank table (computed once and cached on disk) and its plot with ``layer`` marked."""
    source, rows = resnets.reference_ranks(loaded)
    title = f"{loaded.entry.title}\nactivations over {source}"
    with _rank_panels.borrow((loaded.entry.key, loaded.weights_id, source), make=lambda _key: figures.LayerRankPanel(rows, title)) as panel:
        return source, rows, panel.update(layer)


def _card(loaded: resnets.LoadedResNet, view: resnets.LayerView | None, row, source: str) -> str:
    size = f" · its maps here are {view.size[0]}×{view.size[1]}" if view else ""
    text = (
        f"### {row.layer}\n`{loaded.describe(row.layer)}`\n\n"
        f"- **{row.channels} channels**{size}\n"
        f"- **effective rank {row.effective_rank}** over {source} → ratio **{row.ratio:.2f}**: the course's count, singular values whose running "
        f"share of the squared total is still below 99% ({row.rank_to_reach} are needed to reach it)\n"
        f"- **centred effective rank {row.centred_effective_rank}** → ratio **{row.centred_ratio:.2f}**: the same count once each channel's mean "
        f"over the reference set is taken away\n\n{READING}"
    )
    if row.sample_bound:
        text += f"\n\n⚠️ Here the reference set gives only {row.columns:,} numbers for {row.channels} channels: the rank is capped by the sample. Read it as a lower bound, not a finding."
    return text


def _render_layer(loaded, analysis: resnets.ImageAnalysis | None, layer: str):
    """Everything that depends on the layer alone; no forward pass."""
    if layer not in loaded.conv_layers:
        raise gr.Error(f"There is no conv layer named {quoted(layer)} in {loaded.entry.title}. Choose one of: {', '.join(loaded.conv_layers[:6])}, …", print_exception=False)
    source, rows, rank_plot = _rank_plot(loaded, layer)
    row = next(r for r in rows if r.layer == layer)
    view = analysis.layers[layer] if analysis else None
    summary = {
        "model": loaded.entry.key,
        "layer": layer,
        "top5": [[label, prob] for label, prob in analysis.top5] if analysis else [],
        "channels": row.channels,
        "effective_rank": row.effective_rank,
        "ratio": round(row.ratio, 4),
        "sample_bound": bool(row.sample_bound),
        "centred_effective_rank": int(row.centred_effective_rank),
    }
    grid = overlay = None
    if view is not None:
        with _feature_panels.borrow() as panel:
            grid = panel.update(view.maps, view.top_channels, f"{layer}: the 16 strongest of {view.channels} channels")
        overlay = figures.heat_overlay(analysis.display, view.mean_map)
    table = [r.as_row() for r in rows]
    return summary, grid, overlay, rank_plot, table, _card(loaded, view, row, source)


def analyse(picture, model: str, layer: str | None, device: torch.device = torch.device("cpu")):
    """The main event (``api_name="resnet"``): one forward pass, every conv layer captured."""
    if picture is None:
        raise gr.Error("No picture: upload one or click an example.", visible=False, print_exception=False)
    loaded = _load(model, device)
    layer = layer or loaded.conv_layers[0]
    try:
        analysis = resnets.analyse_image(loaded, picture)
    except resnets.ImageError as error:
        raise gr.Error(str(error), print_exception=False) from None
    summary, grid, overlay, ranks, table, card = _render_layer(loaded, analysis, layer)
    labels = {label: prob for label, prob in analysis.top5}
    status = f"The model's answer: **{analysis.top5[0][0]}** ({analysis.top5[0][1]:.0%})."
    return summary, status, labels, grid, overlay, ranks, table, card, analysis


def switch_layer(analysis, model: str, layer: str, device: torch.device = torch.device("cpu")):
    """Re-draw from the cached forward pass: the network does not run again."""
    loaded = _load(model, device)
    if analysis is not None and analysis.model != model:
        analysis = None
    summary, grid, overlay, ranks, table, card = _render_layer(loaded, analysis, layer)
    return summary, grid, overlay, ranks, card


def explain_problem(picture, model: str):
    """Runs when ``analyse`` failed: the reason beside the picture, stale panels cleared."""
    if picture is None:
        message = NO_IMAGE
    else:
        ok, model_status = resnets.status(model)
        message = model_status if not ok else "⚠️ This picture could not be read: see the message at the top right."
    return None, message, None, None, None, gr.skip(), gr.skip(), gr.skip(), None


def examples(model: str) -> list[tuple[np.ndarray, str]]:
    """Pictures that suit the model: real MNIST test digits, or the bundled photos."""
    if resnets.CATALOGUE[model].input_kind == "digit":
        sample = mnist.load_sample().test
        picks = [int(np.flatnonzero(sample.labels == d)[0]) for d in range(10)]
        return [(255 - np.kron(sample.images[i], np.ones((4, 4), np.uint8)), str(sample.labels[i])) for i in picks]
    return [(np.asarray(_photo(p)), p.stem) for p in sorted((mnist.ASSETS / "photos").glob("*.jpg"))]


def _photo(path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def choose_model(model: str, device: torch.device = torch.device("cpu")):
    """New model: its layers, its examples, whether it is available, and (if it is) its rank plot.

    The course's table needs no picture, so it is shown as soon as the model is ready.
    """
    available, message = resnets.status(model)
    names = resnets.layer_names(model)
    ranks = table = None
    card = f"Choose a picture to see this model's layers. {message}"
    if available:
        try:
            loaded = resnets.load(model, device)
            _summary, _grid, _overlay, ranks, table, card = _render_layer(loaded, None, names[0])
        except resnets.ModelUnavailable as error:
            message = card = str(error)
    return (
        gr.update(choices=names, value=names[0]),
        f"{resnets.CATALOGUE[model].about} {message}",
        examples(model),
        None,  # the old picture's analysis belongs to the old model
        None,
        None,
        ranks,
        table,
        card,
    )


def render(blocks: gr.Blocks, device: torch.device) -> SimpleNamespace:
    """Lay out the ResNet tab inside the current ``gr.Tab``; returns what other tabs link to."""
    gr.Markdown(
        "## Inside a ResNet\nDoes a deep network superpose like the small ones? Pick a model and any of its conv layers: see what the layer's channels "
        "respond to in your picture, and how its activations' energy spreads over directions, layer by layer (the course's effective rank: its second experiment)."
    )
    first = resnets.DEFAULT
    state = gr.State(None)
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            image = SafeImage(label="Your picture", type="pil", image_mode=None, sources=["upload", "webcam", "clipboard"], elem_id="resnet-image", height=300)
            gallery = gr.Gallery(label="Or click an example", columns=5, height=200, allow_preview=False, object_fit="contain", elem_id="resnet-examples")
        with gr.Column(scale=5, min_width=300):
            model = ChoiceDropdown([(e.title, e.key) for e in resnets.CATALOGUE.values()], value=first, label="Model", elem_id="resnet-model")
            model_status = gr.Markdown(f"{resnets.CATALOGUE[first].about} {resnets.status(first)[1]}", elem_id="resnet-model-status")
            # Custom values allowed: an API caller may name any layer of whichever model it asks for; we check it.
            layer = gr.Dropdown(resnets.layer_names(first), value=resnets.layer_names(first)[0], label="Conv layer (by module name)", elem_id="resnet-layer", allow_custom_value=True)
            status = gr.Markdown(NO_IMAGE, elem_id="resnet-status")
            top5 = gr.Label(label="Top-5 predictions", num_top_classes=5, elem_id="resnet-top5")
    with gr.Row():
        with gr.Column():
            grid = figure("Feature maps of the chosen layer", elem_id="resnet-grid")
            note(NOTES["maps"])
        with gr.Column():
            overlay = figure("Where the layer is active", elem_id="resnet-overlay")
            note(NOTES["overlay"])
            card = gr.Markdown(elem_id="resnet-card")
    ranks = figure("Effective rank, layer by layer", elem_id="resnet-ranks")
    note(NOTES["ranks"])
    table = gr.Dataframe(headers=TABLE_HEADERS, label="The course's table, with the centred count beside it", interactive=False)
    with gr.Accordion("Numbers behind the pictures (the /resnet API's JSON)", open=False):
        summary = gr.JSON(label="Summary", elem_id="resnet-json")

    live = [summary, status, top5, grid, overlay, ranks, table, card, state]
    event = image.change(lambda p, m, l: analyse(p, m, l, device), inputs=[image, model, layer], outputs=live, api_name="resnet", concurrency_limit=2, concurrency_id="resnet", trigger_mode="always_last")
    event.failure(explain_problem, inputs=[image, model], outputs=live, api_visibility="private", queue=False)
    layer.input(lambda a, m, l: switch_layer(a, m, l, device), inputs=[state, model, layer], outputs=[summary, grid, overlay, ranks, card], api_visibility="private", show_progress="hidden", concurrency_limit=4, concurrency_id="resnet-switch")

    def pick_example(model_key, selection: gr.SelectData):
        picture = examples(model_key)[selection.index][0]
        return picture

    model_outputs = [layer, model_status, gallery, state, grid, overlay, ranks, table, card]
    # Choosing a model can load it and compute its rank table: the same limit as analysing with it.
    model.input(in_background(lambda m: choose_model(m, device)), inputs=model, outputs=model_outputs, api_visibility="private", concurrency_limit=2, concurrency_id="resnet")
    gallery.select(pick_example, inputs=model, outputs=image, api_visibility="private", concurrency_limit=8, concurrency_id="resnet-examples")
    blocks.load(in_background(lambda: choose_model(first, device)), outputs=model_outputs, api_visibility="private", concurrency_limit=2, concurrency_id="resnet")

    # The network this tab uses, as the course shows it first (demos/networks.py; filled when opened, from the architecture).
    network_view(networks.resnet_html, inputs=[model, layer], triggers=[model, layer], elem_id="resnet-network")
    return SimpleNamespace(image=image, model=model, layer=layer)


def receive_drawing(sketch):
    """A drawing sent from the MNIST tab: the composite as a picture, for the bundled model."""
    from superpos_core.drawing import editor_picture

    picture = editor_picture(sketch)
    if picture is None:
        raise gr.Error("Draw a digit first.", print_exception=False)
    names = resnets.layer_names(resnets.DEFAULT)
    return picture, gr.update(value=resnets.DEFAULT), gr.update(choices=names, value=names[0])
