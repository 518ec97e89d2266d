"""What a feature's dashboard is made of, gathered in one pass over the stored activations (Neuronpedia-style).

    rows = corpus_sae.flat_rows(acts / "acts_train.npy"); tokens = np.load(acts / "tokens_train.npy")
    stats = feature_stats(sae, rows)
    stats.density[i], stats.top_rows[i], stats.top_values[i], stats.histogram[i]
    example_tokens, example_acts = top_examples(stats, sae, rows, tokens)   # each strongest token in its context
    read = output_tokens(sae, loaded.model.get_output_embeddings().weight)

For every latent at once, one chunk of rows at a time (the rows never all sit in memory): how often it fires
(its density), its strongest activations and the rows where they are (a row is a text token: row r is
position r % (CONTEXT - 1) + 1 of window r // (CONTEXT - 1) in ``corpus_activations``' layout), and a histogram of
its non-zero activations on log-spaced bins. ``output_tokens`` reads each latent's decoder direction through the
model's unembedding: the tokens it pushes up and down most, as a logit-lens reading of the direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from superpos_core.sae.train import SAE

TOP = 20  # strongest activations kept per latent
BINS = np.logspace(-3, 3, 61)  # edges of the activation histogram: 10⁻³ to 10³, 10 bins a decade


@dataclass
class FeatureStats:
    rows: int  # rows (tokens) read
    density: np.ndarray  # (n,) share of rows each latent fires on (> 0)
    top_rows: np.ndarray  # (n, TOP) int64 the rows of its strongest activations, strongest first; -1 where fewer
    top_values: np.ndarray  # (n, TOP) float32 those activations; 0 where fewer
    histogram: np.ndarray  # (n, len(BINS) - 1) int64 its non-zero activations counted on BINS (outside: the end bins)


@torch.no_grad()
def feature_stats(sae: SAE, rows: np.ndarray, top: int = TOP, chunk: int = 8192) -> FeatureStats:
    """Density, strongest activations and activation histogram of every latent of ``sae`` over ``rows`` (N, d_in).

    Args:
        rows: the activations, e.g. a memory-mapped (N, d_in) array (``corpus_sae.flat_rows``), read ``chunk`` at a time.
    """
    device = sae.W_dec.device
    n = sae.config.n_latents
    fired = torch.zeros(n, dtype=torch.float64)  # (n,)
    best_values = torch.zeros(n, top)  # (n, top)
    best_rows = torch.full((n, top), -1, dtype=torch.long)  # (n, top)
    edges = torch.as_tensor(np.log10(BINS[1:-1]), dtype=torch.float32, device=device)  # inner edges, log10
    histogram = torch.zeros(n * (len(BINS) - 1), dtype=torch.long, device=device)  # (n * bins,) flat
    for start in range(0, len(rows), chunk):
        x = torch.as_tensor(np.asarray(rows[start : start + chunk], dtype=np.float32), device=device)  # (b, d_in)
        features = sae.encode(x)  # (b, n)
        active = features > 0
        fired += active.sum(0).double().cpu()
        # 1) The strongest: this chunk's own best, merged with the best so far.
        k = min(top, len(x))
        values, where = features.topk(k, dim=0)  # (k, n)
        merged_values = torch.cat([best_values, values.T.cpu()], dim=1)  # (n, top + k)
        merged_rows = torch.cat([best_rows, where.T.cpu() + start], dim=1)
        order = merged_values.topk(top, dim=1).indices  # (n, top)
        best_values = merged_values.gather(1, order)
        best_rows = merged_rows.gather(1, order)
        # 2) The histogram: each non-zero activation's bin, counted per latent in one flat bincount.
        latent = active.nonzero()[:, 1]  # (a,)
        bins = torch.bucketize(features[active].log10(), edges)  # (a,) 0..len(BINS)-2
        histogram += torch.bincount(latent * (len(BINS) - 1) + bins, minlength=histogram.numel())
    best_rows[best_values <= 0] = -1  # a latent that fired fewer than ``top`` times has no more rows
    return FeatureStats(
        rows=len(rows),
        density=(fired / max(len(rows), 1)).numpy(),
        top_rows=best_rows.numpy(),
        top_values=best_values.clamp_min(0).numpy(),
        histogram=histogram.reshape(n, -1).cpu().numpy(),
    )


@dataclass
class OutputTokens:
    """Each latent's decoder direction read through the unembedding: the tokens it raises and lowers most."""

    promoted: np.ndarray  # (n, k) token ids, the largest logit change first
    promoted_by: np.ndarray  # (n, k) their logit change per unit of the latent's activation
    suppressed: np.ndarray  # (n, k) token ids, the most negative change first
    suppressed_by: np.ndarray  # (n, k) their (negative) changes


@torch.no_grad()
def output_tokens(sae: SAE, unembedding: torch.Tensor, k: int = 10, chunk: int = 512) -> OutputTokens:
    """The ``k`` tokens each latent's decoder direction raises and lowers most, through the unembedding (a logit lens
    on the direction: what adding it to the stream would do to the logits, were nothing after the layer to change it).

    Args:
        unembedding: (vocab, d_in) the model's output matrix (``model.get_output_embeddings().weight``).
    """
    W_U = unembedding.float().to(sae.W_dec.device)  # (vocab, d_in)
    parts: list[tuple[torch.Tensor, ...]] = []
    for start in range(0, sae.config.n_latents, chunk):
        logits = sae.W_dec[start : start + chunk] @ W_U.T  # (c, vocab)
        up, down = logits.topk(k, dim=1), logits.topk(k, dim=1, largest=False)
        parts.append((up.indices, up.values, down.indices, down.values))
    return OutputTokens(*(torch.cat(column).cpu().numpy() for column in zip(*parts)))


PAD = -1  # a context position beyond its window's text


@torch.no_grad()
def top_examples(
    stats: FeatureStats, sae: SAE, rows: np.ndarray, tokens: np.ndarray, half: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Each latent's strongest activations in context: the ``half`` tokens either side of each, with the latent's
    activation on every one of them.

    Args:
        stats: from ``feature_stats`` over ``rows``.
        rows: (N, d_in) the stored activations, ``corpus_activations``' layout: window by window, the BOS left out.
        tokens: (windows, CONTEXT) the windows' token ids, each BOS first.

    Returns:
        (example tokens, example activations), each (n, TOP, 2 half + 1): the row's token in the middle; token ids
        ``PAD`` and activations 0 beyond the window's text, and for a latent with fewer than TOP examples.
    """
    n, top = stats.top_rows.shape
    per_window = tokens.shape[1] - 1  # rows per window (the BOS has none)
    text = tokens[:, 1:]  # (windows, per_window): row r is text[r // per_window, r % per_window]
    width = 2 * half + 1
    example_tokens = np.full((n, top, width), PAD, dtype=np.int64)
    example_acts = np.zeros((n, top, width), dtype=np.float32)
    offsets = np.arange(-half, half + 1)  # (width,)
    for latent in range(n):
        chosen = stats.top_rows[latent]  # (top,)
        real = chosen >= 0
        if not real.any():
            continue
        window, position = np.divmod(chosen[real], per_window)  # (e,) each
        positions = position[:, None] + offsets  # (e, width)
        inside = (positions >= 0) & (positions < per_window)
        clipped = np.clip(positions, 0, per_window - 1)
        ids = text[window[:, None], clipped]  # (e, width)
        x = torch.as_tensor(np.asarray(rows[(window[:, None] * per_window + clipped).ravel()], dtype=np.float32))
        x = x.to(sae.W_dec.device)  # (e * width, d_in)
        f = torch.relu((x - sae.b_dec) @ sae.W_enc[:, latent] + sae.b_enc[latent])  # (e * width,) this latent only
        if sae.config.sparsity == "topk":  # a TopK latent counts only where it is among the row's k largest
            f = f * (sae.encode(x)[:, latent] > 0)
        example_tokens[latent, real] = np.where(inside, ids, PAD)
        example_acts[latent, real] = np.where(inside, f.reshape(len(window), width).cpu().numpy(), 0.0)
    return example_tokens, example_acts
