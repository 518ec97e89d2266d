"""Builders shared by the tests: pictures of digits and the like, made here, never downloaded."""
from __future__ import annotations

import numpy as np
from PIL import Image

from superpos_core import mnist


def sample() -> mnist.MnistSample:
    return mnist.load_sample()


def digit_on_paper(image: np.ndarray, scale: int = 10) -> np.ndarray:
    """A 28x28 MNIST digit (0 = paper) as a black-on-white gray picture, enlarged ``scale`` times."""
    return 255 - np.kron(image, np.ones((scale, scale), np.uint8))


def as_canvas_rgba(gray: np.ndarray) -> Image.Image:
    """What the browser's Sketchpad sends: an RGBA picture with opaque ink and transparent paper."""
    ink = 255 - gray
    rgba = np.zeros(gray.shape + (4,), np.uint8)
    rgba[..., 3] = ink  # black strokes, transparent (colour 0, alpha 0) paper as the canvas exports
    return Image.fromarray(rgba, "RGBA")


def off_centre(image: np.ndarray, canvas: int = 400, size: int = 100, corner: tuple[int, int] = (15, 30)) -> np.ndarray:
    """An MNIST digit drawn small near a corner of a large white canvas (gray, 0 = black ink)."""
    small = Image.fromarray(255 - image).resize((size, size), Image.Resampling.BILINEAR)
    paper = np.full((canvas, canvas), 255, np.uint8)
    paper[corner[0] : corner[0] + size, corner[1] : corner[1] + size] = np.asarray(small)
    return paper
