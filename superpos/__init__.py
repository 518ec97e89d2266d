"""superpos, installed: the app on the command line (``superpos``) and inline in a notebook (``superpos.launch``).

In Jupyter or Colab::

    import superpos
    superpos.launch(tab="toy")   # one tab; superpos.launch() for them all

The science itself is the package ``superpos_core`` (no gradio): its functions and figures work in a cell.
"""

from __future__ import annotations

import importlib
import importlib.util

__all__ = ["TABS", "launch", "main"]
__version__ = "0.1.0"

_running = None  # the app launch() served last: launching again closes it first, so a re-run cell frees its port


def _app():
    """The app's composition: ``superpos.app`` once installed, the checkout's own ``app.py`` when run from it."""
    if importlib.util.find_spec(f"{__name__}.app") is not None:
        return importlib.import_module(f"{__name__}.app")
    return importlib.import_module("app")


def __getattr__(name: str):
    if name == "TABS":  # read from the app, not copied: the tabs' ids and titles in order
        return _app().TABS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def launch(
    tab: str | None = None,
    device: str = "auto",
    height: int = 900,
    share: bool = False,
    port: int | None = None,
    allow_any_model: bool = False,
):
    """Serve the app (every tab, or the one named by ``tab``) and show it in the notebook's output.

    Args:
        tab: one of ``superpos.TABS`` ("toy", "mnist", "resnet", "lm"), or None for all four.
        device: "auto" (CUDA when there is one), "cpu" or "cuda".
        height: the inline frame's height in pixels.
        share: also serve through a public gradio.live link. Off by default: Jupyter shows the local
            server, and Colab shows it through its own proxy, with no public address.
        port: the port to serve on (None: the first free one from 7860).
        allow_any_model: let the language-model tab load any Hugging Face model id typed in it.

    Returns the running ``gradio.Blocks``; ``.close()`` stops it. Launching again closes the last one first.
    Outside a notebook it serves without blocking and prints its address.
    """
    global _running
    app = _app()
    blocks = app.build_app(device, tab=tab, allow_any_model=allow_any_model)
    if _running is not None:
        _running.close()
    blocks.launch(
        server_port=port,
        share=share,
        height=height,
        prevent_thread_lock=True,  # the cell returns; the server runs on while the kernel does
        **app.LAUNCH_OPTIONS,
    )
    _running = blocks
    return blocks


def main(argv: list[str] | None = None) -> None:
    """The ``superpos`` command: the same flags as ``python app.py``."""
    import sys

    from superpos_core.lm import early_reader

    early_reader.start_for_server(sys.argv[1:] if argv is None else argv)  # before gradio is imported: see the module
    _app().main(argv, prog="superpos")
