"""Loading a ResNet once per process, and what the learner is told about a model before it loads.

    from superpos_core import resnets
    resnets.status("resnet18")          # (available now, a sentence saying why or why not): nothing downloaded
    loaded = resnets.load("resnet18")   # once per process; every user of the app shares it

With no network and no cached file a model is reported unavailable (``ModelUnavailable``), with the reason and how
to get it; nothing else is put in its place. A failed download is remembered for ``RETRY_AFTER_S``, so a layer
switch never waits on a network that is not there.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from superpos_core import mnist_resnet
from superpos_core.conv_rank import conv_layer_names
from superpos_core.resnets.catalogue import CATALOGUE, ResNetEntry, checkpoint_path, how_to_fetch, weights_enum
from superpos_core.serving import Kept


class ModelUnavailable(RuntimeError):
    """The model's weights are not on this machine and cannot be fetched now; says how to get them."""


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

        weights = weights_enum(entry)
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
