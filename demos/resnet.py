"""The ResNet tab: any conv layer of a real ResNet, its feature maps and its effective rank."""

from __future__ import annotations

import functools
import time
from types import SimpleNamespace

import gradio as gr
import numpy as np
import torch

from superpos_core import mnist, resnets, serving
from superpos_core.conv_rank import TABLE_HEADERS
from superpos_core.figures import resnet as resnet_figures
from superpos_core.serving import Kept, in_background

from . import links, networks  # networks: the network view (issue 13)
from .common import Panels, UnreadablePicture, network_view, on_gpu, quoted
from .components import ChoiceDropdown, SafeImage, figure_with_note

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
OPENING_EXAMPLE = 0  # the example the tab opens with: the first test digit of the default model's gallery
OPENING_EXPECTED_S = (
    15.0  # about how long the opening view takes to make on a cold start, rank table included (the progress bar's pace)
)
# The tab's opening view (the default model on its first example), made once per device and kept: every
# visitor sees it at once. Keyed by device alone: the bundled model and its example never change in a process.
_openings: Kept[dict] = Kept()
# What a handler fills, by name; ``render`` maps the names to its components.
PICTURE_PANELS = ("summary", "status", "top5", "grid", "overlay", "ranks", "table", "card", "state")
LAYER_PANELS = ("summary", "grid", "overlay", "ranks", "table", "card")  # what depends on the layer alone
SWITCHED = ("summary", "grid", "overlay", "ranks", "card")  # what a change of layer redraws (the table stays)
RECEIVED = ("image", "model", "layer", "model_status", "gallery", "retry")  # what a drawing from the MNIST tab sets
MODEL_PANELS = ("layer", "model_status", "gallery", "retry", *PICTURE_PANELS)


def _load(model: str, device: torch.device) -> resnets.LoadedResNet:
    try:
        return resnets.load(model, device)
    except resnets.ModelUnavailable as error:
        raise gr.Error(str(error), print_exception=False, title="Model unavailable") from None


def _rank_plot(loaded: resnets.LoadedResNet, layer: str) -> tuple[str, list, np.ndarray]:
    """The model's rank table (computed once and cached on disk) and its plot with ``layer`` marked."""
    source, rows = resnets.reference_ranks(loaded)
    title = f"{loaded.entry.title}\nactivations over {source}"
    with resnet_figures.lend_layer_ranks((loaded.entry.key, loaded.weights_id, source), rows, title) as panel:
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


def _render_layer(loaded, analysis: resnets.ImageAnalysis | None, layer: str) -> dict:
    """Everything that depends on the layer alone, by name (``LAYER_PANELS``); no forward pass."""
    if layer not in loaded.conv_layers:
        raise gr.Error(
            f"There is no conv layer named {quoted(layer)} in {loaded.entry.title}. Choose one of: {', '.join(loaded.conv_layers[:6])}, …",
            print_exception=False,
        )
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
        "caution": analysis.caution if analysis else None,
    }
    grid = overlay = None
    if view is not None:
        with resnet_figures.lend_feature_maps(resnets.MAP_SIDE) as panel:
            grid = panel.update(view.maps, view.top_channels, f"{layer}: the 16 strongest of {view.channels} channels")
        overlay = resnet_figures.heat_overlay(analysis.display, view.mean_map)
    table = [r.as_row() for r in rows]
    return {
        "summary": summary,
        "grid": grid,
        "overlay": overlay,
        "ranks": rank_plot,
        "table": table,
        "card": _card(loaded, view, row, source),
    }


def _answer(analysis: resnets.ImageAnalysis) -> str:
    """The status line under a picture: the model's answer, and a caution when the picture does not suit the model."""
    text = f"The model's answer: **{analysis.top5[0][0]}** ({analysis.top5[0][1]:.0%})."
    return f"{text}\n\n⚠️ {analysis.caution}" if analysis.caution else text


def _picture(picture) -> object:
    """The picture, or a ``gr.Error`` with the reason it cannot be read (an ``UnreadablePicture``)."""
    if isinstance(picture, UnreadablePicture):
        raise gr.Error(picture.message, print_exception=False, title="Not a picture we can read")
    return picture


def analyse(picture, model: str, layer: str | None, device: torch.device = torch.device("cpu")):
    """The main event (``api_name="resnet"``): one forward pass, every conv layer captured; the panels by name (``PICTURE_PANELS``)."""
    if picture is None:
        raise gr.Error("No picture: upload one or click an example.", visible=False, print_exception=False)
    picture = _picture(picture)
    loaded = _load(model, device)
    layer = layer or loaded.conv_layers[0]
    try:
        analysis = resnets.analyse_image(loaded, picture)
    except resnets.ImageError as error:
        raise gr.Error(str(error), print_exception=False, title="Not a picture we can read") from None
    return {
        **_render_layer(loaded, analysis, layer),
        "status": _answer(analysis),
        "top5": {label: prob for label, prob in analysis.top5},
        "state": analysis,
    }


def switch_layer(analysis, model: str, layer: str, device: torch.device = torch.device("cpu")):
    """Re-draw from the cached forward pass (the network does not run again); the panels by name (``SWITCHED``).

    A model that failed to load is not tried again here (``resnets.load`` remembers the failure): the
    panels stay empty and the card says why, at once.
    """
    try:
        loaded = resnets.load(model, device)
    except resnets.ModelUnavailable as error:
        return {**dict.fromkeys(SWITCHED), "card": f"⚠️ {error}"}
    if analysis is not None and analysis.model != model:
        analysis = None
    drawn = _render_layer(loaded, analysis, layer)
    return {name: drawn[name] for name in SWITCHED}


def problem(picture, model: str, layer: str | None, device: torch.device = torch.device("cpu")) -> str:
    """Why ``analyse`` failed, in a sentence for beside the picture (a download that just failed is not tried again)."""
    if picture is None:
        return NO_IMAGE
    if isinstance(picture, UnreadablePicture):
        return f"⚠️ {picture.message}"
    try:
        loaded = resnets.load(model, device)
    except resnets.ModelUnavailable as error:
        return f"⚠️ {error}"
    if layer and layer not in loaded.conv_layers:
        return f"⚠️ There is no conv layer named {quoted(layer)} in {loaded.entry.title}: choose one from the list."
    try:
        resnets.prepare(loaded, picture)
    except resnets.ImageError as error:
        return f"⚠️ {error}"
    return "⚠️ This picture could not be analysed: see the message at the top right."


def explain_problem(picture, model: str, layer: str | None, device: torch.device = torch.device("cpu")):
    """Runs when ``analyse`` failed: the reason beside the picture, the panels that showed the last picture cleared.

    The rank plot, the table and the card describe the layer, not the picture: they stay as they are.
    """
    message = problem(picture, model, layer, device)
    return {**dict.fromkeys(("summary", "top5", "grid", "overlay", "state")), "status": message}


@functools.cache
def examples(model: str) -> list[tuple[np.ndarray, str]]:
    """Pictures that suit the model: real MNIST test digits, or the bundled photos (made once per process; do not mutate)."""
    if resnets.CATALOGUE[model].input_kind == "digit":
        sample = mnist.load_sample().test
        picks = [int(np.flatnonzero(sample.labels == d)[0]) for d in range(10)]
        return [(255 - np.kron(sample.images[i], np.ones((4, 4), np.uint8)), str(sample.labels[i])) for i in picks]
    return [(np.asarray(_photo(p)), p.stem) for p in sorted((mnist.ASSETS / "photos").glob("*.jpg"))]


def _photo(path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def _model_status(model: str, unavailable: str | None = None) -> str:
    entry = resnets.CATALOGUE[model]
    return f"**{entry.title}**: {entry.about} " + (f"⚠️ {unavailable}" if unavailable else resnets.status(model)[1])


def choose_model(
    picture,
    model: str,
    layer: str | None = None,
    device: torch.device = torch.device("cpu"),
    retry: bool = False,
    progress=None,
) -> dict:
    """New model: its layers and examples, and every panel redrawn for it, by name (``MODEL_PANELS``).

    With a picture loaded, the picture is analysed again by the new model; without one, the panels
    that need a picture are emptied and the model's rank plot and table (which need none) are shown.
    A model that cannot be loaded empties every panel and says why, with how to get it. A download
    that failed a moment ago is not tried again unless ``retry`` (the "Try the download again" button).
    """
    names = resnets.layer_names(model)
    layer = layer if layer in names else names[0]  # the same layer, where the new model has one of that name
    view = {"layer": gr.update(choices=names, value=layer), "gallery": examples(model), "state": None}
    if progress is not None:
        progress(0, desc=f"Loading {resnets.CATALOGUE[model].title}…")
    try:
        loaded = resnets.load(model, device, retry=retry)
    except resnets.ModelUnavailable as error:
        message = str(error)
        view.update(
            model_status=_model_status(model, message),
            retry=gr.update(visible=resnets.CATALOGUE[model].source != "bundled"),
            status=f"⚠️ {message}",
        )
        return {**view, **dict.fromkeys(("summary", "top5", *LAYER_PANELS))}
    view.update(model_status=_model_status(model), retry=gr.update(visible=False))
    if progress is not None:
        progress(0.5, desc=f"The rank table of {loaded.entry.title}…")
    resnets.reference_ranks(loaded)  # computed here once (the disk cache after), so the bar says what takes the time
    message = NO_IMAGE
    analysis = None
    if picture is not None:
        try:
            analysis = resnets.analyse_image(loaded, _picture(picture))
            message = _answer(analysis)
        except gr.Error as error:
            message = f"⚠️ {error.message}"
        except resnets.ImageError as error:
            message = f"⚠️ {error}"
    view.update(
        _render_layer(loaded, analysis, layer),
        status=message,
        top5={label: p for label, p in analysis.top5} if analysis else None,
        state=analysis,
    )
    return view


def opening_view(device: torch.device) -> dict:
    """The tab as it opens: the default model on its first example, every panel drawn (``choose_model``'s names)."""
    return choose_model(examples(resnets.DEFAULT)[OPENING_EXAMPLE][0], resnets.DEFAULT, None, device, retry=False)


def _check_link(values: dict) -> None:
    model = values.get("model", resnets.DEFAULT)
    if model not in resnets.CATALOGUE:
        raise ValueError(f"there is no model {model!r} here; choose one of {', '.join(resnets.CATALOGUE)}")
    if "layer" in values and values["layer"] not in resnets.layer_names(model):
        raise ValueError(
            f"{model} has no conv layer {values['layer']!r} (its first is {resnets.layer_names(model)[0]!r})"
        )
    count = len(examples(model))
    if not 0 <= values.get("example", OPENING_EXAMPLE) < count:
        raise ValueError(f"example={values['example']} is out of range: {model}'s examples are 0 to {count - 1}")


# ?tab=resnet&model=mnist-resnet&layer=layer2.0.conv1&example=7: the gallery's example on that model, at that layer.
LINK = links.TabLink(
    "resnet",
    (
        links.Param("model", "model", str),
        links.Param("layer", "layer", str),
        links.Param("example", "example", int),
    ),
    _check_link,
)


def linked(values: dict) -> tuple[np.ndarray, str, str | None]:
    """(picture, model, layer) of a link's values, what it leaves out as the tab opens (layer None: the first)."""
    model = values.get("model", resnets.DEFAULT)
    return examples(model)[values.get("example", OPENING_EXAMPLE)][0], model, values.get("layer")


def example_shown(picture, model: str, layer: str) -> dict:
    """``{"model", "layer", "example"}`` when the picture is one of the model's examples as the gallery gave it, else ``{}``."""
    if picture is None or model not in resnets.CATALOGUE:
        return {}
    pixels = np.asarray(picture)
    for index, (example, _) in enumerate(examples(model)):
        if pixels.shape == example.shape and np.array_equal(pixels, example):
            return {"model": model, "layer": layer, "example": index}
    return {}


def _opening_key(device: torch.device) -> tuple:
    return (str(device), resnets.DEFAULT)


def opening(device: torch.device, progress=None) -> dict:
    """The kept opening view; the first request to need it makes it, or waits for it with a moving progress bar."""
    started = time.monotonic()

    def waiting():
        if progress is not None:
            progress(min(0.95, (time.monotonic() - started) / OPENING_EXPECTED_S), desc="Preparing the example…")

    waiting()
    return _openings.get_or_make(_opening_key(device), lambda: opening_view(device), on_wait=waiting)


def start_opening(device: torch.device) -> None:
    """Begin making the opening view in the background (once per device and process), so the first visitor does not wait."""
    _openings.start(_opening_key(device), lambda: opening_view(device), name="superpos-resnet-opening")


def layout() -> Panels:
    """Lay out the ResNet tab inside the current ``gr.Tab``; its components, by name."""
    gr.Markdown(
        "## Inside a ResNet\nDoes a deep network superpose like the small ones? Pick a model and any of its conv layers: see what the layer's channels "
        "respond to in your picture, and how its activations' energy spreads over directions, layer by layer (the course's effective rank: its second experiment)."
    )
    first = resnets.DEFAULT
    first_examples = examples(first)
    state = gr.State(None)
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            # The opening example is in place from the start (the panels follow on page load, from the kept opening view).
            image = SafeImage(
                first_examples[OPENING_EXAMPLE][0],
                label="Your picture",
                type="pil",
                image_mode=None,
                format="png",
                sources=["upload", "webcam", "clipboard"],
                elem_id="resnet-image",
                height=300,
            )
            gallery = gr.Gallery(
                first_examples,
                label="Or click an example",
                columns=5,
                height=200,
                allow_preview=False,
                object_fit="contain",
                elem_id="resnet-examples",
            )
            link = links.layout("resnet")
        with gr.Column(scale=5, min_width=300):
            model = ChoiceDropdown(
                [(e.title, e.key) for e in resnets.CATALOGUE.values()],
                value=first,
                label="Model",
                elem_id="resnet-model",
            )
            model_status = gr.Markdown(_model_status(first), elem_id="resnet-model-status")
            retry = gr.Button("Try the download again", visible=False, size="sm", elem_id="resnet-retry")
            # Custom values allowed: an API caller may name any layer of whichever model it asks for; we check it.
            layer = gr.Dropdown(
                resnets.layer_names(first),
                value=resnets.layer_names(first)[0],
                label="Conv layer (by module name)",
                elem_id="resnet-layer",
                allow_custom_value=True,
            )
            status = gr.Markdown("Preparing the example…", elem_id="resnet-status")
            top5 = gr.Label(label="Top-5 predictions", num_top_classes=5, elem_id="resnet-top5")
    with gr.Row():
        grid = figure_with_note("Feature maps of the chosen layer", NOTES["maps"], elem_id="resnet-grid", column=True)
        with gr.Column():
            overlay = figure_with_note("Where the layer is active", NOTES["overlay"], elem_id="resnet-overlay")
            card = gr.Markdown(elem_id="resnet-card")
    ranks = figure_with_note("Effective rank, layer by layer", NOTES["ranks"], elem_id="resnet-ranks")
    table = gr.Dataframe(
        headers=TABLE_HEADERS,
        label="The course's table, with the centred count beside it",
        interactive=False,
        elem_id="resnet-table",
    )
    with gr.Accordion("Numbers behind the pictures (the /resnet API's JSON)", open=False):
        summary = gr.JSON(label="Summary", elem_id="resnet-json")

    # The network this tab uses, as the course shows it first (demos/networks.py; filled when opened, from the architecture).
    network_view(networks.resnet_html, inputs=[model, layer], triggers=[model, layer], elem_id="resnet-network")
    return Panels(
        **link,
        image=image,
        model=model,
        summary=summary,
        status=status,
        top5=top5,
        grid=grid,
        overlay=overlay,
        ranks=ranks,
        table=table,
        card=card,
        state=state,
        layer=layer,
        model_status=model_status,
        gallery=gallery,
        retry=retry,
    )


def wire(blocks: gr.Blocks, panels: Panels, device: torch.device) -> None:
    """The ResNet tab's events: a picture (``/resnet``), a layer, a model, the gallery, the opening view."""
    start_opening(device)
    picture_in, live = panels("image", "model", "layer"), panels(*PICTURE_PANELS)

    # Named wrappers, not lambdas: their parameter names are the API's.
    @panels.filled_by
    def resnet(picture, model, layer):
        return analyse(picture, model, layer, device)

    event = panels["image"].change(
        on_gpu(resnet),
        inputs=picture_in,
        outputs=live,
        api_name="resnet",
        **serving.queue("resnet"),
        trigger_mode="always_last",
    )
    event.failure(
        panels.filled_by(lambda p, m, l: explain_problem(p, m, l, device)),
        inputs=picture_in,
        outputs=live,
        api_visibility="private",
        queue=False,
    )
    panels["layer"].input(
        panels.filled_by(lambda a, m, l: switch_layer(a, m, l, device)),
        inputs=panels("state", "model", "layer"),
        outputs=panels(*SWITCHED),
        api_visibility="private",
        show_progress="hidden",
        **serving.queue("resnet-switch"),
    )

    def pick_example(model_key, selection: gr.SelectData):
        return examples(model_key)[selection.index][0]

    def redraw_for_model(retry: bool):
        @panels.filled_by
        @in_background(line="quick")
        def redraw(
            picture, model_key, layer_name, progress=gr.Progress(track_tqdm=True)
        ):  # track_tqdm: torchvision's download bar moves ours
            return choose_model(picture, model_key, layer_name, device, retry=retry, progress=progress)

        return redraw

    def open_tab(progress) -> dict:
        view = opening(device, progress)
        return {name: _fresh(view[name]) for name in PICTURE_PANELS}

    # Choosing a model can load it and compute its rank table: the same limit as analysing with it.
    # .select, not .input: a dropdown sends "input" twice for one choice (on the choice, and again as it closes).
    for trigger, retry in ((panels["model"].select, False), (panels["retry"].click, True)):
        trigger(
            redraw_for_model(retry=retry),
            inputs=picture_in,
            outputs=panels(*MODEL_PANELS),
            api_visibility="private",
            **serving.queue("resnet"),
        )
    panels["gallery"].select(
        pick_example,
        inputs=panels["model"],
        outputs=panels["image"],
        api_visibility="private",
        **serving.queue("resnet-examples"),
    )
    links.opening(blocks, panels, LINK, open_tab, PICTURE_PANELS, serving.queue("resnet-open"))

    def from_link(values: dict) -> dict:
        picture, model, layer = linked(values)
        return {"image": picture, "model": model, **choose_model(picture, model, layer, device)}

    links.wire(
        blocks,
        panels,
        LINK,
        apply=from_link,
        sets=("image", "model", *MODEL_PANELS),
        on_screen=("image", "model", "layer"),
        shown=example_shown,
        queue=serving.queue("resnet"),
    )


def render(blocks: gr.Blocks, device: torch.device) -> SimpleNamespace:
    """Lay out the ResNet tab inside the current ``gr.Tab`` and wire its events; returns what other tabs link to."""
    panels = layout()
    wire(blocks, panels, device)
    return SimpleNamespace(panels=panels)


def _fresh(value):
    """A kept value as one response may take it: gradio may change an update dict or a JSON value it is given."""
    return dict(value) if isinstance(value, dict) else value


def receive_drawing(sketch):
    """A drawing sent from the MNIST tab: the composite as a picture, for the bundled model (its layers, examples and status too), by name (``RECEIVED``)."""
    from superpos_core.drawing import editor_picture

    picture = editor_picture(sketch)
    if picture is None:
        raise gr.Error("Draw a digit first.", print_exception=False)
    names = resnets.layer_names(resnets.DEFAULT)
    return {
        "image": picture,
        "model": gr.update(value=resnets.DEFAULT),
        "layer": gr.update(choices=names, value=names[0]),
        "model_status": _model_status(resnets.DEFAULT),
        "gallery": examples(resnets.DEFAULT),
        "retry": gr.update(visible=False),
    }


SHOW_RESNET_TAB = "() => { document.querySelector('button[role=tab][data-tab-id=\"resnet\"]')?.click(); }"


def take_drawings_from(digits: SimpleNamespace, convs: SimpleNamespace) -> None:
    """Wire the MNIST tab's "Send this drawing to the ResNet tab" (both tabs rendered in the current Blocks).

    The drawing goes to the bundled digit model, and the browser switches tab. With an empty pad the first
    step says "Draw a digit first" and the page stays on the MNIST tab.
    """
    from . import mnist as mnist_tab  # the MNIST tab's pad, read as that tab reads it

    sent = digits.send.click(
        mnist_tab.require_drawing,
        inputs=digits.pad,
        api_visibility="private",
        **serving.queue("mnist-send"),
    )
    sent.success(
        convs.panels.filled_by(lambda value: receive_drawing(mnist_tab.drawing_to_send(value))),
        inputs=digits.pad,
        outputs=convs.panels(*RECEIVED),
        api_visibility="private",
        **serving.queue("resnet-examples"),
    )
    sent.success(None, js=SHOW_RESNET_TAB)
