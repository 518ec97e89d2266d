"""What a feature's dashboard is made of, gathered in passes over the stored activations (Neuronpedia-style).

    python -m superpos_core.lm.dashboards --acts ACTS --sae SAE_FOLDER      # writes SAE_FOLDER/dashboards.npz

    rows = corpus_sae.flat_rows(acts / "acts_train.npy"); tokens = np.load(acts / "tokens_train.npy")
    stats = feature_stats(sae, rows, row_tokens=tokens[:, 1:].reshape(-1))
    stats.density[i], stats.top_rows[i], stats.top_values[i], stats.histogram[i]
    example_tokens, example_acts = top_examples(stats, sae, rows, tokens)   # each strongest token in its context
    read = output_tokens(sae, loaded.model.get_output_embeddings().weight)

For every latent at once, one chunk of rows at a time (the rows never all sit in memory): how often it fires
(its density), its strongest activations and the rows where they are (a row is a text token: row r is
position r % (CONTEXT - 1) + 1 of window r // (CONTEXT - 1) in ``corpus_activations``' layout), and a histogram of
its non-zero activations on log-spaced bins. ``output_tokens`` reads each latent's decoder direction through the
model's unembedding: the tokens it pushes up and down most, as a logit-lens reading of the direction.
``interval_rows`` draws, in a second pass, a few rows from each band of a latent's range (a quarter of its strongest
and below, ...), so that a dashboard shows what weak firing looks like too. ``save_dashboards`` keeps it all in one
compressed file beside the SAE; ``FeatureDashboards`` reads it back, one feature at a time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from superpos_core.sae.train import SAE

TOP = 20  # strongest activations kept per latent
TOKEN_TOP = 8  # latents kept per token id, for the word search
BINS = np.logspace(-3, 3, 61)  # edges of the activation histogram: 10⁻³ to 10³, 10 bins a decade


@dataclass
class FeatureStats:
    rows: int  # rows (tokens) read
    density: np.ndarray  # (n,) share of rows each latent fires on (> 0)
    top_rows: np.ndarray  # (n, TOP) int64 the rows of its strongest activations, strongest first; -1 where fewer
    top_values: np.ndarray  # (n, TOP) float32 those activations; 0 where fewer
    histogram: np.ndarray  # (n, len(BINS) - 1) int64 its non-zero activations counted on BINS (outside: the end bins)
    # With the rows' tokens given: for each token id met, the latents with the highest mean activation on it.
    token_ids: np.ndarray | None = None  # (U,) int64 the token ids met, ascending
    token_counts: np.ndarray | None = None  # (U,) int64 how many rows each is
    token_latents: np.ndarray | None = None  # (U, TOKEN_TOP) int64 the latents firing most on it, strongest first
    token_means: np.ndarray | None = None  # (U, TOKEN_TOP) float32 their mean activation over its rows (0: none fired)


def _n_latents(sae) -> int:
    return sae.W_enc.shape[1]  # a trained ``SAE`` or a ``PretrainedSAE``: (d_in, n)


@torch.no_grad()
def feature_stats(
    sae: SAE, rows: np.ndarray, top: int = TOP, chunk: int = 8192, row_tokens: np.ndarray | None = None
) -> FeatureStats:
    """Density, strongest activations and activation histogram of every latent of ``sae`` over ``rows`` (N, d_in).

    Args:
        rows: the activations, e.g. a memory-mapped (N, d_in) array (``corpus_sae.flat_rows``), read ``chunk`` at a time.
        row_tokens: (N,) the token id of each row, for the table of the latents firing most on each token id.
    """
    device = sae.W_dec.device
    n = _n_latents(sae)
    if row_tokens is not None:
        row_tokens = np.asarray(row_tokens).reshape(-1)
        if len(row_tokens) != len(rows):
            raise ValueError(f"{len(row_tokens)} row tokens for {len(rows)} rows.")
        token_ids, compact = np.unique(
            row_tokens, return_inverse=True
        )  # (U,), (N,): a row's token's place in token_ids
        compact = torch.as_tensor(compact.reshape(-1), device=device)
        token_sums = torch.zeros(len(token_ids), n, device=device)  # (U, n) summed activations per token id
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
        # 3) The token table: each row's activations added to its token id's sums.
        if row_tokens is not None:
            token_sums.index_add_(0, compact[start : start + len(x)], features)
    best_rows[best_values <= 0] = -1  # a latent that fired fewer than ``top`` times has no more rows
    stats = FeatureStats(
        rows=len(rows),
        density=(fired / max(len(rows), 1)).numpy(),
        top_rows=best_rows.numpy(),
        top_values=best_values.clamp_min(0).numpy(),
        histogram=histogram.reshape(n, -1).cpu().numpy(),
    )
    if row_tokens is not None:
        counts = torch.bincount(compact, minlength=len(token_ids))  # (U,)
        means = token_sums / counts[:, None].clamp_min(1)  # (U, n)
        values, latents = means.topk(min(TOKEN_TOP, n), dim=1)  # (U, TOKEN_TOP)
        stats.token_ids, stats.token_counts = token_ids.astype(np.int64), counts.cpu().numpy()
        stats.token_latents, stats.token_means = latents.cpu().numpy(), values.cpu().numpy()
    return stats


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
    for start in range(0, _n_latents(sae), chunk):
        logits = sae.W_dec[start : start + chunk] @ W_U.T  # (c, vocab)
        up, down = logits.topk(k, dim=1), logits.topk(k, dim=1, largest=False)
        parts.append((up.indices, up.values, down.indices, down.values))
    return OutputTokens(*(torch.cat(column).cpu().numpy() for column in zip(*parts)))


PAD = -1  # a context position beyond its window's text
HALF = 16  # tokens shown either side of an example's token


@torch.no_grad()
def top_examples(
    stats: FeatureStats, sae: SAE, rows: np.ndarray, tokens: np.ndarray, half: int = HALF
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
    return examples_at(stats.top_rows, sae, rows, tokens, half)


@torch.no_grad()
def examples_at(
    chosen_rows: np.ndarray, sae: SAE, rows: np.ndarray, tokens: np.ndarray, half: int = HALF
) -> tuple[np.ndarray, np.ndarray]:
    """Each latent's chosen rows (n, E), -1 for none, in context, as ``top_examples`` returns them: (n, E, 2 half + 1)
    token ids and the latent's activation on every one of them."""
    n, top = chosen_rows.shape
    per_window = tokens.shape[1] - 1  # rows per window (the BOS has none)
    text = tokens[:, 1:]  # (windows, per_window): row r is text[r // per_window, r % per_window]
    width = 2 * half + 1
    example_tokens = np.full((n, top, width), PAD, dtype=np.int64)
    example_acts = np.zeros((n, top, width), dtype=np.float32)
    offsets = np.arange(-half, half + 1)  # (width,)
    centre = getattr(sae, "apply_b_dec_to_input", True)  # a pretrained SAE may read x itself, not x - b_dec
    for latent in range(n):
        chosen = chosen_rows[latent]  # (top,)
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
        f = torch.relu(((x - sae.b_dec) if centre else x) @ sae.W_enc[:, latent] + sae.b_enc[latent])  # (e * width,)
        if (
            getattr(getattr(sae, "config", None), "sparsity", "l1") == "topk"
        ):  # a TopK latent counts only where it is among the row's k largest
            f = f * (sae.encode(x)[:, latent] > 0)
        example_tokens[latent, real] = np.where(inside, ids, PAD)
        example_acts[latent, real] = np.where(inside, f.reshape(len(window), width).cpu().numpy(), 0.0)
    return example_tokens, example_acts


# --- examples from bands of each latent's range: what it does when it fires weakly, not only at its strongest ---

INTERVALS = (0.0, 0.25, 0.5, 0.75, 1.0)  # band edges, as shares of each latent's strongest activation
PER_INTERVAL = 3  # examples drawn at random from each band


@torch.no_grad()
def interval_rows(
    sae: SAE,
    rows: np.ndarray,
    strongest: np.ndarray,
    edges: tuple[float, ...] = INTERVALS,
    per: int = PER_INTERVAL,
    seed: int = 0,
    chunk: int = 8192,
) -> np.ndarray:
    """For each latent and each band of its range, ``per`` rows drawn uniformly at random among those where its
    activation lies in the band: above ``edges[j]`` × its strongest, up to ``edges[j + 1]`` × (the last band's top
    included). One pass over ``rows``; every row in a band is equally likely to be drawn (each gets a random key
    and the largest keys are kept, so the draw needs no count beforehand).

    Args:
        strongest: (n,) each latent's strongest activation over ``rows`` (``stats.top_values[:, 0]``).

    Returns:
        (n, bands, per) int64 rows, -1 where a band has fewer.
    """
    device = sae.W_dec.device
    n, bands = _n_latents(sae), len(edges) - 1
    top = torch.as_tensor(np.asarray(strongest, dtype=np.float32), device=device)  # (n,)
    bounds = torch.as_tensor(edges, dtype=torch.float32, device=device)[:, None] * top  # (bands + 1, n)
    generator = torch.Generator(device=device).manual_seed(seed)
    best_keys = torch.full((bands, n, per), -1.0)  # (bands, n, per)
    best_rows = torch.full((bands, n, per), -1, dtype=torch.long)
    for start in range(0, len(rows), chunk):
        x = torch.as_tensor(np.asarray(rows[start : start + chunk], dtype=np.float32), device=device)  # (b, d_in)
        features = sae.encode(x)  # (b, n)
        keys = torch.rand(features.shape, generator=generator, device=device)  # (b, n)
        k = min(per, len(x))
        for band in range(bands):
            inside = (features > bounds[band]) & (features <= bounds[band + 1])  # (b, n)
            if band == bands - 1:
                inside |= (features > 0) & (features >= bounds[band + 1])  # the strongest itself
            chunk_keys, where = torch.where(inside, keys, -1.0).topk(k, dim=0)  # (k, n)
            merged_keys = torch.cat([best_keys[band], chunk_keys.T.cpu()], dim=1)  # (n, per + k)
            merged_rows = torch.cat([best_rows[band], where.T.cpu() + start], dim=1)
            order = merged_keys.topk(per, dim=1).indices
            best_keys[band], best_rows[band] = merged_keys.gather(1, order), merged_rows.gather(1, order)
    best_rows[best_keys < 0] = -1
    return best_rows.permute(1, 0, 2).numpy()  # (n, bands, per)


# --- the dashboards of a whole SAE, saved beside it and read back ---------------------------------------------

DASHBOARDS_FILE = "dashboards.npz"
STORED_PAD = np.iinfo(np.uint16).max  # PAD as stored: token ids are kept as uint16 (both vocabularies fit)


def save_dashboards(
    folder: Path,
    stats: FeatureStats,
    top: tuple[np.ndarray, np.ndarray],
    intervals: tuple[np.ndarray, np.ndarray],
    read: OutputTokens,
    about: dict,
) -> Path:
    """Write everything a feature's dashboard shows into ``folder/dashboards.npz`` (compressed; activations float16).

    Args:
        top, intervals: (tokens, activations) from ``top_examples`` and from ``examples_at`` of ``interval_rows``
            flattened to (n, bands * per).
        read: ``output_tokens`` of the SAE through the model's unembedding.
        about: what the rows were (model, layer, corpus, tokens read), kept as JSON in the file.
    """

    def ids(tokens: np.ndarray) -> np.ndarray:
        if tokens.max(initial=0) >= STORED_PAD:
            raise ValueError("Token ids above 65,534 do not fit the dashboards' uint16 storage.")
        return np.where(tokens == PAD, STORED_PAD, tokens).astype(np.uint16)

    path = Path(folder) / DASHBOARDS_FILE
    np.savez_compressed(
        path,
        about=np.array(json.dumps(about)),
        rows=np.array(stats.rows),
        density=stats.density.astype(np.float32),
        histogram=stats.histogram.astype(np.int32),
        bins=BINS,
        top_values=stats.top_values.astype(np.float32),
        top_tokens=ids(top[0]),
        top_acts=top[1].astype(np.float16),
        interval_tokens=ids(intervals[0]),
        interval_acts=intervals[1].astype(np.float16),
        intervals=np.asarray(INTERVALS),
        promoted=read.promoted.astype(np.int32),
        promoted_by=read.promoted_by.astype(np.float32),
        suppressed=read.suppressed.astype(np.int32),
        suppressed_by=read.suppressed_by.astype(np.float32),
        token_ids=stats.token_ids.astype(np.int32),
        token_counts=stats.token_counts.astype(np.int32),
        token_latents=stats.token_latents.astype(np.int32),
        token_means=stats.token_means.astype(np.float32),
    )
    return path


@dataclass(frozen=True)
class Example:
    """One context of a feature's dashboard: its token ids and the feature's activation on each."""

    token_ids: list[int]
    activations: list[float]
    position: int  # the token the example was chosen for (its neighbours may fire more: they are other examples)

    @property
    def peak(self) -> int:
        """Where in the context the feature is strongest."""
        return int(np.argmax(self.activations))


class FeatureDashboards:
    """Every feature's dashboard of one SAE, read once from ``dashboards.npz`` (arrays, each feature a slice)."""

    def __init__(self, path: Path) -> None:
        with np.load(path) as stored:
            self.arrays = {name: stored[name] for name in stored.files}
        self.about = json.loads(str(self.arrays.pop("about")))
        self.path = Path(path)

    @property
    def d_sae(self) -> int:
        return len(self.arrays["density"])

    def check(self, feature) -> int:
        """``feature`` as an int, or ValueError naming the valid range."""
        if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)) or not 0 <= feature < self.d_sae:
            raise ValueError(f"Feature {feature!r} does not exist: this SAE has features 0 to {self.d_sae - 1}.")
        return int(feature)

    def _examples(self, tokens: np.ndarray, acts: np.ndarray) -> list[Example]:
        shown = []
        centre = tokens.shape[-1] // 2
        for ids, values in zip(tokens, acts):  # (width,) each
            real = ids != STORED_PAD
            if real[centre] and values[centre] > 0:
                position = int(real[:centre].sum())
                shown.append(Example(ids[real].astype(int).tolist(), values[real].astype(float).tolist(), position))
        return shown

    def top_examples(self, feature: int) -> list[Example]:
        """Its strongest activations over the corpus, strongest first, each in its context."""
        i = self.check(feature)
        return self._examples(self.arrays["top_tokens"][i], self.arrays["top_acts"][i])

    def interval_examples(self, feature: int) -> list[tuple[float, float, list[Example]]]:
        """(low, high, examples) for each band of its range, as shares of its strongest activation, strongest band first."""
        i = self.check(feature)
        edges = self.arrays["intervals"]
        bands = len(edges) - 1
        tokens = self.arrays["interval_tokens"][i].reshape(bands, -1, self.arrays["interval_tokens"].shape[-1])
        acts = self.arrays["interval_acts"][i].reshape(tokens.shape)
        return [
            (float(edges[b]), float(edges[b + 1]), self._examples(tokens[b], acts[b])) for b in reversed(range(bands))
        ]

    def density(self, feature: int) -> float:
        return float(self.arrays["density"][self.check(feature)])

    def histogram(self, feature: int) -> np.ndarray:
        """(bins,) counts of its non-zero activations on ``bins`` (log-spaced edges)."""
        return self.arrays["histogram"][self.check(feature)]

    def logits(self, feature: int) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """(promoted, suppressed): (token id, logit change per unit of activation), the largest changes first."""
        i = self.check(feature)
        a = self.arrays
        up = list(zip(a["promoted"][i].tolist(), a["promoted_by"][i].tolist()))
        down = list(zip(a["suppressed"][i].tolist(), a["suppressed_by"][i].tolist()))
        return up, down

    def features_on_token(self, token_id: int) -> tuple[int, list[tuple[int, float]]]:
        """(rows of this token id in the corpus, [(feature, mean activation over them)] strongest first; [] if unseen)."""
        ids = self.arrays["token_ids"]
        at = int(np.searchsorted(ids, token_id))
        if at == len(ids) or ids[at] != token_id:
            return 0, []
        pairs = zip(self.arrays["token_latents"][at].tolist(), self.arrays["token_means"][at].tolist())
        return int(self.arrays["token_counts"][at]), [(f, v) for f, v in pairs if v > 0]


def build_dashboards(
    sae, acts: Path, unembedding: torch.Tensor, out: Path, about: dict | None = None, log=print
) -> Path:
    """The dashboards of ``sae`` over stored activations (``corpus_activations``' folder ``acts``, its training split),
    saved into ``out`` (``dashboards_from_rows``)."""
    rows = np.load(Path(acts) / "acts_train.npy", mmap_mode="r")
    info = json.loads((Path(acts) / "info.json").read_text()) if (Path(acts) / "info.json").exists() else {}
    tokens = np.load(Path(acts) / "tokens_train.npy")
    return dashboards_from_rows(
        sae, rows.reshape(-1, rows.shape[-1]), tokens, unembedding, out, {**info, **(about or {})}, log
    )


def dashboards_from_rows(
    sae,
    rows: np.ndarray,
    tokens: np.ndarray,
    unembedding: torch.Tensor,
    out: Path,
    about: dict | None = None,
    log=print,
    progress=None,
) -> Path:
    """Every feature's dashboard of ``sae`` over ``rows`` (N, d_in), the text tokens of the BOS-led windows ``tokens``
    (windows, context) in ``corpus_activations``' layout: two passes over the rows (statistics and the token table;
    then the interval draws), each feature's examples in context, its logits; saved into ``out``.

    Args:
        progress: called as ``progress(fraction, desc=...)`` between the stages, if given.
    """
    started = time.perf_counter()
    say = progress or (lambda *a, **k: None)
    say(0.0, desc=f"Dashboards: reading {len(rows):,} tokens")
    stats = feature_stats(sae, rows, row_tokens=tokens[:, 1:].reshape(-1))
    log(f"statistics over {stats.rows:,} rows: {time.perf_counter() - started:.0f} s")
    say(0.4, desc="Dashboards: drawing examples from each feature's weaker bands")
    chosen = interval_rows(sae, rows, stats.top_values[:, 0])  # (n, bands, per)
    log(f"interval draws: {time.perf_counter() - started:.0f} s")
    say(0.75, desc="Dashboards: each feature's examples in context")
    top = top_examples(stats, sae, rows, tokens)
    intervals = examples_at(chosen.reshape(len(chosen), -1), sae, rows, tokens)
    log(f"examples in context: {time.perf_counter() - started:.0f} s")
    Path(out).mkdir(parents=True, exist_ok=True)
    about = {**(about or {}), "rows": stats.rows}
    saved = save_dashboards(out, stats, top, intervals, output_tokens(sae, unembedding), about)
    say(1.0, desc="Dashboards: saved")
    return saved


def main(argv: list[str] | None = None) -> None:
    import argparse

    from superpos_core import lm
    from superpos_core.sae import load_pretrained_sae

    parser = argparse.ArgumentParser(description="Every feature's dashboard of an SAE, over stored activations.")
    parser.add_argument(
        "--acts", type=Path, required=True, help="a folder written by superpos_core.lm.corpus_activations"
    )
    parser.add_argument(
        "--sae", type=Path, required=True, help="the SAE's SAELens folder; dashboards.npz is written there"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="PyTorch threads (default: PyTorch's own)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = json.loads((args.acts / "info.json").read_text())
    sae = load_pretrained_sae(args.sae).to(args.device)
    loaded = lm.load(info["model"], args.device)
    started = time.perf_counter()
    path = build_dashboards(sae, args.acts, loaded.model.get_output_embeddings().weight.detach(), args.sae)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")
    record_in_provenance(path, time.perf_counter() - started)


def record_in_provenance(path: Path, seconds: float) -> None:
    """Name the dashboards file, its sha256 and how it was made in the SAE folder's provenance.json, if there is one."""
    from superpos_core.build_assets import sha256

    provenance_path = Path(path).parent / "provenance.json"
    if not provenance_path.exists():
        return
    provenance = json.loads(provenance_path.read_text())
    with np.load(path) as stored:
        rows = int(stored["rows"])
    provenance["dashboards"] = {
        "file": Path(path).name,
        "sha256": sha256(Path(path)),
        "rows": rows,
        "from": "the training split's stored activations (every row), two passes",
        "seconds": round(seconds, 1),
        "reproduce": "python -m superpos_core.lm.dashboards --acts ACTS --sae SAE_FOLDER",
    }
    provenance_path.write_text(json.dumps(provenance, indent=2) + "\n")


if __name__ == "__main__":
    main()
