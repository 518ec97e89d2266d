"""Any picture becomes the model's input, or a message for the learner saying why it cannot."""

import numpy as np
import pytest
from PIL import Image

from superpos_core import mnist, resnets
from tests import helpers


def make_file(tmp_path, name, image, **save):
    path = tmp_path / name
    image.save(path, **save)
    return str(path)


def test_photo_modes_become_rgb(tmp_path):
    base = Image.open(mnist.ASSETS / "photos" / "coffee.jpg")
    frames = [base.convert("P"), base.rotate(90).convert("P")]
    pictures = {
        "gray": base.convert("L"),
        "rgba": base.convert("RGBA"),
        "cmyk": base.convert("CMYK"),
        "16-bit": Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257),
        "huge": base.resize((8000, 8000)),
        "gif": Image.open(make_file(tmp_path, "a.gif", frames[0], save_all=True, append_images=frames[1:])),
    }
    for name, picture in pictures.items():
        rgb = resnets.photo_rgb(picture)
        assert rgb.mode == "RGB" and max(rgb.size) <= 1024, name


def test_unreadable_pictures_say_why(tmp_path):
    with pytest.raises(resnets.ImageError, match="too small"):
        resnets.photo_rgb(Image.new("RGB", (1, 1)))
    path = tmp_path / "cut.jpg"
    Image.open(mnist.ASSETS / "photos" / "cat.jpg").save(path)
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(resnets.ImageError, match="could not be read"):
        resnets.photo_rgb(str(path))
    with pytest.raises(resnets.ImageError, match="too large to read"):
        resnets.photo_rgb(str(helpers.decompression_bomb_png(tmp_path / "bomb.png")))
    with pytest.raises(resnets.ImageError, match="could not be read"):
        resnets.photo_rgb(str(helpers.text_named_png(tmp_path / "list.png")))
    with pytest.raises(resnets.ImageError, match="fully transparent"):
        resnets.photo_rgb(Image.new("RGBA", (64, 64), (0, 0, 0, 0)))


def test_a_picture_the_digit_model_cannot_read_is_described_as_a_picture():
    loaded = resnets.load("mnist-resnet")
    dot = np.full((280, 280), 255, np.uint8)
    dot[140:146, 140:146] = 0
    pictures = {
        "too small": Image.new("RGB", (1, 1), "black"),
        "fully transparent": Image.new("RGBA", (280, 280), (0, 0, 0, 0)),
        "single flat colour": Image.new("L", (280, 280), 255),
        "only a dot": dot,
    }
    for expected, picture in pictures.items():
        with pytest.raises(resnets.ImageError) as caught:
            resnets.analyse_image(loaded, picture)
        message = str(caught.value)
        assert expected in message, (expected, message)
        assert "canvas" not in message and "brush" not in message and "Clear it" not in message, (
            message
        )  # this tab has neither


def test_a_photo_given_to_the_digit_model_gets_a_caution_and_is_still_analysed():
    loaded = resnets.load("mnist-resnet")
    sample = helpers.sample().test
    for path in sorted((mnist.ASSETS / "photos").glob("*.jpg")):
        for picture in (Image.open(path), Image.open(path).convert("L")):  # colour, and the same photo in grey
            assert resnets.looks_like_photo(resnets.photo_rgb(picture)), path.name
            analysis = resnets.analyse_image(loaded, picture)
            assert analysis.caution == resnets.PHOTO_CAUTION and "only knows the ten digits" in analysis.caution
            assert len(analysis.top5) == 5 and len(analysis.layers) == 20  # a caution, not a refusal
    blue = np.zeros((280, 280, 4), np.uint8)
    blue[..., 2], blue[..., 3] = (
        255,
        255 - helpers.digit_on_paper(sample.images[3]),
    )  # a digit drawn in blue on the canvas
    digits = [helpers.digit_on_paper(sample.images[i], 4) for i in range(10)]
    digits += [
        helpers.as_canvas_rgba(helpers.digit_on_paper(sample.images[5])),
        helpers.off_centre(sample.images[6]),
        Image.fromarray(blue, "RGBA"),
    ]
    for i, digit in enumerate(digits):
        assert not resnets.looks_like_photo(resnets.photo_rgb(digit)), i
        assert resnets.analyse_image(loaded, digit).caution is None, i
