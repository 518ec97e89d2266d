"""The effective rank of every conv layer over a reference set of pictures, computed once and cached on disk.

    from superpos_core import resnets
    source, table = resnets.reference_ranks(resnets.load("resnet50"))   # CIFAR-100 if present, else the bundled photos
    table[0].layer, table[0].effective_rank

A table is kept per model, weights, reference set and format version under ``$SUPERPOS_CACHE_DIR/ranks``, and
written whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from PIL import Image

from superpos_core import mnist, mnist_resnet
from superpos_core.conv_rank import LayerRank, rank_table
from superpos_core.paths import cache_dir
from superpos_core.resnets.loading import LoadedResNet
from superpos_core.serving import Recent


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
        # (1280, 32, 32, 3) uint8 -> (1280, 3, 32, 32) in 0..1: the course's 10 batches of 128, at 32x32
        data = torch.as_tensor(cifar[:1280]).permute(0, 3, 1, 2).float() / 255
        return "CIFAR-100 test, 1,280 images at 32×32 (the course's choice)", [
            ((data[i : i + 128] - mean) / std).to(loaded.device) for i in range(0, len(data), 128)
        ]
    photos = sorted((mnist.ASSETS / "photos").glob("*.jpg"))
    # (n_photos, 3, 224, 224): each resized, centre-cropped and normalised as the model's weights expect
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
