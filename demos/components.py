"""The app's own gradio components, and the helpers that place a figure: gradio's components with clear messages
for bad values and picture files written safely.

What each adds lives in a mixin in ``common`` (``CheckedChoice``, ``CheckedRange``, ``WholePictureFiles``,
``PictureOrMessage``). The classes are defined in this small module because gradio parses the whole module of every
component class as it is defined (to write a ``.pyi`` beside it): 0.3 s of every start while they lived in
``common.py`` and ``resnet.py``.
"""

from __future__ import annotations

import gradio as gr

from .common import CheckedChoice, CheckedRange, PictureOrMessage, WholePictureFiles, note


class FigureImage(WholePictureFiles, gr.Image):
    """An output picture written to gradio's cache whole, or sent inline (see ``WholePictureFiles``)."""


class SafeImage(PictureOrMessage, gr.Image):
    """An Image input whose unreadable uploads give a clear message instead of a traceback (see ``PictureOrMessage``)."""


class ChoiceDropdown(CheckedChoice, gr.Dropdown):
    """A Dropdown whose unknown values get a clear, short message (see ``CheckedChoice``)."""


class ChoiceRadio(CheckedChoice, gr.Radio):
    """A Radio whose unknown values get a clear, short message (see ``CheckedChoice``)."""


class CheckedSlider(CheckedRange, gr.Slider):
    """A Slider whose wrong values get a clear message (see ``CheckedRange``)."""


class CheckedNumber(CheckedRange, gr.Number):
    """A Number whose wrong values get a clear message (see ``CheckedRange``)."""


def figure(label: str, elem_id: str | None = None) -> gr.Image:
    """A rendered figure with its title above it.

    The title is a line of text rather than the image's label: gradio's label badge sits on top of
    the picture and would cover the figure's own title.
    """
    gr.Markdown(f"**{label}**", elem_classes=["figure-title"])
    return FigureImage(
        label=label,
        show_label=False,
        interactive=False,
        format="png",
        buttons=["download", "fullscreen"],
        elem_id=elem_id,
    )


def figure_with_note(label: str, text: str, elem_id: str | None = None, column: bool = False) -> gr.Image:
    """A figure, its title above it and its note below it, in a column of their own with ``column`` (figures side by side)."""
    if not column:
        shown = figure(label, elem_id)
        note(text)
        return shown
    with gr.Column():
        return figure_with_note(label, text, elem_id)
