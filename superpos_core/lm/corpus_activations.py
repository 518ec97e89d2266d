"""A language model's residual stream over a corpus, stored on disk for training an SAE on it.

    python -m superpos_core.corpus --out corpus/                                        # the text (superpos_core/corpus.py)
    python -m superpos_core.lm.corpus_activations --corpus corpus/ --layer 15 --out acts/ [--device cuda] [--max-tokens N]

The corpus's documents, one split at a time, are tokenised and run together with the end-of-text token between
them, then cut into windows of ``CONTEXT`` positions: the BOS, then ``CONTEXT - 1`` tokens of text. Each window is
read by the model as the app reads a text (``lm.analyse_text``): a BOS first, which takes the attention sink's huge
values, and its row dropped, so every stored row is a text token's. Layers are numbered as there: ``layer`` is
``hidden_states[layer]``, the output of block ``layer``. The forward pass stops at that block (the rest of the model
is never run), in float32 as the app loads the model; rows are stored as float16 (half the disk; an SAE's
reconstruction error is far above float16's rounding).

Written to ``out``: ``tokens_<split>.npy`` (windows, CONTEXT) int32 with each window's BOS, ``acts_<split>.npy``
(windows, CONTEXT - 1, d_model) float16, ``progress.json`` (windows done per split, saved after every batch that is
flushed), and ``info.json`` (model, layer, context, counts). A stopped run started again with the same arguments
goes on from the last flushed batch.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from superpos_core.lm.analysis import check_layer
from superpos_core.lm.loading import LoadedLM
from superpos_core.lm.tokens import bos_token_id

CONTEXT = 256  # positions per window, the BOS included
BATCH = 8  # windows per forward pass (8 x 256 ran about 800 tokens/s through 15 of SmolLM2's 30 blocks on 2 cores)
FLUSH_EVERY = 16  # batches between flushes of the arrays and the progress file


def windows(tokenizer, texts: Iterable[str], context: int = CONTEXT) -> Iterator[list[int]]:
    """BOS + ``context - 1`` tokens each, from the texts run together with the end-of-text token between them.

    The text's tokens are the tokenizer's without special tokens (the BOS is ours, as ``analyse_text`` adds it).
    What is left at the end, short of a whole window, is dropped.
    """
    bos = bos_token_id(tokenizer)
    separator = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else bos
    if bos is None:
        raise ValueError("This tokenizer has neither a BOS nor an end-of-text token to start each window with.")
    pending: list[int] = []
    for text in texts:
        pending += [*tokenizer(text, add_special_tokens=False)["input_ids"], separator]
        while len(pending) >= context - 1:
            yield [bos, *pending[: context - 1]]
            pending = pending[context - 1 :]


def spread(ids: np.ndarray, max_tokens: int) -> np.ndarray:
    """At most ``max_tokens`` text tokens of windows ``ids`` (W, context), each led by its BOS: whole windows spread
    evenly over all of them, in order (the first and the last kept), so that every part of the text keeps its share."""
    keep = min(len(ids), max(1, max_tokens // (ids.shape[1] - 1)))
    return ids[np.linspace(0, len(ids) - 1, keep).round().astype(np.int64)]


class _Reached(Exception):
    """Raised by the hook at the chosen block: the rest of the model need not run."""


def blocks_of(model: nn.Module, n_blocks: int) -> nn.ModuleList:
    """The model's transformer blocks: its first ModuleList of ``n_blocks`` modules (``model.layers`` in Llama,
    ``transformer.h`` in GPT-2)."""
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_blocks:
            return module
    raise ValueError(f"No list of {n_blocks} blocks found in {type(model).__name__}.")


@torch.inference_mode()
def residual_stream(loaded: LoadedLM, input_ids: torch.Tensor, layer: int) -> torch.Tensor:
    """``hidden_states[layer]`` for a batch of windows (B, T), (B, T, d_model) float32, running only the blocks up to it.

    The last layer has the model's final norm applied (transformers' ``hidden_states`` do): it is read from a whole
    forward pass. Every other is the output of block ``layer`` (for 0, what the first block reads), caught by a hook
    that stops the pass there.
    """
    layer = check_layer(layer, loaded.n_layers)
    input_ids = input_ids.to(loaded.device)
    mask = torch.ones_like(input_ids)
    if layer == loaded.n_layers - 1:
        out = loaded.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
        return out.hidden_states[layer].float()
    caught: list[torch.Tensor] = []

    def catch(_module, _inputs, output):
        caught.append(output[0] if isinstance(output, tuple) else output)
        raise _Reached

    def catch_input(_module, inputs, keywords):
        caught.append(inputs[0] if inputs else keywords["hidden_states"])
        raise _Reached

    blocks = blocks_of(loaded.model, loaded.n_layers - 1)
    if layer == 0:  # what the first block reads: the embeddings (with positions added, in GPT-2)
        handle = blocks[0].register_forward_pre_hook(catch_input, with_kwargs=True)
    else:
        handle = blocks[layer - 1].register_forward_hook(catch)
    try:
        loaded.model(input_ids=input_ids, attention_mask=mask)
    except _Reached:
        pass
    finally:
        handle.remove()  # always: the model is shared with every user of the app
    return caught[0].float()


def _open(path: Path, shape: tuple[int, ...], dtype) -> tuple[np.memmap, bool]:
    """An .npy file of ``shape`` to write into, and whether it is the one already there: kept if its shape and type
    match (a resumed run), else made new (and then nothing in it is done yet)."""
    if path.exists():
        existing = np.load(path, mmap_mode="r+")
        if existing.shape == shape and existing.dtype == np.dtype(dtype):
            return existing, True
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape), False


def build(
    loaded: LoadedLM,
    corpus_folder: Path,
    layer: int,
    out: Path,
    max_tokens: int | None = None,
    batch_size: int = BATCH,
    context: int = CONTEXT,
    log=print,
) -> dict:
    """Store ``loaded``'s residual stream at ``layer`` over a built corpus, both splits; resume where a run stopped.

    Args:
        max_tokens: at most this many text tokens of the training split (the held-out split is kept whole), in
            windows spread evenly over it, so that every source keeps its share.

    Returns the ``info.json`` written.
    """
    from superpos_core import corpus  # the corpus format

    out.mkdir(parents=True, exist_ok=True)
    progress_path = out / "progress.json"
    progress = json.loads(progress_path.read_text()) if progress_path.exists() else {}
    info = {
        "model": loaded.name,
        "layer": layer,
        "hook": f"hidden_states[{layer}] (the output of block {layer})",
        "context": context,
        "bos_dropped": True,
        "d_model": loaded.d_model,
        "dtype_stored": "float16",
        "corpus": str(corpus_folder),
        "splits": {},
    }
    for split in ("eval", "train"):  # the small held-out split first: a quick check that it all works
        texts = (row["text"] for row in corpus.documents(corpus_folder, split))
        ids = np.array(list(windows(loaded.tokenizer, texts, context)), dtype=np.int32).reshape(-1, context)
        if split == "train" and max_tokens is not None:
            ids = spread(ids, max_tokens)
        acts, kept = _open(out / f"acts_{split}.npy", (len(ids), context - 1, loaded.d_model), np.float16)
        tokens_path = out / f"tokens_{split}.npy"
        if kept and tokens_path.exists() and not np.array_equal(np.load(tokens_path), ids):
            kept = False  # the same shape, other windows (another corpus or model): start the split again
        np.save(tokens_path, ids)
        done = int(progress.get(split, 0)) if kept else 0
        started, since = time.perf_counter(), done
        for batch, start in enumerate(range(done, len(ids), batch_size)):
            window = torch.from_numpy(ids[start : start + batch_size].astype(np.int64))  # (B, T)
            stream = residual_stream(loaded, window, layer)[:, 1:]  # (B, T - 1, d_model): the BOS row dropped
            stored = stream.cpu().numpy().astype(np.float16)
            if not np.isfinite(stored).all():
                raise ValueError(f"Layer {layer} has values beyond float16's range in windows from {start}.")
            acts[start : start + len(window)] = stored
            done = start + len(window)
            if (batch + 1) % FLUSH_EVERY == 0 or done == len(ids):
                acts.flush()
                progress[split] = done
                progress_path.write_text(json.dumps(progress))
                rate = (done - since) * (context - 1) / max(time.perf_counter() - started, 1e-9)
                log(f"{split}: {done:,}/{len(ids):,} windows, {rate:,.0f} tokens/s")
        info["splits"][split] = {"windows": len(ids), "tokens": len(ids) * (context - 1)}
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a corpus built by python -m superpos_core.corpus")
    parser.add_argument("--layer", type=int, required=True, help="hidden_states index: the output of this block")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the arrays (several GB for millions of tokens)"
    )
    parser.add_argument("--model", default="smollm2-135m-offline", help="catalogue key of the model")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--max-tokens", type=int, help="at most this many training tokens")
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--threads", type=int, help="PyTorch threads (default: PyTorch's own)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from superpos_core import lm

    info = build(lm.load(args.model, args.device), args.corpus, args.layer, args.out, args.max_tokens, args.batch_size)
    print(json.dumps(info["splits"]))


if __name__ == "__main__":
    main()
