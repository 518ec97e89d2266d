"""Turn a drawing or an uploaded picture into a 28x28 digit the way MNIST's digits were made.

MNIST's recipe (LeCun et al.): the digit is cropped to its ink, its longer side scaled to 20 px
keeping the aspect ratio (anti-aliased, so edges become grey), and it is placed in a 28x28 field so
that its centre of mass sits at the centre. Drawings that skip this look nothing like the
training data, and the network's answers then say more about the framing than the digit.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

MAX_SIDE = 1024  # larger pictures are shrunk first: a digit needs no more, and it bounds the work
MAX_PIXELS = 8000 * 8000  # refuse anything bigger (decompression bombs); this much is shrunk first


def too_large_message(width: int | None = None, height: int | None = None) -> str:
    """What every tab says of a picture with too many pixels (a decompression bomb, or just a huge scan)."""
    size = f"{width:,}×{height:,} pixels, far more" if width else "far more pixels"
    return f"The picture is too large to read: {size} than the 8000×8000 this app reads. Use a smaller one, such as a photo from a phone or a screenshot."


INK_LEVEL = 0.25  # a pixel counts as ink for cropping when it is this dark relative to the darkest
MIN_DIGIT_SHARE = 0.15  # ink narrower and shorter than this share of the picture is "a dot" (a brush tap is ~8%)
DIGIT_BOX, FIELD = 20, 28
CENTRE = 14.0  # MNIST's digits have their centre of mass at pixel (14, 14) on average
MAX_DATA_URL = 8 * 2**20  # characters; a drawing pad's PNG is a few kilobytes, a phone photo a few megabytes


class DrawingError(ValueError):
    """A picture that cannot be read as a digit; the message is meant for the learner."""


@dataclass(frozen=True)
class PreparedDigit:
    pixels: np.ndarray  # (28, 28) float32 in [0, 1], 1 = ink: what the network sees
    inverted: bool  # True when the picture was light ink on a dark background


def _from_pil(image: Image.Image) -> np.ndarray:
    """Any PIL image -> ink (H, W) float32 in [0, 1], transparency counted as white paper."""
    if image.width * image.height > MAX_PIXELS:
        raise DrawingError(too_large_message(image.width, image.height))
    if getattr(image, "is_animated", False):
        image.seek(0)  # an animated GIF: read its first frame
    if max(image.size) > MAX_SIDE:
        image.draft("L", (MAX_SIDE, MAX_SIDE))  # JPEGs decode straight at a smaller size
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        gray = np.asarray(image, dtype=np.float32)
        top = 65535.0 if gray.max() > 255 else 255.0  # 16-bit data, or 8-bit stored wide
        return 1.0 - np.clip(gray / top, 0, 1)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return _ink_from_array(np.asarray(image.convert("RGBA")))
    return 1.0 - np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _ink_from_array(array: np.ndarray) -> np.ndarray:
    """A numpy picture (H, W), (H, W, 1|3|4) of any dtype -> ink (H, W) float32 in [0, 1]."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise DrawingError(f"A picture must be a grey or colour image; got an array of shape {array.shape}.")
    if array.dtype == np.uint16:
        values = array.astype(np.float32) / 65535.0
    elif array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif np.issubdtype(array.dtype, np.number) or array.dtype == bool:
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise DrawingError("The picture contains values that are not numbers (NaN or infinity).")
        if values.max(initial=0) > 1.0:
            values = values / (65535.0 if values.max() > 255 else 255.0)
        values = np.clip(values, 0.0, 1.0)
    else:
        raise DrawingError(f"Pixels of type {array.dtype} cannot be read as an image.")
    if values.ndim == 2:
        return 1.0 - values
    rgb = values[..., :3]
    if values.shape[2] == 4:  # blend over white paper: the canvas stores colour 0 under alpha 0
        alpha = values[..., 3:4]
        rgb = rgb * alpha + (1.0 - alpha)
    gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return 1.0 - gray


def data_url_bytes(text: str) -> bytes:
    """The picture inside a ``data:image/...;base64,...`` URL (what a browser canvas's toDataURL gives), as file bytes."""
    head, comma, body = text.partition(",")
    if not (comma and head.lower().startswith("data:image/") and head.lower().endswith(";base64")):
        raise DrawingError("That is not a picture: expected a data:image/...;base64 URL.")
    if len(body) > MAX_DATA_URL:
        raise DrawingError(
            f"The picture is {len(body) / 2**20:.0f} MB as text, too large to read. Send one of at most {MAX_DATA_URL // 2**20} MB."
        )
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise DrawingError("That data URL is not valid base64, so it holds no picture.") from None


def ink_image(picture) -> np.ndarray:
    """Anything that holds a picture (array, PIL image, file path, bytes, data URL) -> ink (H, W) in [0, 1]."""
    if picture is None or (isinstance(picture, str) and picture == ""):
        raise DrawingError("The canvas is empty: draw a digit with the brush.")
    if isinstance(picture, str) and picture[:5].lower() == "data:":
        picture = data_url_bytes(picture)
    if isinstance(picture, np.ndarray):
        ink = _ink_from_array(picture)
    elif isinstance(picture, Image.Image):
        try:
            ink = _from_pil(picture)
        except (
            OSError,
            ValueError,
            SyntaxError,
        ) as error:  # opened lazily (as gradio does): a broken file fails only here
            if isinstance(error, DrawingError):
                raise
            raise DrawingError(
                f"That file could not be read as an image ({type(error).__name__}). Upload a PNG or JPEG."
            ) from None
    elif isinstance(picture, (str, os.PathLike, bytes, bytearray)):
        source = io.BytesIO(picture) if isinstance(picture, (bytes, bytearray)) else picture
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(source) as image:
                    image.load() if max(image.size) <= MAX_SIDE else None
                    ink = _from_pil(image)
        except DrawingError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise DrawingError(too_large_message()) from None
        except (OSError, ValueError, SyntaxError) as error:  # PIL's ways of saying "not an image"
            raise DrawingError(
                f"That file could not be read as an image ({type(error).__name__}). Upload a PNG or JPEG."
            ) from None
    else:
        raise DrawingError(f"Expected a picture, got {type(picture).__name__}.")
    if ink.shape[0] < 1 or ink.shape[1] < 1:
        raise DrawingError("The picture has no pixels.")
    return ink


def editor_picture(value):
    """The picture inside a Sketchpad/ImageEditor value ``{background, layers, composite}``.

    The composite is what the learner sees; an API caller may send a plain image as the
    background (or the composite) alone.
    """
    if isinstance(value, dict):
        return value.get("composite") if value.get("composite") is not None else value.get("background")
    return value


def prepare_digit(picture) -> PreparedDigit:
    """Crop, scale and centre a picture of one digit as MNIST did. Raises ``DrawingError``."""
    ink = ink_image(picture)
    # 1) Light ink on a dark background (an MNIST image, a chalkboard): flip it.
    border = np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])
    inverted = bool(np.median(border) > 0.5)
    if inverted:
        ink = 1.0 - ink
    # 2) Paper is whatever the border mostly is; ink is what stands out from it.
    ink = np.clip(ink - float(np.median(border if not inverted else 1.0 - border)), 0.0, 1.0)
    darkest = float(ink.max())
    if darkest < 0.1:
        if inverted:
            raise DrawingError(
                "The picture is dark all over: there is no digit to see. Clear it and draw dark strokes on white."
            )
        raise DrawingError("The canvas is empty: draw a digit with the brush.")
    rows = np.flatnonzero((ink >= INK_LEVEL * darkest).any(1))
    cols = np.flatnonzero((ink >= INK_LEVEL * darkest).any(0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    if max(height, width) < MIN_DIGIT_SHARE * max(ink.shape):
        raise DrawingError("That is only a dot. Draw the digit large, filling most of the canvas.")
    if inverted and height * width > 0.95 * ink.size and ink.mean() > 0.4:
        raise DrawingError(
            "The picture is dark all over: there is no digit to see. Clear it and draw dark strokes on white."
        )
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] / darkest  # darkest stroke = full ink
    # 3) Longer side to 20 px, aspect ratio kept, anti-aliased.
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    small = (
        F.interpolate(
            torch.from_numpy(np.ascontiguousarray(crop))[None, None],
            size=size,
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )[0, 0]
        .clamp_(0, 1)
        .numpy()
    )
    # 4) Centre of mass to the middle of a 28x28 field.
    total = small.sum()
    ys, xs = np.indices(small.shape)
    com_y, com_x = (ys * small).sum() / total, (xs * small).sum() / total
    top, left = int(round(CENTRE - com_y)), int(round(CENTRE - com_x))
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    _paste(field, small, top, left)
    return PreparedDigit(field, inverted)


def _paste(field: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """Paste ``patch`` with its corner at (top, left), clipping whatever falls outside."""
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + patch.shape[0], field.shape[0]), min(left + patch.shape[1], field.shape[1])
    if y1 > y0 and x1 > x0:
        field[y0:y1, x0:x1] = patch[y0 - top : y1 - top, x0 - left : x1 - left]
