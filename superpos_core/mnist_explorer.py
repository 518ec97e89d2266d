"""Everything the MNIST tab shows about one drawing, usable from a notebook too.

from superpos_core.mnist_explorer import MnistExplorer
explorer = MnistExplorer()
result = explorer.analyse(picture)   # array, PIL image, path or Sketchpad value
result.summary                       # the numbers, as the app's /mnist API returns them
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from superpos_core import drawing, mnist, mnist_sae, rank
from superpos_core.attribution import integrated_gradients
from superpos_core.capture import capture_activations
from superpos_core.figures import mnist as mnist_figures
from superpos_core.figures.base import to_rgb
from superpos_core.figures.live import LivePanel, PanelPool
from superpos_core.serving import Kept

HIDDEN_SIZES = {"fc1": 128, "fc2": 64}


@dataclass
class DigitAnalysis:
    summary: dict  # the JSON contract: prediction, probabilities, activations, effective_rank, sae
    probabilities: dict[str, float]  # "0".."9" -> probability, for a label component
    pictures: dict[str, np.ndarray]  # each live figure's RGB pixels, by its name in LIVE_FIGURES, in that order
    top_neurons: list[int]
    inverted: bool


@dataclass(frozen=True)
class DigitReading:
    """What one drawing gave the network, for the live figures to draw."""

    pixels: np.ndarray  # (28, 28) the prepared digit, in [0, 1]
    attributions: np.ndarray  # (28, 28) integrated gradients towards the prediction
    values: dict[str, np.ndarray]  # layer name -> (units,) its activations
    sae: mnist_sae.FeatureReading  # fc1's firing read by the bundled SAE

    @property
    def prediction(self) -> int:
        return int(np.argmax(self.values["fc3"]))


@dataclass(frozen=True)
class LiveFigure:
    """One live figure of the MNIST tab: how a set of them is built, and how one drawing is drawn on it."""

    make: Callable[[MnistExplorer], LivePanel]  # built once per set (a set per drawing in progress)
    draw: Callable[[LivePanel, DigitReading], np.ndarray]  # the drawing's picture, as RGB pixels


# Every live figure, by name, in the order the tab lists them. Adding one is a line here and its panel class in
# superpos_core/figures/mnist.py; the tab (demos/mnist.py) then places it by this name.
LIVE_FIGURES: dict[str, LiveFigure] = {
    "saliency": LiveFigure(
        lambda explorer: mnist_figures.SaliencyPanel(),
        lambda panel, reading: panel.update(reading.pixels, reading.attributions),
    ),
    "activations": LiveFigure(
        lambda explorer: mnist_figures.ActivationPanel(explorer.activation_limit),
        lambda panel, reading: panel.update(reading.values),
    ),
    "polysemanticity": LiveFigure(
        lambda explorer: mnist_figures.PolysemanticityPanel(explorer.reference.class_means["relu1"]),
        lambda panel, reading: panel.update(reading.values["relu1"]),
    ),
    "histograms": LiveFigure(
        lambda explorer: mnist_figures.HistogramPanel({n: explorer.reference.activations[n] for n in mnist.LAYERS}),
        lambda panel, reading: panel.update(reading.values),
    ),
    "sae_features": LiveFigure(
        lambda explorer: mnist_figures.SAEFeaturePanel(
            explorer.sae.pictures, explorer.sae.slots, explorer.sae.top_digits
        ),
        lambda panel, reading: panel.update(
            reading.sae.features,
            reading.sae.votes_for,
            reading.sae.without,
            reading.prediction,
            reading.sae.explained_variance,
        ),
    ),
}


@dataclass
class LiveRun:
    """One epoch of a live training run, with the data it ran on."""

    report: mnist.EpochReport
    data_source: str
    train_size: int


class MnistExplorer:
    """The shipped SimpleNet with its reference statistics, analysing one digit at a time.

    Safe to share between threads: the model is read-only, and each thread draws on its own
    figures (matplotlib figures must not be drawn by two threads at once).
    """

    def __init__(
        self,
        weights=mnist.WEIGHTS_PATH,
        sae_weights=mnist_sae.SAE_PATH,
        device: str | torch.device = "cpu",
        threshold: float = rank.DEFAULT_THRESHOLD,
        ready_panels: int = 1,
    ):
        self.device = torch.device(device)
        self.threshold = threshold
        self.model = mnist.load_simplenet(weights, self.device)
        self.sample = mnist.load_sample()
        self.reference = mnist.reference_activations(self.model, self.sample.test, self.device)
        self.sae = mnist_sae.MnistSAE.load(self.model, self.sample.test, sae_weights)
        self.weights = {name: getattr(self.model, name).weight.detach().cpu().numpy() for name in HIDDEN_SIZES}
        self.trained_ranks = {name: rank.summarize(w, threshold) for name, w in self.weights.items()}
        self.baseline_ranks = {
            name: rank.random_baseline(w.shape, seed=0, threshold=threshold) for name, w in self.weights.items()
        }
        # One fixed colour scale for all three layers and every drawing: 99.5% of the sample's values.
        values = np.concatenate([np.abs(self.reference.activations[n]).ravel() for n in mnist.LAYERS])
        self.activation_limit = float(np.percentile(values, 99.5))
        self.blank = mnist.normalize(np.zeros((28, 28)), self.device)[0]  # blank paper, for IG
        self._panels = PanelPool(lambda _key: self._new_live_panels())
        self._panels.prepare(
            ready_panels
        )  # one set of live figures per drawing that may be in progress at once (~0.25 s each)

    _shared: Kept[MnistExplorer] = Kept()  # device -> the process's explorer, built once

    @classmethod
    def shared(cls, device: str | torch.device = "cpu", ready_panels: int = 1) -> MnistExplorer:
        """One explorer per device for the whole process, built on first use (with ``ready_panels`` sets of figures)."""
        return cls._shared.get_or_make(str(device), lambda: cls(device=device, ready_panels=ready_panels))

    @property
    def effective_ranks(self) -> dict[str, int]:
        return {name: summary.effective_rank for name, summary in self.trained_ranks.items()}

    # --- figures computed once ------------------------------------------------------------------

    @cached_property
    def static_figures(self) -> dict[str, np.ndarray]:
        """Weight heatmaps, fc1's weights as images, the spectra and neurons against SAE features, rendered once."""
        concentration = self.concentration
        made = {
            "weights": mnist_figures.weight_heatmaps(self.weights),
            "neuron_weights": mnist_figures.neuron_weight_grid(self.weights["fc1"]),
            "spectrum": mnist_figures.spectrum(self.trained_ranks, self.baseline_ranks, self.threshold),
            "concentration": mnist_figures.concentration(
                concentration.neurons, concentration.features, concentration.chance, concentration.top
            ),
        }
        return {name: to_rgb(figure) for name, figure in made.items()}

    @cached_property
    def concentration(self) -> mnist_sae.Concentration:
        """How concentrated on one digit class the strongest test digits of each fc1 neuron and each SAE feature are."""
        return mnist_sae.concentration(
            self.reference.activations["relu1"], self.sae.digit_features, self.sample.test.labels
        )

    def rank_table(self) -> list[list]:
        """Rows of (layer, neurons, effective rank, ratio, needed to reach, random-init rank)."""
        return [
            [
                name,
                s.size,
                s.effective_rank,
                round(s.ratio, 3),
                s.rank_to_reach,
                self.baseline_ranks[name].effective_rank,
            ]
            for name, s in self.trained_ranks.items()
        ]

    # --- per drawing ----------------------------------------------------------------------------

    def _new_live_panels(self) -> dict[str, LivePanel]:
        return {name: figure.make(self) for name, figure in LIVE_FIGURES.items()}

    def analyse(self, picture) -> DigitAnalysis:
        """Prepare a picture as MNIST did, run the network once, and draw every live panel.

        Raises ``drawing.DrawingError`` (with a message for the learner) for unreadable input.
        """
        prepared = drawing.prepare_digit(drawing.editor_picture(picture))
        x = mnist.normalize(prepared.pixels, self.device)  # (1, 784)
        with torch.no_grad(), capture_activations(self.model, mnist.LAYERS + mnist.HIDDEN) as acts:
            logits = self.model(x)[0]
        probabilities = torch.softmax(logits, 0).cpu().numpy()
        prediction = int(probabilities.argmax())
        attributions = integrated_gradients(self.model, x[0], prediction, self.blank).reshape(28, 28).cpu().numpy()
        values = {name: acts[name][0].cpu().numpy() for name in acts}
        features = self.sae.read(acts["relu1"][0])

        summary = {
            "prediction": prediction,
            "probabilities": [round(float(p), 6) for p in probabilities],
            "activations": {name: [round(float(v), 5) for v in values[name]] for name in mnist.LAYERS},
            "effective_rank": self.effective_ranks,
            "sae": features.summary(),
        }
        reading = DigitReading(prepared.pixels, attributions, values, features)
        with self._panels.borrow() as panels:  # one set of figures per drawing in progress
            return DigitAnalysis(
                summary=summary,
                probabilities={str(d): float(p) for d, p in enumerate(probabilities)},
                pictures={name: figure.draw(panels[name], reading) for name, figure in LIVE_FIGURES.items()},
                top_neurons=panels["polysemanticity"].neurons,  # read while the panel is ours
                inverted=prepared.inverted,
            )

    def example_digits(self, count: int = 10) -> list[tuple[np.ndarray, int]]:
        """Real test digits to click, cycling through the classes 0..9: (28x28 uint8 image, label)."""
        return example_digits(self.sample.test, count)


def example_digits(digits: mnist.Digits, count: int = 10) -> list[tuple[np.ndarray, int]]:
    """The first ``count`` digits of ``digits`` cycling through the classes 0..9: (28x28 uint8 image, label)."""
    per_class = [np.flatnonzero(digits.labels == digit) for digit in range(10)]
    chosen = [int(per_class[i % 10][i // 10]) for i in range(count)]
    return [(digits.images[i], int(digits.labels[i])) for i in chosen]


@functools.cache
def bundled_examples(count: int = 10) -> tuple[tuple[np.ndarray, int], ...]:
    """``example_digits`` of the bundled test digits, read once per process (no network needed)."""
    return tuple(example_digits(mnist.load_sample().test, count))


@functools.cache
def bundled_reference() -> mnist.Reference:
    """The shipped SimpleNet's activations over the bundled 2,000 test digits, on the CPU, computed once per process.

    The MNIST tab's notes quote numbers measured on it (about 0.2 s, when the tab is laid out).
    """
    return mnist.reference_activations(mnist.load_simplenet(mnist.WEIGHTS_PATH), mnist.load_sample().test)


@functools.cache
def bundled_concentration() -> mnist_sae.Concentration:
    """``mnist_sae.concentration`` of the shipped SimpleNet and SAE over the bundled test digits, on the CPU, once per process.

    The MNIST tab's note beside the figure quotes numbers measured on it (when the tab is laid out).
    """
    sample = mnist.load_sample()
    model = mnist.load_simplenet(mnist.WEIGHTS_PATH)
    sae = mnist_sae.MnistSAE.load(model, sample.test)
    return mnist_sae.concentration(bundled_reference().activations["relu1"], sae.digit_features, sample.test.labels)


def train_live(
    epochs: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int, int, int], None] | None = None,
) -> Iterator[LiveRun]:
    """Train a fresh SimpleNet with the course's recipe; yield after every epoch (``on_batch`` as ``mnist.train_epochs`` calls it).

    Uses full MNIST when it is already on this machine (see ``mnist.find_full_mnist``), else the
    bundled 10,000 training digits; accuracy is always measured on the bundled 2,000 test digits
    so runs compare. Each call has its own model and RNG: runs never touch each other or the
    shipped model.
    """
    sample = mnist.load_sample()
    full = mnist.find_full_mnist()
    train = full.train if full else sample.train
    source = f"full MNIST ({full.source})" if full else "the bundled sample of real MNIST"
    recipe = mnist.TrainingRecipe(epochs=epochs, seed=seed)
    for _model, report in mnist.train_epochs(train, sample.test, recipe, device, on_batch=on_batch):
        yield LiveRun(report, source, len(train))
