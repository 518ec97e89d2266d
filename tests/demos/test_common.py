"""Pieces every tab shares."""

import os

import numpy as np
from PIL import Image


def test_figures_reach_the_cache_whole_and_once(tmp_path, monkeypatch):
    from demos.common import FigureImage

    image = FigureImage(format="png")
    monkeypatch.setattr(image, "GRADIO_CACHE", str(tmp_path))
    picture = np.zeros((20, 30, 3), np.uint8)
    picture[5:10, 5:25] = (200, 30, 30)
    first = image.postprocess(picture)
    path = first.path
    stamp = os.stat(path).st_mtime_ns
    again = image.postprocess(picture.copy())  # the same picture for another user
    assert again.path == path and os.stat(path).st_mtime_ns == stamp  # not rewritten under a reader
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), picture)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["figure.png"]  # no temporary file left


def test_the_network_view_is_a_closed_accordion_filled_when_opened():
    import gradio as gr

    from demos.common import network_view

    with gr.Blocks() as blocks:
        n = gr.Number(3)
        view = network_view(lambda n: f"<p>{n} modules</p>", inputs=[n], triggers=[n], initial="<p>ready</p>")
    accordion = next(b for b in blocks.blocks.values() if isinstance(b, gr.Accordion))
    assert accordion.open is False and view.value == "<p>ready</p>"
    triggers = {(blocks.blocks[t[0]].__class__.__name__, t[1]) for fn in blocks.fns.values() for t in fn.targets}
    assert {("Accordion", "expand"), ("Number", "change")} <= triggers
    assert all(fn.api_visibility == "private" for fn in blocks.fns.values())


def test_an_inline_figure_is_sent_in_the_message_not_as_a_file(tmp_path, monkeypatch):
    import base64
    import io

    from demos.common import FigureImage, inline_png

    image = FigureImage(format="png")
    monkeypatch.setattr(image, "GRADIO_CACHE", str(tmp_path))
    picture = np.zeros((12, 16, 3), np.uint8)
    picture[2:6, 3:9] = (30, 200, 30)
    sent = image.postprocess(inline_png(picture))
    assert sent.path is None and sent.url.startswith("data:image/png;base64,") and sent.mime_type == "image/png"
    decoded = Image.open(io.BytesIO(base64.b64decode(sent.url.split(",", 1)[1])))
    assert np.array_equal(np.asarray(decoded.convert("RGB")), picture)
    assert not any(tmp_path.iterdir())  # nothing written for the browser to fetch


def test_a_figure_with_its_note_and_outputs_by_name():
    import gradio as gr

    from demos.common import by_component, figure_with_note

    with gr.Blocks() as blocks:
        picture = figure_with_note("A title", "What to look for.", elem_id="a-figure")
        status = gr.Markdown()
    texts = [block.value for block in blocks.blocks.values() if isinstance(block, gr.Markdown)]
    assert texts[:2] == ["**A title**", "What to look for."]  # the title above, the note below
    assert picture.elem_id == "a-figure"
    named = {"plot": picture, "status": status}
    assert by_component(named, {"status": "done", "plot": None}) == {status: "done", picture: None}
