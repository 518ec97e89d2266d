"""A GGUF language model dequantised once and kept as safetensors, so later starts read it in well under a second.

    from superpos_core.lm import gguf_cache
    folder = gguf_cache.cached_folder("smollm2-135m-offline", gguf)   # None when absent, stale or incomplete
    gguf_cache.store("smollm2-135m-offline", gguf, tokenizer, model)  # after reading the GGUF the slow way

Reading SmolLM2's 4-bit GGUF costs about 20 s: transformers parses the file, expands every tensor to float32 and
builds the tokenizer from the file's vocabulary. What comes out is an ordinary float32 model, so it is written once to
``$SUPERPOS_CACHE_DIR/lm/<key>/`` (default ``~/.cache/superpos``, the folder the ResNet rank tables use) as
``model.safetensors`` with its config and tokenizer beside it; from there transformers reads it in ~0.3 s.

``manifest.json`` records the GGUF's sha256 and the versions of the libraries that expanded it: after the package
(or transformers, or gguf) changes, the folder no longer matches and is rebuilt. The folder is written under a
temporary name and renamed into place, so a crash leaves the old folder, the new one or none, never half of one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

from superpos_core.paths import cache_dir

FORMAT = 1  # bump when what is written changes, so older folders are rebuilt
MANIFEST = "manifest.json"
LEFTOVER_AGE_S = 3600  # a temporary folder this old is a crashed build's, not another process's build in progress


def folder_for(key: str) -> Path:
    return cache_dir() / "lm" / key


_digests: dict[tuple[str, int, int], str] = {}
_digests_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """The file's sha256, hashed once per process for each (path, size, modification time): ~0.1 s for SmolLM2's 98 MB."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _digests_lock:
        if key in _digests:
            return _digests[key]
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    with _digests_lock:
        _digests[key] = digest.hexdigest()
    return _digests[key]


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def expected_manifest(gguf: Path) -> dict:
    """What a folder dequantised from ``gguf`` by the libraries installed now says about itself (without its file list)."""
    return {
        "format": FORMAT,
        "gguf_file": gguf.name,
        "gguf_sha256": file_sha256(gguf),
        "transformers": _version("transformers"),
        "gguf": _version("gguf"),
    }


def read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def cached_folder(key: str, gguf: Path) -> Path | None:
    """The folder holding ``gguf`` dequantised, when it matches this file and these libraries and holds every file whole; else None."""
    folder = folder_for(key)
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    files = manifest.pop("files", None)
    if manifest != expected_manifest(gguf) or not isinstance(files, dict) or "model.safetensors" not in files:
        return None
    for name, size in files.items():
        try:
            if (folder / name).stat().st_size != size:
                return None
        except OSError:
            return None
    return folder


def _fsync(path: Path) -> None:
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def _clear_leftovers(root: Path, key: str) -> None:
    """Remove what a crashed build left: temporary and replaced folders older than an hour (newer ones may be another process's)."""
    now = time.time()
    for leftover in root.glob(f".{key}.*"):
        try:
            if now - leftover.stat().st_mtime > LEFTOVER_AGE_S:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass


def store(key: str, gguf: Path, tokenizer, model) -> Path:
    """Write ``model`` (dequantised from ``gguf``) and ``tokenizer`` to the cache, whole or not at all; returns the folder.

    Raises:
        OSError: the cache cannot be written (read-only, disk full). Nothing is left behind; the caller still has the model.
    """
    import safetensors.torch

    folder = folder_for(key)
    root = folder.parent
    root.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(root, key)
    expected = expected_manifest(gguf)
    temporary = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}.partial-"))
    temporary.chmod(0o755)  # mkdtemp's folder is the owner's alone; the cache is readable like the files in it
    replaced = root / f".{key}.old-{uuid.uuid4().hex}"
    try:
        # 1) the weights, config and tokenizer: plain float32, with nothing left of the GGUF's quantisation settings
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (temporary / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        # save_model drops the tied copies (SmolLM2's output layer is its embedding), which save_file refuses
        safetensors.torch.save_model(model, str(temporary / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(str(temporary))
        files = {path.name: path.stat().st_size for path in temporary.iterdir() if path.is_file()}
        for name in files:
            _fsync(temporary / name)
        # 2) the manifest last: a folder without one is never read
        (temporary / MANIFEST).write_text(json.dumps({**expected, "files": files}, indent=2))
        _fsync(temporary / MANIFEST)
        # 3) into place: the old folder is moved aside first (a folder cannot replace a non-empty one)
        try:
            os.replace(folder, replaced)
        except FileNotFoundError:
            pass
        try:
            os.replace(temporary, folder)
        except OSError:
            if cached_folder(key, gguf) is None:  # not another process's equally fresh copy that got there first
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(replaced, ignore_errors=True)
    return folder
