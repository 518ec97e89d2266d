"""Where the app finds what it ships (the bundled assets) and keeps what it computes once (one cache folder)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The app's cache folder: ``$SUPERPOS_CACHE_DIR``, else ``~/.cache/superpos`` (read on each call, so a test can move it)."""
    return Path(os.environ.get("SUPERPOS_CACHE_DIR", Path.home() / ".cache" / "superpos"))


def _bundled_assets() -> Path:
    """The bundled weights and data: inside the package when installed (``pip install .``), else the checkout's ``assets/``."""
    package = Path(__file__).resolve().parent
    installed = package / "assets"  # where the wheel puts them (pyproject.toml)
    return installed if installed.is_dir() else package.parent / "assets"


ASSETS = _bundled_assets()
