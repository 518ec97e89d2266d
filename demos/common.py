"""Layout pieces every tab uses the same way, and the checks that give API callers clear messages."""

from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import io
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.data_classes import ImageData
from PIL import Image

from superpos_core import serving
from superpos_core.drawing import too_large_message

ZERO_GPU = "SPACES_ZERO_GPU"  # Hugging Face sets it to "true" on a ZeroGPU Space
GPU_SECONDS = 60  # what a ZeroGPU call asks for by default: one forward, one toy model, one SAE


def on_gpu(fn=None, *, duration: int = GPU_SECONDS):
    """Mark an event's handler as one that uses the device: on a ZeroGPU Space it is run with a GPU attached.

    ZeroGPU (Hugging Face's free shared GPUs) lends a GPU only for the length of a call decorated by
    ``spaces.GPU``, which it runs in a forked worker. Anywhere else — a CPU Space, a laptop, a lab's own
    GPU, or the ``spaces`` package installed without that hardware — the handler is returned unchanged,
    and ``spaces`` is not even imported. ``duration`` is the most seconds a call may hold the GPU.
    """
    if fn is None:
        return functools.partial(on_gpu, duration=duration)
    if os.environ.get(ZERO_GPU, "").lower() not in ("1", "true"):
        return fn
    import spaces  # present on every ZeroGPU Space; imported by app.py before torch, as ZeroGPU asks

    return spaces.GPU(fn, duration=duration)


QUOTED_CHARS = 60  # a bad value is quoted back at most this long: a 200,000-character string is not echoed
MAX_SEED = 2**63 - 1  # the largest seed, either side of 0, that torch.Generator.manual_seed takes


class GradiosFrontEnd:
    """Mix into a subclass of a gradio component: the browser gets that gradio component's own front end.

    Gradio finds a component's front end by its class name (a template's, such as Sketchpad, by its
    parent's), so a subclass with a name of its own would ask for one that does not exist.
    """

    @classmethod
    def _gradio_class(cls) -> type:
        return next(c for c in cls.__mro__ if c.__module__.startswith(("gradio.components.", "gradio.templates")))

    def get_block_name(self) -> str:
        gradio_class = self._gradio_class()
        return (gradio_class.__base__ if hasattr(gradio_class, "is_template") else gradio_class).__name__.lower()

    def get_block_class(self) -> str:
        return self._gradio_class().__name__.lower()


class WholePictureFiles(GradiosFrontEnd):
    """Mix into an Image output (``components.FigureImage``): a picture written to gradio's cache whole, or not at all; or sent inline.

    Gradio names a picture's file by a hash of its bytes and writes it in place, so two users who
    get the same picture (the same example clicked at once) would have one request rewrite the file
    while the other's browser reads it: a truncated download. Here the file is written to a
    temporary name and renamed, and a picture already there is not written again.

    A ``data:image/png;base64,...`` string (``inline_png``) is sent as it is, inside the event's
    message: the browser shows it without fetching a file, which is what keeps a live panel live.
    """

    def postprocess(self, value):
        if isinstance(value, str) and value.startswith("data:image/"):
            return ImageData(url=value, mime_type=value[5 : value.index(";")])
        if isinstance(value, np.ndarray):
            value = _cache_png(Image.fromarray(value), Path(self.GRADIO_CACHE))
        return super().postprocess(value)


def png_bytes(picture: Image.Image) -> bytes:
    """A picture as PNG file bytes, encoded for speed."""
    with io.BytesIO() as buffer:
        # zlib's fastest level: on these flat-coloured figures the files come out within a few
        # percent of the default level's size, for about a quarter less encoding time per request.
        picture.save(buffer, format="png", compress_level=1)
        return buffer.getvalue()


def inline_png(pixels: np.ndarray) -> str:
    """An (H, W) or (H, W, 3) uint8 picture as a PNG data URL, for a ``FigureImage`` to send inline."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(Image.fromarray(pixels))).decode("ascii")


def _cache_png(picture: Image.Image, cache: Path) -> str:
    data = png_bytes(picture)
    path = cache / hashlib.sha256(data).hexdigest()[:40] / "figure.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    return str(path)


def note(text: str) -> None:
    """The plain-language note beside a figure: what to look for."""
    gr.Markdown(text, elem_classes=["figure-note"])


def clickable_tokens(label: str, elem_id: str) -> gr.HighlightedText:
    """A text's tokens, one box each (never merged), shaded by a score from 0 to 1; a click on one is its ``select``
    event, whose ``index`` is the token's position."""
    return gr.HighlightedText(
        label=label,
        show_legend=False,
        show_inline_category=False,
        combine_adjacent=False,
        interactive=False,
        elem_id=elem_id,
    )


class Panels:
    """A tab's output components by name: handlers return ``{name: value}``, and each event names what it fills.

    Adding an output is one name in the handler and one component here, never a recount of a tuple. An
    event's outputs are listed by name (``panels("summary", "status")``), the JSON summary first: that order
    is the API's. A name the handler leaves out keeps its component as it is (gradio's ``skip``).
    """

    def __init__(self, **components) -> None:
        self.components = components

    def __getitem__(self, name: str):
        return self.components[name]

    def __call__(self, *names: str) -> list:
        """The components of ``names``, in that order (an event's ``outputs``); with no names, all, in the order given."""
        return [self.components[name] for name in names or self.components]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.components)

    def keyed(self, values: dict) -> dict:
        """``{name: value}`` -> ``{component: value}``, what gradio takes from an event."""
        return {self.components[name]: value for name, value in values.items()}

    def filled_by(self, handler):
        """``handler`` (returning, or for a generator yielding, ``{name: value}``) as an event function.

        The wrapper keeps the handler's signature, so gradio still sees its parameter names (the API's) and
        its ``gr.Progress`` default.
        """
        if inspect.isgeneratorfunction(handler):

            @functools.wraps(handler)
            def stream(*args, **kwargs):
                for values in handler(*args, **kwargs):
                    yield self.keyed(values)

            return stream

        @functools.wraps(handler)
        def fill(*args, **kwargs):
            return self.keyed(handler(*args, **kwargs))

        return fill


def network_view(
    describe,
    inputs=(),
    triggers=(),
    initial: str | None = None,
    label: str = "The network this tab uses (print(model), with shapes)",
    elem_id: str | None = None,
) -> gr.HTML:
    """A closed accordion that shows a tab's network: its modules, their output shapes and parameters, the captured ones marked.

    ``describe(*inputs)`` returns the HTML (``superpos_core.network.as_html``). It runs when the learner
    opens the accordion and whenever a component in ``triggers`` changes (the model or the layer chosen),
    never while the page is built: a model that takes seconds to load is described once it is loaded.
    ``initial`` is shown until then.
    """
    with gr.Accordion(label, open=False, elem_id=elem_id) as box:
        view = gr.HTML(initial or "<p>Open this to see the network.</p>", elem_classes=["network-view"])
    show = dict(
        fn=describe,
        inputs=list(inputs),
        outputs=view,
        api_visibility="private",
        **serving.queue("network-view"),
        show_progress="minimal",
    )
    box.expand(**show)
    for trigger in triggers:
        trigger.change(**show)
    return view


def quoted(value) -> str:
    """A value as it is quoted back in a message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= QUOTED_CHARS else f"{text[:QUOTED_CHARS]}… ({len(text):,} characters)"


def number(value, name: str) -> float:
    """A control's value as a float (NaN and infinity pass: the range checks name them), or a clear ``gr.Error``."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**1023:  # beyond any float
        return math.inf if value > 0 else -math.inf
    try:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return float(value)
    except ValueError:
        pass
    raise gr.Error(f"{name} must be a number; got {quoted(value)}.", print_exception=False)


def whole_number(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """A control's value as a whole number within [low, high], or a ``gr.Error`` that names the control."""
    bounds = (
        f" from {low:,} to {high:,}"
        if low is not None and high is not None
        else f" of at least {low:,}"
        if low is not None
        else ""
    )
    if isinstance(value, int) and not isinstance(value, bool):  # JSON integers arrive exact, however long
        whole = value
    else:
        real = number(value, name)
        if not math.isfinite(real) or real != int(real):
            raise gr.Error(f"{name} must be a whole number{bounds}; got {quoted(value)}.", print_exception=False)
        whole = int(real)
    if (low is not None and whole < low) or (high is not None and whole > high):
        raise gr.Error(f"{name} must be a whole number{bounds}; got {quoted(value)}.", print_exception=False)
    return whole


def _checked_data_model(model: type, hint: str) -> type:
    """Gradio's pydantic ``model`` whose validation failures are a ``gr.Error`` with ``hint``; same schema and name.

    Gradio checks an upload's shape with the component's pydantic model before any of our code runs,
    and a wrong shape (a number, a bare string) would otherwise be a validation traceback in the
    server log and a bare "error" for the caller.
    """

    def model_validate(cls, obj, *args, **kwargs):
        try:
            return super(checked, cls).model_validate(obj, *args, **kwargs)
        except ValueError as error:  # pydantic's ValidationError is one
            details = error.errors() if callable(getattr(error, "errors", None)) else []
            first = (
                details[0] if details else {"loc": (), "input": obj}
            )  # the part at fault: the whole may hold the server's upload paths
            where = f" (its {'.'.join(map(str, first['loc']))!r} part)" if first["loc"] else ""
            raise gr.Error(
                f"That is not a picture{where}: got {quoted(first.get('input', obj))}. {hint}", print_exception=False
            ) from None

    checked = type(
        model.__name__,
        (model,),
        {"model_validate": classmethod(model_validate), "__module__": model.__module__, "__doc__": model.__doc__},
    )
    return checked


class ReadableUploads(GradiosFrontEnd):
    """Mix into an image component: a file that cannot be decoded, or a value that is no file, gets a clear message.

    API callers can send anything; the component's own checks and decoding would otherwise fail with a
    traceback in the server log and a bare error for the caller.
    """

    upload_hint = "Send a PNG or JPEG with gradio_client.handle_file(path)."

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if getattr(cls, "data_model", None) is not None:
            cls.data_model = _checked_data_model(cls.data_model, cls.upload_hint)

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except (
            Image.DecompressionBombError
        ):  # PIL refuses to open it: far more pixels than any photo (a "decompression bomb")
            raise gr.Error(TOO_MANY_PIXELS, print_exception=False) from None
        except (OSError, ValueError, SyntaxError) as error:
            raise gr.Error(unreadable_file(error), print_exception=False) from None


TOO_MANY_PIXELS = too_large_message()


def unreadable_file(error: BaseException) -> str:
    """The message for an upload that is not a picture at all (a text file named .png, a cut-off JPEG)."""
    if isinstance(error, Image.UnidentifiedImageError):
        return "That file is not a picture: it could not be read as an image (its contents are not PNG, JPEG, GIF or another image format). Send a PNG or JPEG."
    return f"That file could not be read as an image ({type(error).__name__}). Send a PNG or JPEG."


class CheckedChoice(GradiosFrontEnd):
    """Mix into a Dropdown or Radio: a value that is not one of its choices gets a short message naming the control.

    Gradio's own message repeats the whole value (however long) and prints a traceback in the server log.
    """

    def preprocess(self, payload):
        choices = [value for _label, value in self.choices]
        if payload is not None and not getattr(self, "allow_custom_value", False) and payload not in choices:
            raise gr.Error(
                f"{self.label}: {quoted(payload)} is not in the list of choices ({', '.join(map(str, choices))}).",
                print_exception=False,
            )
        return super().preprocess(payload)


class CheckedRange(GradiosFrontEnd):
    """Mix into a Slider or Number: a value that is no number, or out of the control's range, gets a message naming the control.

    Gradio's own check fails with a bare error (and a server traceback) on text, lists or None.
    """

    def preprocess(self, payload):
        if payload is None and not isinstance(self, gr.Slider):  # an empty Number box
            return None
        value = number(payload, self.label)
        low, high = self.minimum, self.maximum
        if math.isnan(value):
            raise gr.Error(f"{self.label} must be a number; got {quoted(payload)}.", print_exception=False)
        # In gradio's own words, so that callers matching its messages keep working.
        if low is not None and value < low:
            raise gr.Error(
                f"{self.label}: {quoted(payload)} is less than minimum value {low:,g}.", print_exception=False
            )
        if high is not None and value > high:
            raise gr.Error(
                f"{self.label}: {quoted(payload)} is greater than maximum value {high:,g}.", print_exception=False
            )
        if math.isinf(value):
            raise gr.Error(f"{self.label} must be a finite number; got {quoted(payload)}.", print_exception=False)
        return super().preprocess(payload if isinstance(payload, (int, float)) else value)  # an int stays exact


@dataclass(frozen=True)
class UnreadablePicture:
    """An upload that is no picture we can read, with the message for the learner (instead of an error in preprocessing).

    The failure handler gets its inputs preprocessed again: a file that raised there once would raise
    again, and every panel would be left with an error badge and no message.
    """

    message: str


class PictureOrMessage(ReadableUploads):
    """Mix into an Image input (``components.SafeImage``): an unreadable upload arrives as an ``UnreadablePicture``."""

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except gr.Error as error:
            return UnreadablePicture(str(error.message))
