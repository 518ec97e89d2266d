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
