"""Where the app finds what it ships (the bundled assets) and keeps what it computes once (one cache folder)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)


PACKAGE = Path(__file__).resolve().parent  # this package's folder: its source, and its assets when installed


def cache_dir() -> Path:
    """The app's cache folder: ``$SUPERPOS_CACHE_DIR``, else ``~/.cache/superpos`` (read on each call, so a test can move it)."""
    return Path(os.environ.get("SUPERPOS_CACHE_DIR", Path.home() / ".cache" / "superpos"))


def _bundled_assets() -> Path:
    """The bundled weights and data: inside the package when installed (``pip install .``), else the checkout's ``assets/``."""
    installed = PACKAGE / "assets"  # where the wheel puts them (pyproject.toml)
    return installed if installed.is_dir() else PACKAGE.parent / "assets"


ASSETS = _bundled_assets()

LIBRARIES = ("numpy", "torch")  # whose versions a number kept on disk may depend on


def inputs_digest(files: Iterable[str | os.PathLike]) -> str:
    """A sha256 over the files' names and bytes, this package's own source and the versions of ``LIBRARIES``: it
    changes whenever anything that could change a value computed from them does."""
    digest = hashlib.sha256()
    for library in LIBRARIES:
        digest.update(f"{library}=={importlib.metadata.version(library)}\n".encode())
    for path in [*map(Path, files), *sorted(PACKAGE.rglob("*.py"))]:
        digest.update(f"{path.name}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def kept_on_disk(name: str, inputs: Iterable[str | os.PathLike], make: Callable[[], object]) -> object:
    """``make()``, a JSON value computed from ``inputs`` (files), kept in the cache folder and read from there while
    neither those files, nor this package's source, nor ``LIBRARIES`` have changed (``inputs_digest``).

    For numbers a page quotes as it is laid out, so a restarted server does not compute them again. A missing or
    damaged file is computed again; a cache folder that cannot be written only means computing it each start.
    """
    path = cache_dir() / "computed" / f"{name}-{inputs_digest(inputs)[:20]}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, or damaged: compute it again
        pass
    value = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as file:
            json.dump(value, file)
        os.replace(file.name, path)  # whole or not at all: another process may be reading it
    except OSError as error:
        if "file" in locals():
            Path(file.name).unlink(missing_ok=True)
        log.warning("Could not keep %s in %s (%s): it is computed again at each start.", name, path.parent, error)
    return value
