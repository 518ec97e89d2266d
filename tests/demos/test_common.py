"""Pieces every tab shares."""

import os

import numpy as np
import pytest
from PIL import Image


def test_figures_reach_the_cache_whole_and_once(tmp_path, monkeypatch):
    from demos.components import FigureImage

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

    from demos.common import inline_png
    from demos.components import FigureImage

    image = FigureImage(format="png")
    monkeypatch.setattr(image, "GRADIO_CACHE", str(tmp_path))
    picture = np.zeros((12, 16, 3), np.uint8)
    picture[2:6, 3:9] = (30, 200, 30)
    sent = image.postprocess(inline_png(picture))
    assert sent.path is None and sent.url.startswith("data:image/png;base64,") and sent.mime_type == "image/png"
    decoded = Image.open(io.BytesIO(base64.b64decode(sent.url.split(",", 1)[1])))
    assert np.array_equal(np.asarray(decoded.convert("RGB")), picture)
    assert not any(tmp_path.iterdir())  # nothing written for the browser to fetch


def test_a_figure_with_its_note_in_a_column_of_its_own():
    import gradio as gr

    from demos.components import figure_with_note

    with gr.Blocks() as blocks, gr.Row():
        picture = figure_with_note("A title", "What to look for.", elem_id="a-figure", column=True)
    texts = [block.value for block in blocks.blocks.values() if isinstance(block, gr.Markdown)]
    assert texts == ["**A title**", "What to look for."]  # the title above, the note below
    assert picture.elem_id == "a-figure"
    columns = [block for block in blocks.blocks.values() if isinstance(block, gr.Column)]
    assert len(columns) == 1 and picture in columns[0].children  # side by side with the next figure in the row


def test_panels_turn_named_outputs_into_gradios_and_keep_the_handlers_signature():
    import inspect

    import gradio as gr

    from demos.common import Panels

    with gr.Blocks():
        panels = Panels(summary=gr.JSON(), status=gr.Markdown(), plot=gr.Image())
    assert panels("summary", "status") == [panels["summary"], panels["status"]]
    assert panels() == panels("summary", "status", "plot") and panels.names == ("summary", "status", "plot")
    assert panels.keyed({"status": "done", "plot": None}) == {panels["status"]: "done", panels["plot"]: None}

    def handler(text, seed=0, progress=gr.Progress()):
        return {"summary": {"text": text}, "status": f"seed {seed}"}

    def steps(n):
        for i in range(n):
            yield {"status": f"step {i}"}

    filled = panels.filled_by(handler)
    assert filled("hi", seed=3) == {panels["summary"]: {"text": "hi"}, panels["status"]: "seed 3"}
    assert list(inspect.signature(filled).parameters) == ["text", "seed", "progress"]  # the API's names
    streamed = panels.filled_by(steps)
    assert inspect.isgeneratorfunction(streamed) and list(streamed(2)) == [
        {panels["status"]: "step 0"},
        {panels["status"]: "step 1"},
    ]
    with pytest.raises(KeyError):
        panels.keyed({"no such panel": 1})  # a misspelt name fails at once, not as a silently skipped output
