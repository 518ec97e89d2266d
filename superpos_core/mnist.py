"""The course's SimpleNet on MNIST: the model, its data, training, and reference statistics.

The bundled weights (``assets/simplenet_mnist.safetensors``) are reproduced by
``python -m superpos_core.build_assets --mnist-pkl PATH`` (see that module).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from superpos_core import paths, rank
from superpos_core.capture import capture_activations

ASSETS = paths.ASSETS
WEIGHTS_PATH = ASSETS / "simplenet_mnist.safetensors"
PROVENANCE_PATH = ASSETS / "simplenet_mnist.provenance.json"
SAMPLE_PATH = ASSETS / "mnist_sample.npz"

MEAN, STD = 0.1307, 0.3081  # the course's transforms.Normalize((0.1307,), (0.3081,))
LAYERS = ("fc1", "fc2", "fc3")  # Linear outputs, before ReLU, named as named_modules() names them
HIDDEN = ("relu1", "relu2")  # what each hidden neuron passes on: its firing


@dataclass(frozen=True)
class TrainingRecipe:
    """The course's recipe; the defaults are its values."""

    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 1e-3  # torch.optim.Adam's default, which the course used
    seed: int = 0


class SimpleNet(nn.Module):
    """Linear 784 -> 128 -> 64 -> 10 with ReLU, exactly the course's network.

    The ReLUs are modules (not ``torch.relu`` calls) only so that their outputs have names too;
    they hold no parameters, so the weights are interchangeable with the course's.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(128, 64)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, 784)  # (B, 1, 28, 28) or (B, 784) -> (B, 784)
        x = self.relu1(self.fc1(x))  # (B, 128)
        x = self.relu2(self.fc2(x))  # (B, 64)
        return self.fc3(x)  # (B, 10) logits


def fresh_simplenet(seed: int) -> SimpleNet:
    """A SimpleNet initialised as PyTorch would, from its own seeded generator.

    Using a private ``torch.Generator`` instead of ``torch.manual_seed`` keeps two users who
    train at the same moment from reseeding each other.
    """
    model = SimpleNet()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in (model.fc1, model.fc2, model.fc3):
            layer.weight.copy_(rank.pytorch_linear_init(*layer.weight.shape, generator=generator))
            bound = 1 / layer.in_features**0.5  # nn.Linear's bias init
            layer.bias.uniform_(-bound, bound, generator=generator)
    return model


def save_simplenet(model: SimpleNet, path: str | os.PathLike) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))


def load_simplenet(path: str | os.PathLike = WEIGHTS_PATH, device: str | torch.device = "cpu") -> SimpleNet:
    """Load SimpleNet weights from safetensors, ready for inference (eval mode, no grads)."""
    model = SimpleNet()
    model.load_state_dict(load_file(str(path)))
    model.eval().requires_grad_(False).to(device)
    return model


def normalize(pixels: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """Pixels in [0, 1] (any leading shape, ending in 28x28 or 784) -> normalised (N, 784) floats."""
    x = torch.as_tensor(np.asarray(pixels, dtype=np.float32), device=device)
    return ((x - MEAN) / STD).reshape(-1, 784)


def bytes_to_input(images: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 digits (N, 28, 28) as MNIST stores them -> normalised model input, as ToTensor does."""
    return normalize(images.astype(np.float32) / 255.0, device)


# --- data ---------------------------------------------------------------------------------------


@dataclass
class Digits:
    """Images as MNIST stores them (uint8, 0 = paper, 255 = ink) with their labels."""

    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class MnistSplits:
    train: Digits
    test: Digits
    source: str


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: a pickle naming any other callable is refused, so a
    file swapped for a malicious one cannot run code when the app reads it."""

    # What numpy arrays pickle to (and _codecs.encode, which turns the text of a protocol-2 pickle written by Python 3 back into bytes).
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in an MNIST pickle (only numpy arrays are)")
        return super().find_class(module, name)


def load_mnist_pickle(path: str | os.PathLike) -> MnistSplits:
    """Read the classic ``mnist.pkl.gz`` (train 50k, validation 10k, test 10k).

    Its pixels are the original bytes divided by 256, so ``x * 256`` recovers them exactly.
    Train and validation together are MNIST's 60,000 training digits.

    Raises:
        pickle.UnpicklingError: the file holds anything but numpy arrays.
    """
    with gzip.open(path, "rb") as handle:
        (train_x, train_y), (val_x, val_y), (test_x, test_y) = _ArraysOnly(handle, encoding="latin1").load()

    def to_digits(x: np.ndarray, y: np.ndarray) -> Digits:
        return Digits(np.round(x * 256).astype(np.uint8).reshape(-1, 28, 28), y.astype(np.int64))

    train = to_digits(np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y]))
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return MnistSplits(train, to_digits(test_x, test_y), source=f"mnist.pkl.gz (sha256 {digest})")


def load_torchvision_mnist(root: str | os.PathLike, download: bool = False) -> MnistSplits:
    """MNIST through torchvision (downloads to ``root`` when ``download`` and online)."""
    from torchvision.datasets import MNIST

    train = MNIST(str(root), train=True, download=download)
    test = MNIST(str(root), train=False, download=download)
    return MnistSplits(
        Digits(train.data.numpy(), train.targets.numpy().astype(np.int64)),
        Digits(test.data.numpy(), test.targets.numpy().astype(np.int64)),
        source="torchvision.datasets.MNIST",
    )


def data_dir() -> Path:
    """Where full MNIST is looked for: ``$SUPERPOS_DATA_DIR``, else ``~/.cache/superpos``."""
    return Path(os.environ.get("SUPERPOS_DATA_DIR", Path.home() / ".cache" / "superpos"))


def find_full_mnist() -> MnistSplits | None:
    """Full MNIST if it is already on this machine (never downloads), else None."""
    pickle_path = os.environ.get("SUPERPOS_MNIST_PKL")
    if pickle_path and Path(pickle_path).is_file():
        return load_mnist_pickle(pickle_path)
    try:
        return load_torchvision_mnist(data_dir(), download=False)
    except (RuntimeError, OSError):  # torchvision raises RuntimeError when the files are absent
        return None


@dataclass
class MnistSample:
    """The bundled sample of real MNIST digits (``assets/mnist_sample.npz``)."""

    train: Digits
    test: Digits
    provenance: dict = field(default_factory=dict)


def load_sample(path: str | os.PathLike = SAMPLE_PATH) -> MnistSample:
    with np.load(path) as data:
        return MnistSample(
            Digits(data["train_images"], data["train_labels"].astype(np.int64)),
            Digits(data["test_images"], data["test_labels"].astype(np.int64)),
            json.loads(str(data["provenance"])),
        )


# --- training and evaluation --------------------------------------------------------------------


@torch.no_grad()
def accuracy(model: nn.Module, digits: Digits, device: str | torch.device = "cpu", batch: int = 2000) -> float:
    correct = 0
    for start in range(0, len(digits), batch):
        x = bytes_to_input(digits.images[start : start + batch], device)
        y = torch.as_tensor(digits.labels[start : start + batch], device=device)
        correct += int((model(x).argmax(1) == y).sum())
    return correct / len(digits)


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    loss: float  # mean training loss over the epoch
    test_accuracy: float
    effective_rank: dict[str, int]  # of each hidden layer's weight matrix


def weight_ranks(model: SimpleNet, threshold: float = rank.DEFAULT_THRESHOLD) -> dict[str, int]:
    return {
        name: rank.effective_rank(rank.singular_values(getattr(model, name).weight), threshold)
        for name in ("fc1", "fc2")
    }


def train_epochs(
    train: Digits,
    test: Digits,
    recipe: TrainingRecipe = TrainingRecipe(),
    device: str | torch.device = "cpu",
    model: SimpleNet | None = None,
    on_batch: Callable[[int, int, int], None] | None = None,
) -> Iterator[tuple[SimpleNet, EpochReport]]:
    """Train a fresh SimpleNet with the course's recipe, yielding after every epoch.

    All randomness (initialisation, shuffling) comes from one private generator seeded with
    ``recipe.seed``, so the run is reproducible and independent of anything else in the process.
    ``on_batch(epoch, batches_done, batches_per_epoch)``, when given, is called after every batch
    (a progress bar that moves within an epoch).
    """
    generator = torch.Generator().manual_seed(recipe.seed)
    if model is None:
        model = fresh_simplenet(recipe.seed)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    x_all = bytes_to_input(train.images, device)  # (N, 784), normalised once up front
    y_all = torch.as_tensor(train.labels, device=device)
    per_epoch = -(-len(train) // recipe.batch_size)
    for epoch in range(1, recipe.epochs + 1):
        order = torch.randperm(len(train), generator=generator).to(device)
        total, batches = 0.0, 0
        for start in range(0, len(train), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_all[idx]), y_all[idx])
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
            if on_batch is not None:
                on_batch(epoch, batches, per_epoch)
        model.eval()
        report = EpochReport(epoch, total / batches, accuracy(model, test, device), weight_ranks(model))
        yield model, report
        model.train()
    model.eval()


# --- reference statistics over the bundled test digits -----------------------------------------


@dataclass
class Reference:
    """Activations of the shipped model over the bundled test digits, computed once."""

    activations: dict[str, np.ndarray]  # layer -> (N, units), for fc1, fc2, fc3, relu1, relu2
    labels: np.ndarray  # (N,)
    class_means: dict[str, np.ndarray]  # hidden layer (relu1, relu2) -> (10, units) mean firing

    def typical_firing(self, hidden: str) -> float:
        """How many of a hidden layer's neurons fire (output above zero after the ReLU) for the median digit.

        Args:
            hidden: "relu1" (fc1's neurons) or "relu2" (fc2's).
        """
        return float(np.median((self.activations[hidden] > 0).sum(axis=1)))  # (N,) neurons firing per digit -> median

    def silent_neurons(self, hidden: str) -> int:
        """Neurons of a hidden layer that fire for none of the digits (every class mean is zero)."""
        return int((self.class_means[hidden].max(axis=0) <= 0).sum())

    def multi_class_neurons(self, hidden: str, level: float = 0.5, classes: int = 2) -> int:
        """Neurons whose mean firing reaches ``level`` × their own peak class mean on at least ``classes`` digit classes.

        Args:
            hidden: "relu1" or "relu2".
            level: the share of a neuron's largest class mean that a class must reach to count.
            classes: how many classes must reach it. Silent neurons (peak 0) never count.
        """
        means = self.class_means[hidden]  # (10, units)
        peak = means.max(axis=0)  # (units,)
        reached = (means >= level * peak) & (peak > 0)  # (10, units)
        return int((reached.sum(axis=0) >= classes).sum())


@torch.no_grad()
def reference_activations(model: SimpleNet, digits: Digits, device: str | torch.device = "cpu") -> Reference:
    with capture_activations(model, LAYERS + HIDDEN) as acts:
        model(bytes_to_input(digits.images, device))
    arrays = {name: t.cpu().numpy() for name, t in acts.items()}
    means = {name: np.stack([arrays[name][digits.labels == c].mean(0) for c in range(10)]) for name in HIDDEN}
    return Reference(arrays, digits.labels, means)
