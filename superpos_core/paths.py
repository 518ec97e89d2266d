"""Where the app keeps what it computes once: one cache folder for every model and table."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The app's cache folder: ``$SUPERPOS_CACHE_DIR``, else ``~/.cache/superpos`` (read on each call, so a test can move it)."""
    return Path(os.environ.get("SUPERPOS_CACHE_DIR", Path.home() / ".cache" / "superpos"))
