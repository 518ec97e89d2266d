"""demos/drawing_pad.py: the MNIST tab's canvas, as the page is given it (its drawing is tested in tests/e2e)."""

import re

import gradio as gr

from demos.drawing_pad import DrawingPad


def config_of(**kwargs) -> dict:
    with gr.Blocks():
        pad = DrawingPad(**kwargs)
    return pad, pad.get_config()


def test_the_canvas_gets_its_size_pen_and_label_from_the_constructor():
    pad, config = config_of(value="", side=140, brush=12, label="Draw a 7", elem_id="pad")
    assert config["props"] == {"side": 140, "brush": 12} and config["label"] == "Draw a 7"
    template = config["html_template"]
    assert '<canvas width="${side}" height="${side}" data-brush="${brush}"' in template
    assert "${label}" in template and config["elem_id"] == "pad"
    assert "min(100%, ${side}px)" in config["css_template"]  # the canvas shrinks on a phone, never past its pixels


def test_the_drawing_never_goes_into_the_page_as_html():
    """The value is a data URL the script draws on the canvas: a value put in the template would be HTML from the wire."""
    _, config = config_of(value="data:image/png;base64,AAAA")
    assert "${value}" not in config["html_template"] and "${value}" not in config["css_template"]
    assert re.search(
        r"\bprops\.value\s*=", config["js_on_load"]
    )  # the script sets the value: that fires the change event


def test_the_value_passes_through_unchanged_both_ways():
    pad, _ = config_of()
    url = "data:image/png;base64,iVBORw0KGgo="
    assert pad.preprocess(url) == url and pad.postprocess(url) == url  # read and checked by the MNIST tab, not here
    assert pad.preprocess("") == "" and pad.postprocess(None) is None


def test_the_undo_and_clear_buttons_are_labelled_for_screen_readers():
    _, config = config_of()
    for action, label in (("undo", "Undo"), ("clear", "Clear canvas")):
        assert f'data-action="{action}" aria-label="{label}"' in config["html_template"]
        assert f"[data-action={action}]" in config["js_on_load"]  # and the script listens to each
