"""Any picture -> the model's input, the model's own way: MNIST's recipe for the digit model, torchvision's
transforms for the ImageNet ones.

    from superpos_core import resnets
    prepared = resnets.prepare(resnets.load("mnist-resnet"), "my_digit.png")
    prepared.x.shape, prepared.display.shape, prepared.caution   # (1, 1, 28, 28), (224, 224, 3), None

A picture the model cannot read (too small, too large, transparent, not an image) raises ``ImageError`` with a
message for the learner; a photo given to the digit model is analysed, with a caution.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from superpos_core import drawing, mnist
from superpos_core.resnets.loading import LoadedResNet


class ImageError(ValueError):
    """A picture the model cannot read; the message is meant for the learner."""


MIN_SIDE = 8


def photo_rgb(picture) -> Image.Image:
    """Any picture (PIL of any mode, array, path, bytes) -> an RGB PIL image, alpha over white."""
    if isinstance(picture, (str, os.PathLike, bytes, bytearray, np.ndarray)):
        try:
            picture = _open(picture)
        except drawing.DrawingError as error:
            raise ImageError(str(error)) from None
    if not isinstance(picture, Image.Image):
        raise ImageError(f"Expected a picture, got {type(picture).__name__}.")
    if getattr(picture, "is_animated", False):
        picture.seek(0)  # an animated GIF: its first frame
    if min(picture.size) < MIN_SIDE:
        raise ImageError(
            f"The picture is {picture.width}×{picture.height} pixels: too small to see anything. Use one at least {MIN_SIDE}×{MIN_SIDE}."
        )
    if picture.width * picture.height > drawing.MAX_PIXELS:
        raise ImageError(drawing.too_large_message(picture.width, picture.height))
    try:
        picture.load()  # gradio opens uploads lazily: a broken file fails here, not halfway through the conversion
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageError(
            f"That file could not be read as an image ({type(error).__name__}). Upload a PNG or JPEG."
        ) from None
    if picture.mode in ("RGBA", "LA", "PA") and picture.getchannel("A").getextrema()[1] == 0:
        raise ImageError(
            "The picture is fully transparent: there is nothing in it to see. Use a picture with something on it."
        )
    if max(picture.size) > 1024:
        picture = picture.copy()
        picture.thumbnail((1024, 1024))
    if picture.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        gray = np.asarray(picture, dtype=np.float32)
        top = 65535.0 if gray.max() > 255 else 255.0
        return Image.fromarray((np.clip(gray / top, 0, 1) * 255).astype(np.uint8)).convert("RGB")
    if picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info):
        rgba = picture.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return picture.convert("RGB")


def _open(picture) -> Image.Image:
    if isinstance(picture, np.ndarray):
        array = picture
        if array.dtype != np.uint8:
            array = np.clip(
                array.astype(np.float32)
                / (65535.0 if array.max(initial=0) > 255 else (255.0 if array.max(initial=0) > 1 else 1.0))
                * 255,
                0,
                255,
            ).astype(np.uint8)
        try:
            return Image.fromarray(array)
        except (TypeError, ValueError):
            raise drawing.DrawingError(
                f"A picture must be a grey or colour image; got an array of shape {picture.shape}."
            ) from None
    import io

    source = io.BytesIO(picture) if isinstance(picture, (bytes, bytearray)) else picture
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # PIL would decode it anyway: refuse before
            image = Image.open(source)
        if image.width * image.height > drawing.MAX_PIXELS:
            raise drawing.DrawingError(drawing.too_large_message(image.width, image.height))
        image.load()
        return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise drawing.DrawingError(drawing.too_large_message()) from None
    except (OSError, ValueError, SyntaxError) as error:
        if isinstance(error, drawing.DrawingError):
            raise
        raise drawing.DrawingError(
            f"That file could not be read as an image ({type(error).__name__}). Upload a PNG or JPEG."
        ) from None


# A picture is read as a photo, not a digit, when little of it is plain paper, when its border is not
# plain, or when much of it is in colour. Measured on the bundled examples: MNIST digits on paper are
# >= 80% paper with a plain border and no colour; the four bundled photos, in colour or grey, are <= 61%
# paper or have a border that varies by >= 0.09 on average, and 17-83% of their pixels are coloured.
PHOTO_PAPER_SHARE = 0.55  # below this share of pixels near the paper's colour: a photo
PHOTO_BORDER_SPREAD = 0.08  # a border that varies more than this (mean distance from its median colour, 0..1): a photo
PHOTO_COLOUR_SHARE = (
    0.3  # more than this share of strongly coloured pixels: a photo (a digit in coloured ink stays below)
)
PHOTO_CAUTION = (
    "This looks like a photo, not a digit: this model only knows the ten digits 0–9, so its answer is the digit the "
    "picture most resembles, whatever it shows. The feature maps are still this network's response to it."
)


def looks_like_photo(rgb: Image.Image) -> bool:
    """True when an RGB picture looks like a photo rather than one digit on plain paper (``PHOTO_*`` above)."""
    pixels = np.asarray(rgb.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])  # (perimeter, 3)
    paper = np.median(border, axis=0)
    border_spread = float(np.abs(border - paper).max(axis=1).mean())
    paper_share = float((np.abs(pixels - paper).max(axis=2) < 0.1).mean())
    colour_share = float(((pixels.max(axis=2) - pixels.min(axis=2)) > 0.2).mean())
    return paper_share < PHOTO_PAPER_SHARE or border_spread > PHOTO_BORDER_SPREAD or colour_share > PHOTO_COLOUR_SHARE


# The MNIST recipe's messages speak of a canvas and a brush (the MNIST tab's); here the learner gave a picture.
_DIGIT_MESSAGES = {
    "canvas is empty": "There is no digit in this picture: it is blank. Use a picture of one dark digit on light paper (or a light one on dark).",
    "dark all over": "The picture is dark all over: there is no digit to see. Use a picture of one dark digit on light paper (or a light one on dark).",
    "only a dot": "The digit in this picture is only a dot. Use a picture where the digit fills most of the frame.",
}


def _digit(rgb: Image.Image) -> drawing.PreparedDigit:
    """MNIST's recipe on a picture, with messages about pictures."""
    if max(high - low for low, high in rgb.getextrema()) < 8:  # every channel within 8 of 255 levels: nothing drawn
        raise ImageError(
            "The picture is a single flat colour: there is no digit in it. Use a picture of one dark digit on light paper (or a light one on dark)."
        )
    try:
        return drawing.prepare_digit(rgb)
    except drawing.DrawingError as error:
        message = str(error)
        raise ImageError(next((text for key, text in _DIGIT_MESSAGES.items() if key in message), message)) from None


@dataclass
class Prepared:
    x: torch.Tensor  # (1, C, H, W) model input
    display: np.ndarray  # (h, w, 3) uint8: the picture as the model sees it (before normalising)
    caution: str | None = None  # a note for the learner when the picture does not suit the model


def prepare(loaded: LoadedResNet, picture) -> Prepared:
    """Picture -> model input, the model's own way: MNIST's recipe or torchvision's transforms."""
    rgb = photo_rgb(drawing.editor_picture(picture))  # read, checked for size and transparency, alpha over white
    if loaded.entry.input_kind == "digit":
        digit = _digit(rgb)
        x = mnist.normalize(digit.pixels, loaded.device).reshape(1, 1, 28, 28)  # (1, 1, 28, 28)
        gray = (255 * (1 - digit.pixels)).astype(np.uint8)  # dark ink on light paper, as drawn
        gray = np.kron(gray, np.ones((8, 8), np.uint8))  # 224x224, big enough to see an overlay on
        return Prepared(x, np.repeat(gray[..., None], 3, axis=2), PHOTO_CAUTION if looks_like_photo(rgb) else None)
    x = loaded.transform(rgb).unsqueeze(0).to(loaded.device)  # (1, 3, 224, 224): resize, centre-crop, normalise
    mean = torch.tensor(loaded.transform.mean)[:, None, None]
    std = torch.tensor(loaded.transform.std)[:, None, None]
    display = ((x[0].cpu() * std + mean).clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()  # (224, 224, 3)
    return Prepared(x, display)
