"""The MNIST tab: draw a digit and watch a real trained network's neurons, weights and ranks."""

from __future__ import annotations

import copy
import io
import json
import time
from functools import cache, partial
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import torch
from PIL import Image

from superpos_core import mnist, mnist_sae, paths, serving
from superpos_core.drawing import DrawingError, data_url_bytes, ink_image
from superpos_core.figures import mnist as mnist_figures
from superpos_core.figures.base import to_rgb
from superpos_core.mnist_explorer import (
    LIVE_FIGURES,
    DigitAnalysis,
    MnistExplorer,
    bundled_concentration,
    bundled_examples,
    bundled_reference,
    train_live,
)
from superpos_core.serving import Kept, in_background

from . import links, networks  # networks: the network view (issue 13)
from .common import MAX_SEED, Panels, inline_png, network_view, note, on_gpu, whole_number
from .components import figure, figure_with_note
from .drawing_pad import DrawingPad, SafeSketchpad

CANVAS = 280  # px; the digit is rescaled to 20 px anyway, so the canvas only sets the feel
BRUSH = 24  # stroke width in canvas px, about an eighth of a full-height digit, like MNIST's pen
NO_DIGIT = "✏️ Draw a digit from 0 to 9 on the canvas, or click one of the real MNIST digits below it."
OPENING_EXAMPLE = 2  # the gallery's third digit (a real MNIST 2) is on the pad and analysed when the tab opens
EXAMPLES = 10  # real test digits in the gallery, cycling through 0..9

NOTES = {
    "label": "The network's confidence for each digit (a softmax over the 10 outputs).",
    "saliency": "Left: your drawing cropped, scaled to 20 px and centred as MNIST's digits were; this is all the network sees. "
    "Right: integrated gradients from blank paper to your digit. Red pixels raised the score of the answer, blue ones lowered it; "
    "together they add up to the score's change from blank paper.",
    "activations": "Every neuron of the three layers, before the ReLU, on one colour scale. A typical digit (the median of 2,000 real test digits) fires "
    "{fc1_firing:.0f} of fc1's {fc1_units} neurons ({fc1_share:.0%}) and {fc2_firing:.0f} of fc2's {fc2_units} ({fc2_share:.0%}): their output is above zero "
    "after the ReLU. So a digit is spread over dozens of neurons rather than stored in one, while many of the others are silent for it. "
    "Blue values are cut to zero by the ReLU before the next layer.",
    "polysemanticity": "The six fc1 neurons firing hardest for your digit, and how strongly each fires, on average, for every digit class in 2,000 real "
    "test digits (each row scaled to its own peak). A row bright in several columns belongs to a neuron that answers to several digit classes: "
    "{multi_class} of fc1's {fc1_units} neurons reach half their peak class mean on two or more classes ({silent} never fire on these digits). "
    "That alone is not superposition: digits share strokes, and a neuron that detects one stroke answers to every digit drawn with it. "
    "Its feature may be the stroke, not several digits.",
    "histograms": "Grey: how often each activation value occurs over 2,000 real test digits. Red ticks: this digit's neurons. "
    "A drawing very unlike MNIST pushes ticks into the tails.",
    "spectrum": "Singular values of each weight matrix, largest first, on a log scale; red for the trained network, grey for the same layer freshly initialised. "
    "The effective rank (dotted lines) is the course's count: singular values whose running share of the squared total is still below 99%, one fewer "
    "than the number needed to reach 99% (the table gives both). Training concentrates the weights in fewer, "
    "stronger directions, yet far more directions stay in use than there are digits: room for many features sharing neurons.",
    "weights": "Each row is one neuron's weights: red inputs excite it, blue ones inhibit it. fc1's 784 inputs are the pixels, row by row.",
    "neuron_weights": "fc1's weights shown as pictures: each tile is the pattern of ink that excites that neuron most. "
    "Few tiles look like one digit: most are mixtures of strokes. Noisy tiles belong to neurons that barely ever fire, which training left near their random start.",
    "train": "Trains a fresh copy of the same network with the course's recipe (Adam, batch 64), from scratch, on the bundled 10,000 real MNIST training digits "
    "(or the full 60,000 when they are on this machine). Watch accuracy climb while the effective rank of the weights falls: training finds structure. "
    "Your run is yours alone; the network used above never changes.",
}


def sae_notes(concentration: mnist_sae.Concentration, provenance: dict) -> dict[str, str]:
    """The notes beside the SAE's two figures, with the numbers they quote: measured on ``concentration`` and
    taken from the bundled SAE's ``provenance`` (its recipe and its quality on the 10,000 test digits).

    Args:
        concentration: neurons against features over the bundled test digits (``mnist_sae.concentration``).
        provenance: the SAE's provenance file, read as JSON.
    """
    recipe, test = provenance["recipe"], provenance["test"]
    features = (
        f"An SAE (sparse autoencoder) with {recipe['n_latents']} features, trained on fc1's firing for all 60,000 MNIST "
        f"training digits, rewrites your digit's 128 neuron values as at most {recipe['k']} features that add up to them. "
        f"Each tile is one feature: the mean of the {mnist_sae.TOP_DIGITS} of the 2,000 real test digits here that activate it most; above it, "
        "its number and its activation now; below it, the digit it votes for (the one whose score falls most when this "
        "feature is taken out of the reconstruction) and, where taking it out changes the answer, the answer without it; "
        f"under that, the {mnist_sae.TOP_SHOWN} test digits it fires on most, strongest first, at half size. "
        f"On the 10,000 test digits the SAE explains {test['explained_variance']:.0%} of fc1's variance (about the training "
        f"digits' mean firing) with {test['l0']:.1f} features per digit; {test['dead']} of its {recipe['n_latents']} "
        "features fire for none of them."
    )
    n_median, f_median = concentration.median("neurons"), concentration.median("features")
    n_pure, f_pure = concentration.share_at_least("neurons", 0.9), concentration.share_at_least("features", 0.9)
    if f_median > n_median + 0.05:
        verdict = "The SAE's features are more often about one digit class than fc1's neurons are."
    elif f_median < n_median - 0.05:
        verdict = "The SAE's features are less often about one digit class than fc1's neurons are."
    else:
        verdict = "The SAE's features are about as often about one digit class as fc1's neurons are."
    compared = (
        f"For each of fc1's 128 neurons (blue) and each of the SAE's {len(concentration.features)} features (red): "
        f"its {concentration.top} strongest of the 2,000 bundled test digits, and the share of them that are its most common "
        f"class (1.0: all one digit; {concentration.chance:.2f} for digits drawn at random). Units that fire for fewer than "
        f"{concentration.top} of the digits are left out ({128 - concentration.counted('neurons')} neurons, "
        f"{len(concentration.features) - concentration.counted('features')} features). Median: neurons {n_median:.2f}, "
        f"features {f_median:.2f}; {n_pure:.0%} of the neurons and {f_pure:.0%} of the features reach 0.9. {verdict} "
        "A feature shared by several digits is not a failure: it may be a stroke those digits have in common."
    )
    return {"sae_features": features, "concentration": compared}


def measured_notes(reference: mnist.Reference) -> dict[str, str]:
    """The notes, with the numbers they quote measured on ``reference`` (the shipped network over the bundled test digits).

    Args:
        reference: activations of the network over the test digits, as ``mnist.reference_activations`` gives them.
    """
    units = {hidden: reference.activations[hidden].shape[1] for hidden in mnist.HIDDEN}
    numbers = {
        "fc1_firing": reference.typical_firing("relu1"),
        "fc1_units": units["relu1"],
        "fc1_share": reference.typical_firing("relu1") / units["relu1"],
        "fc2_firing": reference.typical_firing("relu2"),
        "fc2_units": units["relu2"],
        "fc2_share": reference.typical_firing("relu2") / units["relu2"],
        "multi_class": reference.multi_class_neurons("relu1"),
        "silent": reference.silent_neurons("relu1"),
    }
    return {name: text.format(**numbers) for name, text in NOTES.items()}


def shipped_notes() -> dict[str, str]:
    """``measured_notes`` and ``sae_notes`` of the shipped network and SAE: computed once (0.4 s) and kept on disk
    till the bundled files, this module or the package change (``paths.kept_on_disk``), so a restart reads them."""

    def compute() -> dict[str, str]:
        notes = measured_notes(bundled_reference())
        return notes | sae_notes(bundled_concentration(), json.loads(mnist_sae.SAE_PROVENANCE_PATH.read_text()))

    shipped = (mnist.WEIGHTS_PATH, mnist.SAMPLE_PATH, mnist_sae.SAE_PATH, mnist_sae.SAE_PROVENANCE_PATH, Path(__file__))
    return paths.kept_on_disk("mnist-notes", shipped, compute)


DRAWINGS_AT_ONCE = serving.DRAWINGS_AT_ONCE  # one set of live figures is built ahead for each drawing under way
# What a drawing fills, by name, the JSON summary first (the /mnist API's order of outputs).
PICTURES = tuple(LIVE_FIGURES)  # the live figures, by name (superpos_core.mnist_explorer.LIVE_FIGURES)
LIVE = ("summary", "status", "label", *PICTURES)
STATIC = ("spectrum", "table", "weights", "neuron_weights", "concentration")  # computed once for the shipped network
TRAINING = ("train_status", "train_table", "train_plot")  # what /mnist_train streams, epoch by epoch


def analyse(picture, device: torch.device = torch.device("cpu")):
    """The /mnist API's event: every live panel by name (``LIVE``), the pictures as arrays (gradio serves them as files)."""
    try:
        result = MnistExplorer.shared(device, DRAWINGS_AT_ONCE).analyse(picture)
    except DrawingError as error:
        raise gr.Error(str(error), print_exception=False) from None
    return {**_numbers(result, reading(result)), **result.pictures}


def _numbers(result: DigitAnalysis, status: str) -> dict:
    return {"summary": result.summary, "status": status, "label": result.probabilities}


def reading(result: DigitAnalysis) -> str:
    """The status line for an analysed picture."""
    p = result.summary["probabilities"][result.summary["prediction"]]
    status = f"The network reads **{result.summary['prediction']}** ({p:.0%} sure)."
    if result.inverted:
        status += " (Light ink on a dark background was flipped to dark on light.)"
    return status


def inline_panels(result: DigitAnalysis, status: str) -> dict:
    """The live outputs for the page, by name: the pictures inline, so the browser shows them without fetching files."""
    return {**_numbers(result, status), **{name: inline_png(picture) for name, picture in result.pictures.items()}}


def pad_picture(value) -> bytes | None:
    """The drawing pad's value as PNG bytes, or None for an empty pad. Raises ``DrawingError``.

    The pad sends a ``data:image/png`` URL; anything else (a path, say) is refused, never opened.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DrawingError(f"The drawing pad sent a {type(value).__name__}, not a picture.")
    return data_url_bytes(value)


def show_drawing(value, device: torch.device = torch.device("cpu")):
    """The page's per-stroke event: the pad's picture in, every live panel out.

    Never fails with an error badge: a picture that cannot be read as a digit gets its message in
    the status line, and the panels are emptied so that nothing stale stays under it.
    """
    try:
        result = MnistExplorer.shared(device, DRAWINGS_AT_ONCE).analyse(pad_picture(value))
    except DrawingError as error:
        return {**dict.fromkeys(LIVE), "status": NO_DIGIT if "empty" in str(error) else f"⚠️ {error}"}
    return inline_panels(result, reading(result))


def redraw_if_drawn(value, device: torch.device = torch.device("cpu")):
    """Run after the opening view arrives: a learner who drew before it did sees their drawing read again, not the opening digit."""
    if value == example_on_pad(OPENING_EXAMPLE):
        return dict.fromkeys(LIVE, gr.skip())
    return show_drawing(value, device)


def canvas_picture(digit: np.ndarray) -> np.ndarray:
    """A 28x28 MNIST digit (light on dark) as the pad shows it: dark on light, at the canvas's size."""
    return 255 - np.kron(np.asarray(digit, dtype=np.uint8), np.ones((CANVAS // 28, CANVAS // 28), np.uint8))


@cache
def example_on_pad(index: int) -> str:
    """The gallery's ``index``-th digit as the pad's value (a PNG data URL)."""
    return inline_png(canvas_picture(bundled_examples(EXAMPLES)[index][0]))


def example_shown(pad: str) -> dict:
    """``{"example": index}`` when the pad holds the gallery's digit ``index`` untouched, else ``{}`` (a drawing of
    one's own, which no link can carry)."""
    for index in range(EXAMPLES):
        if pad == example_on_pad(index):
            return {"example": index}
    return {}


def _check_example(values: dict) -> None:
    if not 0 <= values["example"] < EXAMPLES:
        raise ValueError(f"example={values['example']} is out of range: the gallery's digits are 0 to {EXAMPLES - 1}")


# ?tab=mnist&example=3: the gallery's fourth digit on the pad, analysed.
LINK = links.TabLink("mnist", (links.Param("example", "example", int),), _check_example)


def upload_to_pad(path) -> tuple:
    """Put an uploaded picture on the pad, fitted to the canvas (its change event then analyses it).

    A file that is no picture, or one too large to read, gets its message in the status line and
    leaves the pad as it was.
    """
    try:
        if path is None:
            raise DrawingError("No file arrived. Choose a PNG or JPEG.")
        ink = ink_image(str(path))  # (H, W) in [0, 1], 1 = ink; refuses decompression bombs
    except DrawingError as error:
        return gr.skip(), f"⚠️ {error}"
    paper = np.rint(255 * (1.0 - ink)).astype(np.uint8)
    border = np.concatenate([paper[0], paper[-1], paper[:, 0], paper[:, -1]])
    scale = CANVAS / max(paper.shape)
    size = (max(1, round(paper.shape[1] * scale)), max(1, round(paper.shape[0] * scale)))
    fitted = Image.new("L", (CANVAS, CANVAS), int(np.median(border)))  # letterboxed in the picture's own paper colour
    fitted.paste(
        Image.fromarray(paper).resize(size, Image.Resampling.LANCZOS),
        ((CANVAS - size[0]) // 2, (CANVAS - size[1]) // 2),
    )
    return inline_png(np.asarray(fitted)), gr.skip()


def drawing_to_send(value) -> Image.Image | None:
    """The pad's drawing as a picture for another tab, or None when the pad is empty (or unreadable)."""
    try:
        data = pad_picture(value)
    except DrawingError:
        return None
    return None if data is None else Image.open(io.BytesIO(data)).convert("RGB")


def require_drawing(value) -> None:
    """The first step of sending the drawing to another tab: with an empty pad, say so and go no further.

    Its own step, with no outputs, so that the message is a notice on this tab and nothing on the
    other tab is marked as failed.
    """
    if drawing_to_send(value) is None:
        raise gr.Error("Draw a digit first: the pad is empty.", print_exception=False)


def opening_view(device_key: str, report) -> SimpleNamespace:
    """What the tab shows when it opens, for every visitor: computed once per device (``OPENING``)."""
    report(0.05, "Loading the network and 2,000 real test digits")
    explorer = MnistExplorer.shared(torch.device(device_key), DRAWINGS_AT_ONCE)
    report(0.6, "Drawing the weights")
    figs = explorer.static_figures
    report(0.85, "Reading the first digit")
    digit, label = bundled_examples(EXAMPLES)[OPENING_EXAMPLE]
    result = explorer.analyse(canvas_picture(digit))
    status = (
        f"On the pad: a real MNIST test digit, a {label}. {reading(result)} "
        "Draw your own digit: your first stroke starts a fresh canvas."
    )
    return SimpleNamespace(
        static={
            "spectrum": figs["spectrum"],
            "table": explorer.rank_table(),
            "weights": figs["weights"],
            "neuron_weights": figs["neuron_weights"],
            "concentration": figs["concentration"],
        },
        gallery=[
            (255 - np.kron(image, np.ones((3, 3), np.uint8)), str(label)) for image, label in bundled_examples(EXAMPLES)
        ],
        live=inline_panels(result, status),
    )


OPENING: Kept[SimpleNamespace] = Kept()  # the opening view, once per device for the whole process


def _make_opening(device_key: str):
    """How the opening view for this device is made, reporting its stage to those who wait (``OPENING.stage``)."""
    return partial(opening_view, device_key, OPENING.reporter(device_key))


def kept_opening_view(device_key: str = "cpu", progress=None) -> SimpleNamespace:
    """The kept opening view for this device, made now if need be (waiting, with ``progress`` moving, on a make under way)."""
    return OPENING.get_or_make(
        device_key, _make_opening(device_key), on_wait=OPENING.stage_shown_by(device_key, progress)
    )


def start_opening(device_key: str = "cpu") -> None:
    """Begin making the opening view in the background (once per device and process), so the first visitor need not wait."""
    OPENING.start(device_key, _make_opening(device_key), name="superpos-mnist-opening")


def train_event(epochs, seed, progress=gr.Progress(), device: torch.device = torch.device("cpu")):
    """``api_name="mnist_train"``: train a fresh SimpleNet live, streaming each epoch's row, figure and status (``TRAINING``)."""
    # Sent as they are (preprocess=False), so that a wrong value gets a message naming its control.
    epochs, seed = (
        whole_number(epochs, "Epochs", 1, 5),
        whole_number(0 if seed is None else seed, "Seed", -MAX_SEED, MAX_SEED),
    )
    rows, acc, ranks = [], [], {"fc1": [], "fc2": []}
    progress(0, desc="Preparing the data")
    shown = [0.0]  # when the bar last moved: a few times a second is enough, not every batch

    def batch_done(epoch: int, done: int, total: int) -> None:
        if time.monotonic() - shown[0] >= 0.1 or done == total:
            shown[0] = time.monotonic()
            progress(
                (epoch - 1 + done / total) / epochs, desc=f"Epoch {epoch} of {epochs}: batch {done:,} of {total:,}"
            )

    for run in train_live(epochs, seed, device, on_batch=batch_done):
        r = run.report
        rows.append(
            [
                r.epoch,
                round(r.loss, 4),
                round(100 * r.test_accuracy, 2),
                r.effective_rank["fc1"],
                r.effective_rank["fc2"],
            ]
        )
        acc.append(r.test_accuracy)
        for name in ranks:
            ranks[name].append(r.effective_rank[name])
        figure = mnist_figures.training_progress([row[0] for row in rows], acc, ranks, {"fc1": 128, "fc2": 64}, epochs)
        status = f"Epoch {r.epoch}/{epochs} on {run.train_size:,} digits from {run.data_source}: test accuracy {r.test_accuracy:.1%}."
        yield {"train_status": status, "train_table": rows, "train_plot": to_rgb(figure)}
    yield {
        "train_status": status.replace(f"Epoch {epochs}/{epochs}", f"Done: {epochs} epoch{'s' * (epochs > 1)}"),
        "train_table": rows,
        "train_plot": to_rgb(figure),
    }


def layout(device: torch.device, can_send: bool = True) -> Panels:
    """Lay out the MNIST tab inside the current ``gr.Tab``; its components, by name."""
    notes = shipped_notes()
    gr.Markdown(
        "## Draw a digit\nA real network (the course's SimpleNet: 784 → 128 → 64 → 10, trained on all 60,000 MNIST training digits, "
        "97.7% right on the 10,000 test digits) reads your drawing. Every panel updates each time you lift the pen."
    )
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            pad = DrawingPad(
                example_on_pad(OPENING_EXAMPLE), side=CANVAS, brush=BRUSH, label="Your digit", elem_id="mnist-pad"
            )
            # The /mnist API's input, never shown: API callers send it a Sketchpad value, as they always have.
            sketch = SafeSketchpad(label="Your digit", type="filepath", visible=False, elem_id="mnist-sketchpad")
            with gr.Row():
                upload = gr.UploadButton(
                    "Upload a picture of a digit",
                    file_types=["image"],
                    type="filepath",
                    size="sm",
                    elem_id="mnist-upload",
                )
                send = gr.Button(
                    "Send this drawing to the ResNet tab", size="sm", elem_id="mnist-send", visible=can_send
                )
            gallery = gr.Gallery(
                label="Or click a real MNIST test digit",
                columns=5,
                height=260,
                allow_preview=False,
                object_fit="contain",
                elem_id="mnist-examples",
            )
            link = links.layout("mnist")
            # A link's digit comes to the pad through this box: an event that names the pad among its outputs while
            # the tab is still hidden (the page's load, on another tab) leaves the pad unable to draw once shown
            # ("side is not defined", gradio 6's gr.HTML props); a change event only fires when a link sets a digit.
            linked = gr.Textbox(visible=False)
        with gr.Column(scale=5, min_width=300):
            status = gr.Markdown(NO_DIGIT, elem_id="mnist-status")
            label = gr.Label(label="Prediction", num_top_classes=4, elem_id="mnist-label")
            note(notes["label"])
            saliency = figure_with_note(
                "What the network sees, and why it answers", notes["saliency"], elem_id="mnist-saliency"
            )
    with gr.Row():
        polysemanticity = figure_with_note(
            "Is one neuron one digit? (polysemanticity)",
            notes["polysemanticity"],
            elem_id="mnist-polysemanticity",
            column=True,
        )
        sae_features = figure_with_note(
            "Your digit as SAE features: the same firing, pulled apart",
            notes["sae_features"],
            elem_id="mnist-sae-features",
            column=True,
        )
    with gr.Row():
        activations = figure_with_note(
            "Activations of every neuron", notes["activations"], elem_id="mnist-activations", column=True
        )
        histograms = figure_with_note(
            "This digit's activations against 2,000 real test digits",
            notes["histograms"],
            elem_id="mnist-histograms",
            column=True,
        )
    with gr.Accordion("Numbers behind the pictures (the /mnist API's JSON)", open=False):
        summary = gr.JSON(label="Summary", elem_id="mnist-json")

    gr.Markdown("## What training did to the weights\nComputed once for the shipped network, not per drawing.")
    with gr.Row():
        spectrum = figure_with_note("Singular values: trained vs random initialisation", notes["spectrum"], column=True)
        with gr.Column():
            table = gr.Dataframe(
                headers=["layer", "neurons", "effective rank", "ratio", "needed to reach 99%", "random init"],
                label="Effective rank of the weights (the course saw about 110/128 and 54/64)",
                interactive=False,
            )
            gr.Markdown(
                "*Effective rank* is the course's count: singular values whose running share of the squared total is still below 99%. "
                "*Needed to reach 99%* also counts the one that crosses the line, so it is one more.",
                elem_classes=["figure-note"],
            )
    with gr.Row():
        weights = figure_with_note("Weight matrices fc1 and fc2", notes["weights"], column=True)
        neuron_weights = figure_with_note("fc1 neurons as pictures", notes["neuron_weights"], column=True)
    concentration = figure_with_note(
        "Is one unit one digit? fc1's neurons against the SAE's features",
        notes["concentration"],
        elem_id="mnist-concentration",
    )

    gr.Markdown("## Train your own and watch the rank change")
    with gr.Row():
        epochs = gr.Slider(1, 5, value=3, step=1, label="Epochs")
        seed = gr.Number(value=0, precision=0, label="Seed (same seed, same run)")
        train_button = gr.Button("Train a fresh network", variant="primary")
    note(notes["train"])
    train_status = gr.Markdown()
    with gr.Row():
        with gr.Column():
            train_table = gr.Dataframe(
                headers=["epoch", "loss", "test accuracy (%)", "fc1 rank", "fc2 rank"],
                interactive=False,
                label="After each epoch (ranks: effective rank of the weights)",
            )
        with gr.Column():
            train_plot = figure("Accuracy and effective rank per epoch")
    # The network this tab uses, as the course shows it first (demos/networks.py; filled when opened).
    network_view(
        lambda: networks.mnist_html(MnistExplorer.shared(device, DRAWINGS_AT_ONCE).model), elem_id="mnist-network"
    )
    return Panels(
        **link,
        pad=pad,
        linked=linked,
        sketch=sketch,
        upload=upload,
        send=send,
        gallery=gallery,
        status=status,
        label=label,
        saliency=saliency,
        activations=activations,
        polysemanticity=polysemanticity,
        histograms=histograms,
        sae_features=sae_features,
        summary=summary,
        spectrum=spectrum,
        table=table,
        weights=weights,
        neuron_weights=neuron_weights,
        concentration=concentration,
        epochs=epochs,
        seed=seed,
        train_button=train_button,
        train_status=train_status,
        train_table=train_table,
        train_plot=train_plot,
    )


def wire(blocks: gr.Blocks, panels: Panels, device: torch.device) -> None:
    """The MNIST tab's events: a stroke, the /mnist API, an upload, the gallery, the opening view, training."""
    start_opening(str(device))  # as the server starts, so that the first visitor need not wait

    @panels.filled_by
    def open_tab(progress=gr.Progress()):
        view = kept_opening_view(str(device), progress)
        return {**view.static, "gallery": view.gallery, **copy.deepcopy(view.live)}

    def show_example(selection: gr.SelectData):
        """Put the clicked test digit on the pad (dark on light, like a drawing); the pad's change event analyses it."""
        return example_on_pad(selection.index)

    @panels.filled_by
    @in_background
    def train(epochs, seed, progress=gr.Progress()):
        yield from train_event(epochs, seed, progress, device)

    pad, live = panels["pad"], panels(*LIVE)
    simplenet = serving.queue("mnist-simplenet")
    pad.change(
        panels.filled_by(partial(show_drawing, device=device)),
        inputs=pad,
        outputs=live,
        api_visibility="private",
        trigger_mode="always_last",  # while one stroke is analysed, only the newest waits
        show_progress="hidden",
        **simplenet,
    )
    panels["sketch"].change(
        on_gpu(panels.filled_by(partial(analyse, device=device))),
        inputs=panels["sketch"],
        outputs=live,
        api_name="mnist",
        show_progress="hidden",
        **simplenet,
    )
    panels["upload"].upload(
        upload_to_pad,
        inputs=panels["upload"],
        outputs=panels("pad", "status"),
        api_visibility="private",
        show_progress="hidden",
        **simplenet,
    )
    opening = blocks.load(open_tab, outputs=panels(*STATIC, "gallery", *LIVE), api_visibility="private", **simplenet)
    opening.then(
        panels.filled_by(partial(redraw_if_drawn, device=device)),
        inputs=pad,
        outputs=live,
        api_visibility="private",
        show_progress="hidden",
        **simplenet,
    )
    panels["gallery"].select(show_example, outputs=pad, api_visibility="private", show_progress="hidden", queue=False)
    links.wire(
        blocks,
        panels,
        LINK,
        apply=lambda values: {"linked": example_on_pad(values["example"])},  # on the pad, it analyses itself
        sets=("linked",),
        on_screen=("pad",),
        shown=example_shown,
        nothing="Your own drawing cannot go in a link: click one of the real digits above for one that can.",
    )
    panels["linked"].change(lambda digit: digit, panels["linked"], panels["pad"], api_visibility="private", queue=False)
    panels["train_button"].click(
        on_gpu(train, duration=120),
        inputs=panels("epochs", "seed"),
        outputs=panels(*TRAINING),
        api_name="mnist_train",
        **serving.queue("mnist-train"),
        preprocess=False,
    )


def render(blocks: gr.Blocks, device: torch.device, can_send: bool = True) -> SimpleNamespace:
    """Lay out the MNIST tab inside the current ``gr.Tab`` and wire its events; returns what other tabs link to."""
    panels = layout(device, can_send)
    wire(blocks, panels, device)
    return SimpleNamespace(pad=panels["pad"], send=panels["send"])
