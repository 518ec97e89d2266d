"""The ResNets the app can explore: a catalogue (data), loading, and per-image analysis.

    from superpos_core import resnets
    model = resnets.load("mnist-resnet")
    result = resnets.analyse_image(model, "cat.jpg")     # every conv layer, one forward pass
    result.layers["layer1.0.conv1"].top_channels

ImageNet models come from torchvision, which downloads their weights once to
``~/.cache/torch/hub/checkpoints`` (``$TORCH_HOME`` moves it). With no network and no cached file a
model is reported unavailable, with the reason and how to get it; nothing else is put in its place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from superpos_core import drawing, mnist, mnist_resnet
from superpos_core.capture import capture_activations
from superpos_core.conv_rank import LayerRank, conv_layer_names, rank_table
from superpos_core.paths import cache_dir
from superpos_core.serving import Kept, Recent


@dataclass(frozen=True)
class ResNetEntry:
    key: str
    title: str
    source: str  # "bundled" or "torchvision"
    input_kind: str  # "digit" (28x28 MNIST-style) or "photo" (ImageNet transforms)
    builder: str | None = None  # torchvision.models function name
    weights: str | None = None  # torchvision weights enum, e.g. "ResNet50_Weights.IMAGENET1K_V2"
    about: str = ""


CATALOGUE: dict[str, ResNetEntry] = {
    entry.key: entry
    for entry in (
        ResNetEntry(
            "mnist-resnet",
            "Small ResNet-18 trained on MNIST (bundled)",
            "bundled",
            "digit",
            about="20 conv layers, 16–128 channels; trained here on real MNIST, works offline.",
        ),
        ResNetEntry(
            "resnet18",
            "ResNet-18, ImageNet (torchvision)",
            "torchvision",
            "photo",
            "resnet18",
            "ResNet18_Weights.IMAGENET1K_V1",
            "20 conv layers, 64–512 channels.",
        ),
        ResNetEntry(
            "resnet50",
            "ResNet-50, ImageNet (torchvision)",
            "torchvision",
            "photo",
            "resnet50",
            "ResNet50_Weights.IMAGENET1K_V2",
            "53 conv layers, 64–2048 channels: the course's model.",
        ),
    )
}
DEFAULT = "mnist-resnet"


class ModelUnavailable(RuntimeError):
    """The model's weights are not on this machine and cannot be fetched now; says how to get them."""


class ImageError(ValueError):
    """A picture the model cannot read; the message is meant for the learner."""


def _weights_enum(entry: ResNetEntry):
    import torchvision.models as tvm

    enum_name, member = entry.weights.split(".")
    return getattr(getattr(tvm, enum_name), member)


def preprocessing(entry: ResNetEntry):
    """The torchvision preprocessing (resize, crop, normalise) that goes with ``entry``'s weights; downloads nothing."""
    return _weights_enum(entry).transforms()


def checkpoint_path(entry: ResNetEntry) -> Path:
    """Where torchvision caches this model's weights."""
    url = _weights_enum(entry).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def how_to_fetch(entry: ResNetEntry) -> str:
    return (
        f"On a machine with internet, run `python -c \"import torchvision; torchvision.models.{entry.builder}(weights='{entry.weights.split('.')[1]}')\"` "
        f"once (torchvision caches the weights), or copy `{checkpoint_path(entry).name}` into `{checkpoint_path(entry).parent}`."
    )


RETRY_AFTER_S = (
    300.0  # after a failed download, loading the model fails at once for this long unless a retry is asked for
)
REASON_CHARS = 200  # the cause of a failure is quoted at most this long


@dataclass(frozen=True)
class DownloadFailure:
    reason: (
        str  # plain text for the learner: no angle brackets (a toast reads "<urlopen ...>" as HTML and drops the rest)
    )
    when: float  # time.monotonic() of the attempt


def _reason(error: BaseException) -> str:
    """Why a load failed, in words a toast shows whole: urllib's "<urlopen error ...>" loses its brackets."""
    import urllib.error

    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        text = f"no connection to the download server ({error.reason})"
    else:
        text = f"{type(error).__name__}: {error}"
    text = " ".join(text.replace("<", "‹").replace(">", "›").split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def status(key: str) -> tuple[bool, str]:
    """(available now, a sentence for the learner that names the model) without downloading anything."""
    entry = CATALOGUE[key]
    if entry.source == "bundled":
        return True, "Bundled with the app: ready."
    failure = _failed_downloads.get(key)  # one dict read: atomic, no lock needed
    if failure is not None:
        return False, _unavailable(entry, failure)
    if checkpoint_path(entry).is_file():
        return True, f"ImageNet weights cached at `{checkpoint_path(entry)}`: ready."
    return (
        False,
        f"Not on this machine yet: choosing {entry.title} downloads its ImageNet weights once ({checkpoint_path(entry).name}, through torchvision). {how_to_fetch(entry)}",
    )


def _unavailable(entry: ResNetEntry, failure: DownloadFailure) -> str:
    left = RETRY_AFTER_S - (time.monotonic() - failure.when)
    again = (
        f"The app will not try the download again on its own for {max(1, round(left / 60))} min; press “Try the download again” to retry now."
        if left > 0
        else "The next use tries the download again."
    )
    return f"Unavailable: {entry.title} needs its ImageNet weights, which are not on this machine and could not be downloaded or read ({failure.reason}). {how_to_fetch(entry)} {again}"


_failed_downloads: dict[str, DownloadFailure] = {}  # model -> its last failed load


@dataclass
class LoadedResNet:
    entry: ResNetEntry
    model: nn.Module
    categories: list[str]
    conv_layers: list[str]
    modules: dict[str, nn.Module]
    weights_id: str  # identifies the exact weights, for caches
    device: torch.device
    transform: object = None  # torchvision's preprocessing for photo models

    def describe(self, layer: str) -> str:
        return repr(self.modules[layer])


def build(key: str) -> nn.Module:
    """The architecture with random weights (layer names, tests). Never shown to a user as a model."""
    entry = CATALOGUE[key]
    if entry.source == "bundled":
        return mnist_resnet.MnistResNet()
    import torchvision.models as tvm

    return getattr(tvm, entry.builder)(weights=None)


@functools.cache
def layer_names(key: str) -> list[str]:
    """Every Conv2d of the model, by module name; needs no weights (built once per process; do not mutate)."""
    return conv_layer_names(build(key))


# (model, device) -> the loaded model, once per process: one load at a time per model (a slow download never
# holds up another model's load), and a loaded model is read without waiting on any load.
_models: Kept[LoadedResNet] = Kept()


def register(loaded: LoadedResNet) -> LoadedResNet:
    """Make ``load(loaded.entry.key)`` return ``loaded`` from now on in this process, on ``loaded.device``.

    For a notebook or a benchmark that brings its own copy of a catalogue model (ResNet-50 with random
    weights, say): the tab's handlers then use it as if ``load`` had loaded it.
    """
    return _models.put((loaded.entry.key, str(loaded.device)), loaded)


def forget(key: str, device: str | torch.device = "cpu") -> LoadedResNet | None:
    """Drop the process's copy of a model (the next ``load`` reads it again); returns what was kept, or None."""
    return _models.forget((key, str(torch.device(device))))


def load(key: str, device: str | torch.device = "cpu", retry: bool = False) -> LoadedResNet:
    """Load (once per process) a catalogue model. Raises ``ModelUnavailable`` with instructions.

    A failed download is remembered for ``RETRY_AFTER_S`` per model: until then loading it fails at
    once (a layer switch must not wait on a network that is not there), unless ``retry`` asks anew.
    """
    if key not in CATALOGUE:
        raise ModelUnavailable(f"Unknown model {key!r}. Choose one of: {', '.join(CATALOGUE)}.")
    device = torch.device(device)
    return _models.get_or_make((key, str(device)), lambda: _load(CATALOGUE[key], device, retry))


def _load(entry: ResNetEntry, device: torch.device, retry: bool) -> LoadedResNet:
    key = entry.key
    failure = _failed_downloads.get(key)
    if failure is not None and not retry and time.monotonic() - failure.when < RETRY_AFTER_S:
        raise ModelUnavailable(_unavailable(entry, failure))
    if entry.source == "bundled":
        model = mnist_resnet.load(mnist_resnet.WEIGHTS_PATH, device)
        categories = [str(d) for d in range(10)]
        weights_id = hashlib.sha256(mnist_resnet.WEIGHTS_PATH.read_bytes()).hexdigest()[:16]
        transform = None
    else:
        import torchvision.models as tvm

        weights = _weights_enum(entry)
        try:
            model = getattr(tvm, entry.builder)(weights=weights)  # cached file, else a download
        except Exception as error:  # no network, a refused download, a corrupt cache file...
            _failed_downloads[key] = failure = DownloadFailure(_reason(error), time.monotonic())
            raise ModelUnavailable(_unavailable(entry, failure)) from None
        _failed_downloads.pop(key, None)
        model = model.eval().requires_grad_(False).to(device)
        categories = list(weights.meta["categories"])
        weights_id = _file_id(checkpoint_path(entry))
        transform = weights.transforms()
    loaded = LoadedResNet(
        entry,
        model,
        categories,
        conv_layer_names(model),
        dict(model.named_modules()),
        weights_id,
        device,
        transform,
    )
    return loaded


def _file_id(path: Path) -> str:
    """The checkpoint's name and a hash of its bytes: a rank table cached for other weights of the same name is never read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{path.name}:{digest.hexdigest()[:16]}"


# --- preparing a picture -------------------------------------------------------------------------

MIN_SIDE = 8


def photo_rgb(picture) -> Image.Image:
    """Any picture (PIL of any mode, array, path, bytes) -> an RGB PIL image, alpha over white."""
    if isinstance(picture, (str, os.PathLike, bytes, bytearray, np.ndarray)):
        try:
            picture = _open(picture)
        except drawing.DrawingError as error:
            raise ImageError(str(error)) from None
    if not isinstance(picture, Image.Image):
        raise ImageError(f"Expected a picture, got {type(picture).__name__}.")
    if getattr(picture, "is_animated", False):
        picture.seek(0)  # an animated GIF: its first frame
    if min(picture.size) < MIN_SIDE:
        raise ImageError(
            f"The picture is {picture.width}×{picture.height} pixels: too small to see anything. Use one at least {MIN_SIDE}×{MIN_SIDE}."
        )
    if picture.width * picture.height > drawing.MAX_PIXELS:
        raise ImageError(drawing.too_large_message(picture.width, picture.height))
    try:
        picture.load()  # gradio opens uploads lazily: a broken file fails here, not halfway through the conversion
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageError(
            f"That file could not be read as an image ({type(error).__name__}). Upload a PNG or JPEG."
        ) from None
    if picture.mode in ("RGBA", "LA", "PA") and picture.getchannel("A").getextrema()[1] == 0:
        raise ImageError(
            "The picture is fully transparent: there is nothing in it to see. Use a picture with something on it."
        )
    if max(picture.size) > 1024:
        picture = picture.copy()
        picture.thumbnail((1024, 1024))
    if picture.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        gray = np.asarray(picture, dtype=np.float32)
        top = 65535.0 if gray.max() > 255 else 255.0
        return Image.fromarray((np.clip(gray / top, 0, 1) * 255).astype(np.uint8)).convert("RGB")
    if picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info):
        rgba = picture.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return picture.convert("RGB")


def _open(picture) -> Image.Image:
    if isinstance(picture, np.ndarray):
        array = picture
        if array.dtype != np.uint8:
            array = np.clip(
                array.astype(np.float32)
                / (65535.0 if array.max(initial=0) > 255 else (255.0 if array.max(initial=0) > 1 else 1.0))
                * 255,
                0,
                255,
            ).astype(np.uint8)
        try:
            return Image.fromarray(array)
        except (TypeError, ValueError):
            raise drawing.DrawingError(
                f"A picture must be a grey or colour image; got an array of shape {picture.shape}."
            ) from None
    import io

    source = io.BytesIO(picture) if isinstance(picture, (bytes, bytearray)) else picture
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # PIL would decode it anyway: refuse before
            image = Image.open(source)
        if image.width * image.height > drawing.MAX_PIXELS:
            raise drawing.DrawingError(drawing.too_large_message(image.width, image.height))
        image.load()
        return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise drawing.DrawingError(drawing.too_large_message()) from None
    except (OSError, ValueError, SyntaxError) as error:
        if isinstance(error, drawing.DrawingError):
            raise
        raise drawing.DrawingError(
            f"That file could not be read as an image ({type(error).__name__}). Upload a PNG or JPEG."
        ) from None


# A picture is read as a photo, not a digit, when little of it is plain paper, when its border is not
# plain, or when much of it is in colour. Measured on the bundled examples: MNIST digits on paper are
# >= 80% paper with a plain border and no colour; the four bundled photos, in colour or grey, are <= 61%
# paper or have a border that varies by >= 0.09 on average, and 17-83% of their pixels are coloured.
PHOTO_PAPER_SHARE = 0.55  # below this share of pixels near the paper's colour: a photo
PHOTO_BORDER_SPREAD = 0.08  # a border that varies more than this (mean distance from its median colour, 0..1): a photo
PHOTO_COLOUR_SHARE = (
    0.3  # more than this share of strongly coloured pixels: a photo (a digit in coloured ink stays below)
)
PHOTO_CAUTION = (
    "This looks like a photo, not a digit: this model only knows the ten digits 0–9, so its answer is the digit the "
    "picture most resembles, whatever it shows. The feature maps are still this network's response to it."
)


def looks_like_photo(rgb: Image.Image) -> bool:
    """True when an RGB picture looks like a photo rather than one digit on plain paper (``PHOTO_*`` above)."""
    pixels = np.asarray(rgb.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])  # (perimeter, 3)
    paper = np.median(border, axis=0)
    border_spread = float(np.abs(border - paper).max(axis=1).mean())
    paper_share = float((np.abs(pixels - paper).max(axis=2) < 0.1).mean())
    colour_share = float(((pixels.max(axis=2) - pixels.min(axis=2)) > 0.2).mean())
    return paper_share < PHOTO_PAPER_SHARE or border_spread > PHOTO_BORDER_SPREAD or colour_share > PHOTO_COLOUR_SHARE


# The MNIST recipe's messages speak of a canvas and a brush (the MNIST tab's); here the learner gave a picture.
_DIGIT_MESSAGES = {
    "canvas is empty": "There is no digit in this picture: it is blank. Use a picture of one dark digit on light paper (or a light one on dark).",
    "dark all over": "The picture is dark all over: there is no digit to see. Use a picture of one dark digit on light paper (or a light one on dark).",
    "only a dot": "The digit in this picture is only a dot. Use a picture where the digit fills most of the frame.",
}


def _digit(rgb: Image.Image) -> drawing.PreparedDigit:
    """MNIST's recipe on a picture, with messages about pictures."""
    if max(high - low for low, high in rgb.getextrema()) < 8:  # every channel within 8 of 255 levels: nothing drawn
        raise ImageError(
            "The picture is a single flat colour: there is no digit in it. Use a picture of one dark digit on light paper (or a light one on dark)."
        )
    try:
        return drawing.prepare_digit(rgb)
    except drawing.DrawingError as error:
        message = str(error)
        raise ImageError(next((text for key, text in _DIGIT_MESSAGES.items() if key in message), message)) from None


@dataclass
class Prepared:
    x: torch.Tensor  # (1, C, H, W) model input
    display: np.ndarray  # (h, w, 3) uint8: the picture as the model sees it (before normalising)
    caution: str | None = None  # a note for the learner when the picture does not suit the model


def prepare(loaded: LoadedResNet, picture) -> Prepared:
    """Picture -> model input, the model's own way: MNIST's recipe or torchvision's transforms."""
    rgb = photo_rgb(drawing.editor_picture(picture))  # read, checked for size and transparency, alpha over white
    if loaded.entry.input_kind == "digit":
        digit = _digit(rgb)
        x = mnist.normalize(digit.pixels, loaded.device).reshape(1, 1, 28, 28)
        gray = (255 * (1 - digit.pixels)).astype(np.uint8)  # dark ink on light paper, as drawn
        gray = np.kron(gray, np.ones((8, 8), np.uint8))  # 224x224, big enough to see an overlay on
        return Prepared(x, np.repeat(gray[..., None], 3, axis=2), PHOTO_CAUTION if looks_like_photo(rgb) else None)
    x = loaded.transform(rgb).unsqueeze(0).to(loaded.device)  # resize, centre-crop, normalise
    mean = torch.tensor(loaded.transform.mean)[:, None, None]
    std = torch.tensor(loaded.transform.std)[:, None, None]
    display = ((x[0].cpu() * std + mean).clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
    return Prepared(x, display)


# --- one forward pass, every conv layer ------------------------------------------------------------

MAP_SIDE = 40  # feature maps are stored resized to this, enough to draw them and small to keep
TOP_CHANNELS = 16


@dataclass
class LayerView:
    """What the tab draws for one layer of one image."""

    channels: int
    size: tuple[int, int]  # the layer's own H, W
    top_channels: list[int]  # the 16 channels with the largest mean activation, largest first
    raw_maps: torch.Tensor  # (16, h, w) float16: those channels' maps at the layer's resolution
    mean_map: np.ndarray  # (h, w) float32: mean over channels, at the layer's resolution

    @property
    def maps(self) -> np.ndarray:
        """(16, MAP_SIDE, MAP_SIDE): resized only when a layer is drawn, not for all 53 per image."""
        return _resize(self.raw_maps, MAP_SIDE).numpy()


@dataclass
class ImageAnalysis:
    model: str
    top5: list[tuple[str, float]]
    display: np.ndarray
    layers: dict[str, LayerView] = field(default_factory=dict)
    caution: str | None = None  # e.g. a photo given to the MNIST model: analysed, with this note


def _resize(maps: torch.Tensor, side: int) -> torch.Tensor:
    mode = "nearest" if maps.shape[-1] <= side else "area"  # blocky when enlarged: one block per unit
    return F.interpolate(maps[None].float(), size=(side, side), mode=mode)[0]


@torch.no_grad()
def analyse_image(loaded: LoadedResNet, picture) -> ImageAnalysis:
    """One forward pass capturing every conv layer, reduced to what each layer's view needs."""
    prepared = prepare(loaded, picture)
    with capture_activations(loaded.model, loaded.conv_layers) as acts:
        logits = loaded.model(prepared.x)[0]
    probs = torch.softmax(logits.float(), 0)
    values, indices = probs.topk(5)
    top5 = [(loaded.categories[i], round(float(v), 6)) for v, i in zip(values, indices)]
    analysis = ImageAnalysis(loaded.entry.key, top5, prepared.display, caution=prepared.caution)
    for name in loaded.conv_layers:
        a = acts[name][0]  # (C, H, W)
        means = a.mean((1, 2))
        top = means.topk(min(TOP_CHANNELS, a.shape[0])).indices
        analysis.layers[name] = LayerView(
            channels=a.shape[0],
            size=(a.shape[1], a.shape[2]),
            top_channels=[int(i) for i in top],
            raw_maps=a[top].to("cpu", torch.float16),
            mean_map=a.mean(0).cpu().numpy().astype(np.float32),
        )
    return analysis


# --- the reference rank table, cached on disk --------------------------------------------------------


def reference_batches(loaded: LoadedResNet, batch_size: int = 250):
    """(name, batches) of the reference set: MNIST sample / CIFAR-100 test if present / bundled photos."""
    if loaded.entry.input_kind == "digit":
        images = mnist.load_sample().test.images
        return "the bundled MNIST sample (2,000 test digits)", [
            mnist_resnet.to_input(images[i : i + batch_size], loaded.device) for i in range(0, len(images), batch_size)
        ]
    cifar = _cifar100()
    if cifar is not None:
        mean = torch.tensor(loaded.transform.mean)[:, None, None]
        std = torch.tensor(loaded.transform.std)[:, None, None]
        data = torch.as_tensor(cifar[:1280]).permute(0, 3, 1, 2).float() / 255  # the course: 10 batches of 128, 32x32
        return "CIFAR-100 test, 1,280 images at 32×32 (the course's choice)", [
            ((data[i : i + 128] - mean) / std).to(loaded.device) for i in range(0, len(data), 128)
        ]
    photos = sorted((mnist.ASSETS / "photos").glob("*.jpg"))
    x = torch.cat([loaded.transform(Image.open(p).convert("RGB")).unsqueeze(0) for p in photos]).to(loaded.device)
    return f"the {len(photos)} bundled photos (CIFAR-100 not on this machine)", [x]


def _cifar100():
    try:
        from torchvision.datasets import CIFAR100

        return CIFAR100(str(mnist.data_dir()), train=False, download=False).data  # (N, 32, 32, 3) uint8
    except (RuntimeError, OSError):
        return None


_reference_memo: Recent[tuple[str, list[LayerRank]]] = Recent(8)  # (model, weights, cache folder) -> (source, table)
# Bumped whenever a cached table's rows change meaning or fields. 2: rank_to_reach and
# centred_effective_rank added (a version-1 file has neither, and is recomputed, never read).
RANK_CACHE_VERSION = 2


def reference_ranks(loaded: LoadedResNet, on_batch=None) -> tuple[str, list[LayerRank]]:
    """The rank table over the model's reference set: from memory, else the disk cache, else computed.

    Rows in module order (``loaded.conv_layers``), as the layer list, the plot and the table show them,
    whatever order an older cache file holds them in.
    """
    return _reference_memo.get_or_make(
        (loaded.entry.key, loaded.weights_id, str(cache_dir())),
        lambda: _in_module_order(loaded, *_reference_table(loaded, on_batch)),
    )


def _in_module_order(loaded: LoadedResNet, source: str, table: list[LayerRank]) -> tuple[str, list[LayerRank]]:
    place = {name: i for i, name in enumerate(loaded.conv_layers)}
    return source, sorted(table, key=lambda row: place.get(row.layer, len(place)))


def rank_cache_path(loaded: LoadedResNet, source: str) -> Path:
    """Where the table of ``loaded`` over the reference set ``source`` is cached: one file per model, weights, set and format."""
    key = hashlib.sha256(f"{loaded.entry.key}|{loaded.weights_id}|{source}|v{RANK_CACHE_VERSION}".encode()).hexdigest()[
        :16
    ]
    return cache_dir() / "ranks" / f"{loaded.entry.key}-{key}.json"


def _read_cached_table(path: Path) -> list[LayerRank] | None:
    """The cached table, or None if it is absent, unreadable or of another format version."""
    try:
        cached = json.loads(path.read_text())
        if not isinstance(cached, dict) or cached.get("version") != RANK_CACHE_VERSION:
            return None
        return [LayerRank(**row) for row in cached["rows"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _reference_table(loaded: LoadedResNet, on_batch) -> tuple[str, list[LayerRank]]:
    source, batches = reference_batches(loaded)
    path = rank_cache_path(loaded, source)
    table = _read_cached_table(path)
    if table is None:  # absent, unreadable or an older format: compute it again
        table = rank_table(loaded.model, batches, on_batch=on_batch)
        _write_atomically(path, json.dumps({"version": RANK_CACHE_VERSION, "rows": [row.__dict__ for row in table]}))
    return source, table


def _write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file and rename it into place: a full disk never leaves half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
            handle.write(text)
        os.replace(handle.name, path)
    except OSError:
        try:
            os.unlink(handle.name)
        except (OSError, NameError, UnboundLocalError):
            pass
