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
