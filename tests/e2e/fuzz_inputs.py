"""What hypothesis draws for the fuzz tests of ``tests/e2e/test_fuzz.py``, and the files it sends.

Wrong types (None, booleans, NaN, infinity, negative and huge integers, lists and dicts), text of every
kind (control characters, emoji, right-to-left marks, combining marks, up to 200,000 characters), names
of models and layers that do not exist, pictures in every format and mode PIL writes (1×1, hair-thin,
16-bit, palette, alpha, float, CMYK), and garbage or truncated files with picture names. ``mixed`` puts
one endpoint's arguments together: all valid, valid but for one, or anything goes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from tests import helpers


class Long(str):
    """A long string whose repr stays short in hypothesis' reports."""

    def __repr__(self) -> str:
        return f"Long({len(self):,} characters: {str(self[:24])!r}…)"


HUGE = Long(("superposition 🧠 مرحبا \u202eevil\u202c \x00\x07\t\n " * 6000)[:200_000])

# --- wrong types, text and names ----------------------------------------------------------------

SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "\t\n\r",
    "\x07\x1b[31m",
    "\u200b\u200d\ufeff",
    "\u202eevil\u202c",
    "مرحبا بالعالم",
    "שלום עולם",
    "超位置の表現",
    "🙂👍🏽👨‍👩‍👧",
    "Z̸̢̛a̴l̷g̶o̵",
    "None",
    "null",
    "NaN",
    "-inf",
    "1e400",
    "0x10",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "'; DROP TABLE x; --",
    "{}",
    "[]",
    "a:",
    ":",
    "::::",
]
plain_text = st.text(
    max_size=40
)  # any code point but surrogates (which JSON cannot carry), control characters included
odd_text = st.text(
    st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Mn", "So"]), max_size=20
)  # controls, RTL marks, combining, emoji
huge_text = st.builds(
    lambda unit, size: Long((unit * size)[:size]), st.text(min_size=1, max_size=6), st.integers(10_000, 200_000)
)
any_text = st.one_of(plain_text, odd_text, st.sampled_from(SPECIAL_TEXT), huge_text)
numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 10**30, -(10**30), 2**63, 2**64, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [math.nan, math.inf, -math.inf, -0.0, 5e-324, 2.5]
    ),  # sent over plain HTTP: gradio_client refuses NaN
)
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text)
containers = st.one_of(
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=6), scalars, max_size=3),
    st.sampled_from([[], {}, [[]], {"a": {"b": None}}, [1, [2, [3]]]]),
)
junk = st.one_of(
    st.none(), st.booleans(), numbers, any_text, containers
)  # the wrong types, each as likely as the others


def not_costly(limit: float, refused_above: float = math.inf) -> Callable[[object], bool]:
    """A filter: drop values the server would read as a number in (limit, refused_above]: valid, but slow to train."""

    def ok(value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return True
        try:
            number = float(value)
        except (ValueError, OverflowError):  # not a number, or an integer beyond any float: refused either way
            return True
        return not (math.isfinite(number) and limit < number <= refused_above)

    return ok


def unknown_name(known) -> st.SearchStrategy[str]:
    names = st.one_of(
        plain_text,
        st.sampled_from(SPECIAL_TEXT),
        huge_text,
        st.sampled_from(["gpt-9", "resnet1000", "layer9.9.conv9", "fc1", "CONV1"]),
    )
    return names.filter(lambda name: name not in known)


# --- files --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A file to send, written when the call is made; its repr stays short in hypothesis' reports."""

    content: bytes
    suffix: str
    about: str

    def __repr__(self) -> str:
        return f"Upload({self.about}, {len(self.content):,} bytes, {self.suffix!r})"


SAVES_IN = {  # format -> modes PIL writes in it, and the file name's ending
    "PNG": (["1", "L", "LA", "P", "RGB", "RGBA", "I;16"], ".png"),
    "JPEG": (["L", "RGB", "CMYK"], ".jpg"),
    "GIF": (["L", "P", "1"], ".gif"),
    "TIFF": (["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "F"], ".tif"),
    "BMP": (["1", "L", "P", "RGB"], ".bmp"),
    "WEBP": (["L", "RGB", "RGBA"], ".webp"),
}
SHAPES = st.one_of(  # (height, width)
    st.tuples(st.integers(1, 64), st.integers(1, 64)),
    st.sampled_from([(1, 1), (1, 1500), (1500, 1), (2, 700), (280, 280), (1100, 1100)]),
)


def real_digit(index: int) -> tuple[np.ndarray, int]:
    test = helpers.sample().test
    return test.images[index % len(test.images)], int(test.labels[index % len(test.images)])


def paper(pattern: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    """A picture as (H, W) floats in [0, 1], 1 = white paper."""
    rng = np.random.default_rng(seed)
    h, w = shape
    if pattern == "noise":
        return rng.random(shape)
    if pattern == "flat":
        return np.full(shape, rng.random())
    if pattern == "stroke":
        sheet = np.ones(shape)
        sheet[h // 4 : max(h // 4 + 1, 3 * h // 4), max(0, w // 2 - w // 10) : w // 2 + w // 10 + 1] = 0.0
        return sheet
    image, _label = real_digit(seed)
    digit = np.asarray(Image.fromarray(255 - image).resize((w, h)), dtype=np.float64) / 255
    return 1 - digit if pattern == "inverted digit" else digit


def encode(sheet: np.ndarray, mode: str, fmt: str) -> bytes:
    if mode == "I;16":
        image = Image.fromarray((sheet * 65535).astype(np.uint16))
    elif mode == "F":
        image = Image.fromarray(sheet.astype(np.float32))
    else:
        gray = Image.fromarray((sheet * 255).astype(np.uint8))
        image = gray.convert("RGB").convert(mode) if mode in ("CMYK", "P") else gray.convert(mode)
        if mode in ("RGBA", "LA"):  # as the browser's canvas sends it: ink opaque, paper transparent
            image.putalpha(Image.fromarray(((1 - sheet) * 255).astype(np.uint8)))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@st.composite
def pictures(draw) -> Upload:
    fmt = draw(st.sampled_from(sorted(SAVES_IN)))
    modes, suffix = SAVES_IN[fmt]
    mode, shape = draw(st.sampled_from(modes)), draw(SHAPES)
    pattern, seed = (
        draw(st.sampled_from(["noise", "flat", "stroke", "digit", "inverted digit"])),
        draw(st.integers(0, 2**32 - 1)),
    )
    return Upload(
        encode(paper(pattern, shape, seed), mode, fmt),
        suffix,
        f"{fmt} {mode} {shape[1]}×{shape[0]} {pattern}, seed {seed}",
    )


@st.composite
def broken_files(draw) -> Upload:
    suffix = draw(st.sampled_from([".png", ".jpg", ".gif", ".tif", ".bmp", ".webp", ""]))
    kind = draw(st.sampled_from(["random bytes", "truncated", "picture header, then garbage", "empty", "text"]))
    if kind == "random bytes":
        return Upload(draw(st.binary(max_size=3000)), suffix, kind)
    if kind == "empty":
        return Upload(b"", suffix, kind)
    if kind == "text":
        return Upload(draw(any_text).encode(), suffix, kind)
    whole = draw(pictures())
    cut = draw(st.integers(0, max(0, len(whole.content) - 1)))
    tail = draw(st.binary(max_size=200)) if kind != "truncated" else b""
    return Upload(whole.content[:cut] + tail, suffix, f"{kind} at byte {cut} of {whole!r}")


files = st.one_of(pictures(), broken_files())


def canvas(inside: st.SearchStrategy) -> st.SearchStrategy[dict]:
    """A Sketchpad value carrying what ``inside`` draws where a browser or an API caller might put it."""
    return st.one_of(
        st.builds(lambda f: {"background": f, "layers": [], "composite": None}, inside),
        st.builds(lambda f: {"background": None, "layers": [], "composite": f}, inside),
        st.builds(lambda f, g: {"background": f, "layers": [g], "composite": f}, inside, inside),
    )


def digit_upload(index: int = 0) -> tuple[Upload, int]:
    image, label = real_digit(index)
    return Upload(encode(helpers.digit_on_paper(image) / 255, "L", "PNG"), ".png", f"test digit {index}"), label


# --- one endpoint's arguments -------------------------------------------------------------------


def mixed(valid: list[st.SearchStrategy], bad: list[st.SearchStrategy]) -> st.SearchStrategy[tuple]:
    """Arguments that are all valid, or valid but for one, or anything goes.

    Breaking one argument at a time reaches every parameter's own check, which a late check would
    otherwise rarely see: an earlier bad argument is refused first.
    """

    def one_broken(i: int):
        return st.tuples(*[bad[j] if j == i else valid[j] for j in range(len(valid))])

    return st.one_of(
        st.tuples(*valid),
        st.integers(0, len(valid) - 1).flatmap(one_broken),
        st.tuples(*[st.one_of(v, b) for v, b in zip(valid, bad)]),
    )
