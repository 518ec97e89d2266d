"""A light drawing pad: a canvas that sends one small PNG per stroke, for pages that must feel live.

Gradio's Sketchpad is a full image editor: on every stroke it uploads its layers and a composite
as files before its change event can fire, which put about a second between releasing the mouse
and the MNIST panels updating. This pad is a ``gr.HTML`` with a canvas driven by
``drawing_pad.js``: each stroke sends the canvas once, inline, as a ``data:image/png`` URL (a few
kilobytes), and there is no tool to choose, so drawing works after Clear and Undo too.

Its value is that data URL, or ``""`` for an empty pad; a server event may set it to a picture
(a real digit, an upload) and the pad shows it, under any strokes drawn after.

``SafeSketchpad`` is the /mnist API's input beside it. Both live in this small module because gradio
parses the whole module of each component subclass as it is defined (to write a ``.pyi`` beside it):
0.2 s of every start when SafeSketchpad lived in ``demos/mnist.py``.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from .common import ReadableUploads

SCRIPT = (Path(__file__).with_name("drawing_pad.js")).read_text(encoding="utf-8")

TEMPLATE = """
<div class="pad">
  <div class="pad-label">${label}</div>
  <canvas width="${side}" height="${side}" data-brush="${brush}" role="img" aria-label="${label}: draw here"></canvas>
  <div class="pad-tools">
    <button type="button" data-action="undo" aria-label="Undo">↶ Undo</button>
    <button type="button" data-action="clear" aria-label="Clear canvas">✕ Clear</button>
  </div>
</div>
"""

STYLE = """
.pad { display: flex; flex-direction: column; gap: 6px; align-items: center; }
.pad-label { align-self: flex-start; font-size: var(--block-label-text-size); color: var(--block-label-text-color); }
canvas { width: min(100%, ${side}px); aspect-ratio: 1; border: 1px solid var(--border-color-primary);
  border-radius: var(--radius-lg); background: #ffffff; cursor: crosshair; touch-action: none; }
.pad-tools { display: flex; gap: 8px; }
.pad-tools button { padding: 2px 12px; border: 1px solid var(--button-secondary-border-color);
  border-radius: var(--button-small-radius); background: var(--button-secondary-background-fill);
  color: var(--button-secondary-text-color); font-size: var(--button-small-text-size); cursor: pointer; }
.pad-tools button:hover { background: var(--button-secondary-background-fill-hover); }
"""


class DrawingPad(gr.HTML):
    """A square canvas for drawing with a black pen of ``brush`` px; its value is a PNG data URL or ``""``."""

    def __init__(self, value: str = "", *, side: int = 280, brush: int = 24, label: str = "Your digit", **kwargs):
        super().__init__(
            value,
            html_template=TEMPLATE,  # never ${value}: the canvas, not the template, shows the drawing
            css_template=STYLE,
            js_on_load=SCRIPT,
            side=side,
            brush=brush,
            label=label,
            **kwargs,
        )


class SafeSketchpad(ReadableUploads, gr.Sketchpad):
    """The /mnist API's input: a Sketchpad value whose pictures are handed on unopened.

    The page draws on a ``DrawingPad``; this Sketchpad is never shown, and keeps the /mnist endpoint's
    inputs what they always were. Its files are not decoded here (gradio's editor would open any size
    of picture, a decompression bomb too) but passed on as paths, which ``superpos_core.drawing``
    reads with its own size limits and clear messages.
    """

    upload_hint = (
        'Send {"background": handle_file(path), "layers": [], "composite": None}, with handle_file from gradio_client.'
    )

    def preprocess(self, payload):
        if payload is None:
            return None

        def path(file):
            return None if file is None else file.path

        return {
            "background": path(payload.background),
            "layers": [path(layer) for layer in payload.layers],
            "composite": path(payload.composite),
        }
