import base64
import io

import numpy as np
import pytest
from PIL import Image

from superpos_core import drawing
from tests import helpers


def centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(pixels.shape)
    return (ys * pixels).sum() / pixels.sum(), (xs * pixels).sum() / pixels.sum()


@pytest.fixture(scope="module")
def digits():
    return helpers.sample().test


def test_small_off_centre_digit_is_centred_like_mnist(digits):
    original = digits.images[0]
    prepared = drawing.prepare_digit(helpers.off_centre(original))
    pixels = prepared.pixels
    assert pixels.shape == (28, 28) and not prepared.inverted
    com = centre_of_mass(pixels)
    assert abs(com[0] - 14) <= 0.5 and abs(com[1] - 14) <= 0.5
    rows, cols = np.flatnonzero(pixels.max(1) > 0.1), np.flatnonzero(pixels.max(0) > 0.1)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (19, 20, 21)  # longer side ~20 px
    # It should look like the MNIST digit it was made from.
    correlation = np.corrcoef(pixels.ravel(), original.ravel() / 255.0)[0, 1]
    assert correlation > 0.8


def test_aspect_ratio_is_kept():
    paper = np.full((300, 300), 255, np.uint8)
    paper[50:250, 140:160] = 0  # a tall bar: 200 x 20
    pixels = drawing.prepare_digit(paper).pixels
    cols = np.flatnonzero(pixels.max(0) > 0.5)
    rows = np.flatnonzero(pixels.max(1) > 0.5)
    assert len(rows) == 20 and len(cols) <= 3


def test_formats_read_the_same(digits):
    gray = helpers.digit_on_paper(digits.images[5])
    reference = drawing.prepare_digit(gray).pixels
    variants = {
        "L": Image.fromarray(gray),
        "RGB": Image.fromarray(gray).convert("RGB"),
        "RGBA canvas": helpers.as_canvas_rgba(gray),
        "16-bit": Image.fromarray(gray.astype(np.uint16) * 257),
        "uint16 array": gray.astype(np.uint16) * 257,
        "float array": gray / 255.0,
        "RGBA array": np.asarray(helpers.as_canvas_rgba(gray)),
        "palette": Image.fromarray(gray).convert("P"),
        "CMYK": Image.fromarray(gray).convert("CMYK"),
    }
    for name, picture in variants.items():
        np.testing.assert_allclose(drawing.prepare_digit(picture).pixels, reference, atol=0.02, err_msg=name)


def test_files_and_bytes(digits, tmp_path):
    gray = helpers.digit_on_paper(digits.images[2])
    path = tmp_path / "digit.png"
    Image.fromarray(gray).save(path)
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format="JPEG")
    from_path = drawing.prepare_digit(str(path)).pixels
    from_jpeg = drawing.prepare_digit(buffer.getvalue()).pixels
    assert np.abs(from_path - from_jpeg).mean() < 0.02


def test_light_on_dark_is_flipped(digits):
    prepared = drawing.prepare_digit(digits.images[3])  # MNIST itself: white ink on black
    assert prepared.inverted
    assert np.corrcoef(prepared.pixels.ravel(), digits.images[3].ravel())[0, 1] > 0.8


@pytest.mark.slow
def test_huge_upload_is_shrunk_first(digits):
    big = np.asarray(Image.fromarray(helpers.digit_on_paper(digits.images[1])).resize((6000, 6000)))
    assert drawing.prepare_digit(big).pixels.shape == (28, 28)


def test_animated_gif_reads_first_frame(digits, tmp_path):
    frames = [Image.fromarray(helpers.digit_on_paper(digits.images[i])) for i in (0, 1)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    expected = drawing.prepare_digit(helpers.digit_on_paper(digits.images[0])).pixels
    np.testing.assert_allclose(drawing.prepare_digit(str(path)).pixels, expected, atol=0.05)


@pytest.mark.parametrize(
    "picture, message",
    [
        (None, "empty"),
        (np.full((280, 280), 255, np.uint8), "empty"),
        (np.zeros((280, 280, 4), np.uint8), "empty"),  # untouched canvas: all transparent
        (np.zeros((280, 280), np.uint8), "dark all over"),
        (np.zeros((280, 280, 3), np.uint8), "dark all over"),
        (np.pad(np.zeros((8, 8), np.uint8), 136, constant_values=255), "dot"),
        (b"this is not an image", "could not be read"),
        (np.zeros((5, 5, 7)), "shape"),
        (np.full((10, 10), np.nan), "not numbers"),
        (12, "Expected a picture"),
    ],
)
def test_bad_input_says_why(picture, message):
    with pytest.raises(drawing.DrawingError, match=message):
        drawing.prepare_digit(picture)


def test_truncated_file(digits, tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(helpers.digit_on_paper(digits.images[0])).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(drawing.DrawingError, match="could not be read"):
        drawing.prepare_digit(str(path))


def test_editor_value_prefers_composite():
    assert drawing.editor_picture({"background": "b", "layers": [], "composite": "c"}) == "c"
    assert drawing.editor_picture({"background": "b", "layers": [], "composite": None}) == "b"
    assert drawing.editor_picture("plain") == "plain"


def png_data_url(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_a_canvas_data_url_reads_like_the_picture(digits):
    paper = helpers.digit_on_paper(digits.images[3])
    from_url = drawing.prepare_digit(png_data_url(paper))
    np.testing.assert_array_equal(from_url.pixels, drawing.prepare_digit(paper).pixels)
    assert drawing.data_url_bytes(png_data_url(paper))[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("data:text/plain;base64,aGVsbG8=", "not a picture"),
        ("data:image/png,rawtext", "not a picture"),
        ("data:image/png;base64,***", "not valid base64"),
        ("data:image/png;base64,aGVsbG8gd29ybGQ=", "could not be read"),  # "hello world", named a PNG
    ],
)
def test_bad_data_urls_say_why(text, message):
    with pytest.raises(drawing.DrawingError, match=message):
        drawing.prepare_digit(text)


def test_a_decompression_bomb_is_refused_unread(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (15000, 15000)).save(path)  # 225 million pixels in a file of a few dozen kilobytes
    assert path.stat().st_size < 2**20
    for picture in (str(path), path.read_bytes()):
        with pytest.raises(drawing.DrawingError, match="too large"):
            drawing.prepare_digit(picture)
