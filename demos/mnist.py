"""The MNIST tab: draw a digit and watch a real trained network's neurons, weights and ranks."""
from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import gradio as gr
import numpy as np
import torch

from demos.common import MAX_SEED, ReadableUploads, figure, in_background, note, whole_number
from demos import networks  # the network view (issue 13)
from demos.common import network_view
from superpos_core import figures, mnist
from superpos_core.drawing import DrawingError, prepare_digit, editor_picture
from superpos_core.mnist_explorer import MnistExplorer, bundled_reference, train_live

CANVAS = 280  # px; the digit is rescaled to 20 px anyway, so the canvas only sets the feel
BRUSH = 12  # radius in canvas px: a 24 px stroke, about an eighth of a full-height digit, like MNIST's pen
NO_DIGIT = "✏️ Draw a digit from 0 to 9 on the canvas, or click one of the real MNIST digits below it."

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


class SafeSketchpad(ReadableUploads, gr.Sketchpad):
    """A Sketchpad whose unreadable uploads (API callers can send any file) give a clear message."""

    upload_hint = 'Send {"background": handle_file(path), "layers": [], "composite": None}, with handle_file from gradio_client.'


DRAWINGS_AT_ONCE = 4  # drawings analysed at the same moment; the live figures are built ahead for each


def analyse(picture, device: torch.device = torch.device("cpu")):
    """The per-drawing event (``api_name="mnist"``): the JSON summary first, then every live panel."""
    try:
        result = MnistExplorer.shared(device, DRAWINGS_AT_ONCE).analyse(picture)
    except DrawingError as error:
        # Hidden in the page (the failure handler shows it beside the canvas), sent to API callers.
        raise gr.Error(str(error), visible=False, print_exception=False) from None
    p = result.summary["probabilities"][result.summary["prediction"]]
    status = f"The network reads **{result.summary['prediction']}** ({p:.0%} sure)."
    if result.inverted:
        status += " (Light ink on a dark background was flipped to dark on light.)"
    return (result.summary, status, result.probabilities, result.seen_and_saliency, result.activations, result.polysemanticity, result.histograms)


def explain_problem(picture):
    """Runs only when ``analyse`` failed: say why beside the canvas and clear stale panels."""
    try:
        prepare_digit(editor_picture(picture))
        message = "Something went wrong reading this drawing. Try drawing it again."
    except DrawingError as error:
        message = NO_DIGIT if "empty" in str(error) else f"⚠️ {error}"
    return (None, message, None, None, None, None, None)


def render(blocks: gr.Blocks, device: torch.device, can_send: bool = True) -> SimpleNamespace:
    """Lay out the MNIST tab inside the current ``gr.Tab``; returns what other tabs link to."""

    def explorer() -> MnistExplorer:
        return MnistExplorer.shared(device, DRAWINGS_AT_ONCE)

    notes = measured_notes(bundled_reference())

    def static_panels():
        e = explorer()
        figs = e.static_figures
        examples = [(255 - np.kron(img, np.ones((3, 3), np.uint8)), str(label)) for img, label in e.example_digits(10)]
        return figs["spectrum"], e.rank_table(), figs["weights"], figs["neuron_weights"], examples, e.example_digits(10)

    def show_example(examples, selection: gr.SelectData):
        """Put the clicked test digit on the canvas (dark on light, like a drawing) and analyse it.

        Analysed here rather than through the canvas's change event: a canvas filled by the
        server does not report a change, only strokes do.
        """
        image, _label = examples[selection.index]
        paper = 255 - np.kron(np.asarray(image, dtype=np.uint8), np.ones((CANVAS // 28, CANVAS // 28), np.uint8))
        rgb = np.repeat(paper[..., None], 3, axis=2)
        return ({"background": rgb, "layers": [], "composite": rgb}, *analyse(rgb, device))

    @in_background
    def train(epochs, seed, progress=gr.Progress()):
        # Sent as they are (preprocess=False), so that a wrong value gets a message naming its control.
        epochs, seed = whole_number(epochs, "Epochs", 1, 5), whole_number(0 if seed is None else seed, "Seed", -MAX_SEED, MAX_SEED)
        rows, acc, ranks = [], [], {"fc1": [], "fc2": []}
        progress(0, desc="Preparing the data")
        for run in train_live(epochs, seed, device):
            r = run.report
            rows.append([r.epoch, round(r.loss, 4), round(100 * r.test_accuracy, 2), r.effective_rank["fc1"], r.effective_rank["fc2"]])
            acc.append(r.test_accuracy)
            for name in ranks:
                ranks[name].append(r.effective_rank[name])
            figure = figures.training_progress([row[0] for row in rows], acc, ranks, {"fc1": 128, "fc2": 64}, epochs)
            progress(r.epoch / epochs, desc=f"Epoch {r.epoch} of {epochs}")
            status = f"Epoch {r.epoch}/{epochs} on {run.train_size:,} digits from {run.data_source}: test accuracy {r.test_accuracy:.1%}."
            yield status, rows, figures.to_rgb(figure)
        yield status.replace(f"Epoch {epochs}/{epochs}", f"Done: {epochs} epoch{'s' * (epochs > 1)}"), rows, figures.to_rgb(figure)

    gr.Markdown(
        "## Draw a digit\nA real network (the course's SimpleNet: 784 → 128 → 64 → 10, trained on all 60,000 MNIST training digits, "
        "97.7% right on the 10,000 test digits) reads your drawing. Every panel updates as you draw."
    )
    examples_state = gr.State([])
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            sketch = SafeSketchpad(
                label="Your digit",
                type="pil",
                image_mode=None,  # keep what arrives (16-bit, palette, alpha); superpos_core reads every mode
                canvas_size=(CANVAS, CANVAS),
                fixed_canvas=True,
                brush=gr.Brush(default_size=BRUSH, colors=["#000000"], default_color="#000000", color_mode="fixed"),
                layers=False,
                transforms=(),
                sources=("upload", "clipboard"),
                format="png",
                elem_id="mnist-sketchpad",
            )
            send = gr.Button("Send this drawing to the ResNet tab", size="sm", elem_id="mnist-send", visible=can_send)
            gallery = gr.Gallery(label="Or click a real MNIST test digit", columns=5, height=260, allow_preview=False, object_fit="contain", elem_id="mnist-examples")
        with gr.Column(scale=5, min_width=300):
            status = gr.Markdown(NO_DIGIT, elem_id="mnist-status")
            label = gr.Label(label="Prediction", num_top_classes=4, elem_id="mnist-label")
            note(notes["label"])
            saliency = figure("What the network sees, and why it answers", elem_id="mnist-saliency")
            note(notes["saliency"])
    with gr.Row():
        with gr.Column():
            activations = figure("Activations of every neuron")
            note(notes["activations"])
        with gr.Column():
            polysemanticity = figure("Is one neuron one digit? (polysemanticity)")
            note(notes["polysemanticity"])
    histograms = figure("This digit's activations against 2,000 real test digits")
    note(notes["histograms"])
    with gr.Accordion("Numbers behind the pictures (the /mnist API's JSON)", open=False):
        summary = gr.JSON(label="Summary", elem_id="mnist-json")

    gr.Markdown("## What training did to the weights\nComputed once for the shipped network, not per drawing.")
    with gr.Row():
        with gr.Column():
            spectrum = figure("Singular values: trained vs random initialisation")
            note(notes["spectrum"])
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
        with gr.Column():
            weights = figure("Weight matrices fc1 and fc2")
            note(notes["weights"])
        with gr.Column():
            neuron_weights = figure("fc1 neurons as pictures")
            note(notes["neuron_weights"])

    gr.Markdown("## Train your own and watch the rank change")
    with gr.Row():
        epochs = gr.Slider(1, 5, value=3, step=1, label="Epochs")
        seed = gr.Number(value=0, precision=0, label="Seed (same seed, same run)")
        train_button = gr.Button("Train a fresh network", variant="primary")
    note(notes["train"])
    train_status = gr.Markdown()
    with gr.Row():
        with gr.Column():
            train_table = gr.Dataframe(headers=["epoch", "loss", "test accuracy (%)", "fc1 rank", "fc2 rank"], interactive=False, label="After each epoch (ranks: effective rank of the weights)")
        with gr.Column():
            train_plot = figure("Accuracy and effective rank per epoch")

    live_outputs = [summary, status, label, saliency, activations, polysemanticity, histograms]
    drawing_event = sketch.change(
        partial(analyse, device=device),
        inputs=sketch,
        outputs=live_outputs,
        api_name="mnist",
        trigger_mode="always_last",  # while one frame is analysed, only the newest stroke waits
        show_progress="hidden",
        concurrency_limit=DRAWINGS_AT_ONCE,
        concurrency_id="mnist-simplenet",
    )
    drawing_event.failure(explain_problem, inputs=sketch, outputs=live_outputs, api_visibility="private", show_progress="hidden", queue=False)
    blocks.load(static_panels, outputs=[spectrum, table, weights, neuron_weights, gallery, examples_state], api_visibility="private", concurrency_limit=DRAWINGS_AT_ONCE, concurrency_id="mnist-simplenet")
    gallery.select(show_example, inputs=examples_state, outputs=[sketch, *live_outputs], api_visibility="private", show_progress="hidden", concurrency_limit=DRAWINGS_AT_ONCE, concurrency_id="mnist-simplenet")
    train_button.click(train, inputs=[epochs, seed], outputs=[train_status, train_table, train_plot], api_name="mnist_train", concurrency_limit=2, concurrency_id="mnist-train", preprocess=False)

    # The network this tab uses, as the course shows it first (demos/networks.py; filled when opened).
    network_view(lambda: networks.mnist_html(explorer().model), elem_id="mnist-network")
    return SimpleNamespace(sketch=sketch, send=send)
