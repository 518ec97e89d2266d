"""Layout pieces every tab uses the same way."""
from __future__ import annotations

import gradio as gr


def figure(label: str, elem_id: str | None = None) -> gr.Image:
    """A rendered figure with its title above it.

    The title is a line of text rather than the image's label: gradio's label badge sits on top of
    the picture and would cover the figure's own title.
    """
    gr.Markdown(f"**{label}**", elem_classes=["figure-title"])
    return gr.Image(label=label, show_label=False, interactive=False, format="png", buttons=["download", "fullscreen"], elem_id=elem_id)


def note(text: str) -> None:
    """The plain-language note beside a figure: what to look for."""
    gr.Markdown(text, elem_classes=["figure-note"])


class ReadableUploads:
    """Mix into an image component: a file that cannot be decoded gets a clear message.

    API callers can send any file; the component's own decoding would otherwise fail with a
    traceback in the server log and a bare error for the caller.
    """

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except (OSError, ValueError, SyntaxError) as error:
            raise gr.Error(f"That file could not be read as an image ({type(error).__name__}). Send a PNG or JPEG.", print_exception=False) from None
