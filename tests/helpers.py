"""Builders shared by the tests: pictures of digits, a tiny language model and the like, made here, never downloaded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

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


# --- a tiny GPT-2 and its tokenizer, built offline -------------------------------------------------

TINY_N_POSITIONS = 64  # the tiny model's context: long texts are cheap to make
TINY_D_MODEL = 32


def spelled(text: str) -> str:
    """How a byte-level BPE spells ``text``: one printable character per UTF-8 byte (" " -> "Ġ")."""
    from tokenizers.pre_tokenizers import ByteLevel

    return "".join(piece for piece, _ in ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str(text))


def tiny_tokenizer(words: Sequence[str] = ()):
    """A GPT-2-style byte-level tokenizer: all 256 bytes, a few merges, GPT-2's end-of-text token.

    The merges make " the" one token, "日" one token (three bytes) and the first two of the four bytes
    of "😀" one token (part of a character), so the readable-token cases all occur. Each of ``words``
    (spelled as the tokenizer meets them, e.g. " good") becomes one token as well.
    """
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import GPT2Tokenizer

    vocab = {char: i for i, char in enumerate(sorted(ByteLevel.alphabet()))}
    merges = []
    for word in (spelled(" the"), spelled("日"), spelled("😀")[:2], *map(spelled, words)):
        pieces = list(word)
        while len(pieces) > 1:  # merging left to right is enough: every chain starts at the word's first byte
            if (pieces[0], pieces[1]) not in merges:  # words with a common start share its merges
                merges.append((pieces[0], pieces[1]))
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
            vocab.setdefault(pieces[0], len(vocab))
    vocab["<|endoftext|>"] = len(vocab)
    return GPT2Tokenizer(vocab=vocab, merges=merges)


def save_tiny_gpt2(folder, words: Sequence[str] = ()):
    """A 2-block GPT-2 with random weights, saved as ``save_pretrained`` saves a Hub model; ``words`` as in ``tiny_tokenizer``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tiny_tokenizer(words)
    config = GPT2Config(
        n_layer=2,
        n_embd=TINY_D_MODEL,
        n_head=2,
        vocab_size=len(tokenizer),
        n_positions=TINY_N_POSITIONS,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_gpt2_in_hub_cache(hub, words: Sequence[str] = ()):
    """``save_tiny_gpt2`` laid out in the Hugging Face cache at ``hub`` as GPT-2 small ("gpt2" in the catalogue) is."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub / "models--openai-community--gpt2"
    save_tiny_gpt2(repo / "snapshots" / commit, words)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return hub


# --- pictures that are not what they claim -----------------------------------------------------------


def decompression_bomb_png(path, side: int = 15000):
    """A valid PNG of side x side pixels that is only kilobytes on disk (1 bit a pixel, all white).

    PIL refuses to open it (over twice its pixel limit): a "decompression bomb" as an attacker or an
    unlucky scan would send. Made row by row, so making it costs little memory and well under a second.
    """
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\xff" * ((side + 7) // 8)  # filter byte, then the row's bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def text_named_png(path):
    """A text file with a picture's name: what a learner sends by mistake."""
    with open(path, "w") as handle:
        handle.write("This is a shopping list, not a picture.\n")
    return path


def save_random_torchvision_checkpoint(checkpoints, key: str = "resnet18"):
    """A catalogue model's architecture with random weights, saved where and as torchvision caches its weights.

    Lets a test load an ImageNet model through the ordinary path with no download and no real weights.
    """
    import os

    import torch

    from superpos_core import resnets

    os.makedirs(checkpoints, exist_ok=True)
    torch.manual_seed(0)
    path = os.path.join(checkpoints, resnets.checkpoint_path(resnets.CATALOGUE[key]).name)
    torch.save(resnets.build(key).state_dict(), path)
    return path


def imagenet_offline_with_random_resnet18(tmp_path, monkeypatch) -> list:
    """For one test, in this process (the e2e server's too): an empty torchvision cache holding only ResNet-18 with
    random weights, no network (each download attempt is recorded in the list returned, then fails as offline),
    the rank tables cached under ``tmp_path`` and no model loaded yet."""
    import urllib.error

    import torch

    from superpos_core import resnets

    attempts = []

    def offline(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path / "cache"))  # the random weights' rank table stays here
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    model_cache_for_this_test(monkeypatch, resnets.loading, empty=True)
    monkeypatch.setattr(resnets.loading, "_failed_downloads", {})
    save_random_torchvision_checkpoint(tmp_path / "torch" / "hub" / "checkpoints", "resnet18")
    return attempts


def model_cache_for_this_test(monkeypatch, module, empty: bool = False) -> None:
    """Give ``module`` (``lm.loading`` or ``resnets.loading``: the module that keeps the models) a model cache of
    its own for one test: what the test registers or loads is gone afterwards, and the process's cache comes back.
    ``empty`` starts it empty (models load on first use); otherwise it starts with the models the process has
    loaded, so nothing is read twice.

    The one place the tests reach for the cache itself: the modules' public ``register``, ``load``, ``loaded_now``
    and ``forget`` act on whichever cache is in place.
    """
    from superpos_core import serving

    # An app built by an earlier test may still be warming up: its load would fill this test's cache, or read this
    # test's stand-in model under the real model's name and keep what it drew from it for the tests that follow.
    assert serving.wait_for_warm_ups(timeout=300), "an earlier test's warm-ups are still running after 5 minutes"
    # The packages only re-export: swapping a cache there would leave the one ``load`` reads in place.
    assert hasattr(module, "_models"), f"{module.__name__} keeps no model cache (pass lm.loading or resnets.loading)"
    cache = serving.Kept()
    if not empty:
        for key in module._models.keys():
            cache.put(key, module._models.get(key))
    monkeypatch.setattr(module, "_models", cache)


# --- a corpus and an SAE whose activations are known --------------------------------------------------


def build_tiny_corpus(folder, documents: int = 30, repeats: int = 3):
    """A built corpus (``superpos_core.corpus.build``) of one public-domain source: short lines about a cat and a dog."""
    from superpos_core import corpus

    texts = [
        f"Document {i}: the cat sat on the mat, and the dog ran after it {i} times.\n" * repeats
        for i in range(documents)
    ]
    source = corpus.Source(
        "tiny",
        "none",
        "prose",
        "public domain",
        10**6,
        lambda: iter(corpus.Document("tiny", f"d{i}", t) for i, t in enumerate(texts)),
    )
    corpus.build(folder, (source,))
    return folder


def signed_pairs_sae(d_in: int, scale_decoder: float = 1.0):
    """An SAE that rebuilds any input exactly: latent i is relu(x_i), latent d_in + i is relu(-x_i).

    With ``scale_decoder`` 0 its reconstruction is 0 whatever the input.
    """
    import torch

    from superpos_core.sae.train import SAE, SAETrainConfig

    sae = SAE(SAETrainConfig(d_in=d_in, n_latents=2 * d_in), torch.Generator().manual_seed(0))
    eye = torch.eye(d_in)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))  # (d_in, 2 d_in)
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0) * scale_decoder)  # (2 d_in, d_in)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def forward_hooks(loaded) -> list[list[str]]:
    """The forward hooks on each block of a loaded language model, by their functions' names (transformers keeps
    one of its own on each; a steering hook is ``steering_hook.<locals>.add``)."""
    from superpos_core.lm.corpus_activations import blocks_of

    return [
        [getattr(hook, "__qualname__", repr(hook)) for hook in block._forward_hooks.values()]
        for block in blocks_of(loaded.model, loaded.n_layers - 1)
    ]


def tiny_gpt2_release(folder):
    """(loaded tiny GPT-2, a release like GPT-2's pretrained SAEs naming it, its layer-1 SAE) made in ``folder``: an SAE
    in SAELens' format (centred stream, 24-token BOS-led windows) standing in for the real ones, which cannot be
    downloaded here."""
    from dataclasses import replace
    from pathlib import Path

    from superpos_core import lm, sae
    from tests.superpos_core.sae.helpers import sae_tensors, write_sae_folder

    folder = Path(folder)
    loaded = lm.load(save_tiny_gpt2(folder / "tiny-gpt2"), allow_any=True)
    sae_folder = write_sae_folder(
        folder / "sae",
        sae_tensors(d_in=TINY_D_MODEL, d_sae=48),
        d_in=TINY_D_MODEL,
        d_sae=48,
        hook_name="blocks.1.hook_resid_pre",
        hook_layer=1,
        context_size=24,
        prepend_bos=True,
        model_from_pretrained_kwargs={"center_writing_weights": True},
    )
    release = replace(sae.GPT2_SMALL_RES_JB, name=f"tiny-release-{folder.name}", model=loaded.name, d_in=TINY_D_MODEL)
    return loaded, release, sae.load_pretrained_sae(sae_folder)


class SideBySide:
    """Jobs that each run a process of their own on one thread (a benchmark's quick run) go two at a time, ahead.

    Each such process mostly keeps one core busy, and the machine has two: a module's fixture hands all its jobs
    over at once, longest first, and each test waits only for its own result (``result(name)``). A job's
    exception is raised in the test that asks for that job.
    """

    AT_ONCE = 2

    def __init__(self, jobs: dict[str, Callable[[], object]]):
        self._pool = ThreadPoolExecutor(max_workers=self.AT_ONCE, thread_name_prefix="tests-side-by-side")
        self._futures: dict[str, Future] = {name: self._pool.submit(job) for name, job in jobs.items()}

    def result(self, name: str):
        return self._futures[name].result()

    def close(self) -> None:
        for future in self._futures.values():
            future.cancel()
        self._pool.shutdown(wait=True)
