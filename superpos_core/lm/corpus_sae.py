"""An SAE on a language model's residual stream over the corpus, and the measures it is judged by.

    python -m superpos_core.lm.corpus_activations --corpus corpus/ --layer 15 --out acts/     # the activations
    python -m superpos_core.lm.corpus_sae --acts acts/ --corpus corpus/ --out sae/ [--device cuda]

``stored_rows`` reads the stored activations (``corpus_activations``) as an endless source of random rows for
the general trainer (``sae.train.train_sae``); ``measure`` gives what the SAE is recorded with, on held-out
rows: explained variance about the mean, L0, dead latents (firing on none of them), dense latents (firing
on more than ``DENSE_ABOVE`` of them) and each latent's firing density; ``ce_loss_recovered`` splices the
SAE's reconstruction into the model at its layer and compares the next-token loss with the clean run and
with the layer zeroed.

The recipe is a ReLU SAE with the decoder-norm-weighted L1 (``sae/train.py``'s "l1"): SAELens' standard
architecture, so the saved folder is read by our own loader and by SAELens; a TopK SAE is not in that format. Its
penalty is chosen from a few trained side by side (``PENALTIES``, ``chosen``); dead latents are resampled.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from superpos_core.build_assets import sha256
from superpos_core.lm.corpus_activations import blocks_of
from superpos_core.lm.loading import LoadedLM
from superpos_core.sae.train import SAE, SAETrainConfig, explained_variance, mean_l0, train_saes

DENSE_ABOVE = 0.1  # a latent firing on more than this share of tokens is dense
EVAL_ROWS = 65_536  # held-out rows the SAE is measured on (the first ones, in order)


def flat_rows(acts_path: Path) -> np.ndarray:
    """The stored activations (windows, positions, d_model) as rows (N, d_model), memory-mapped: nothing is read yet."""
    acts = np.load(acts_path, mmap_mode="r")
    return acts.reshape(-1, acts.shape[-1])


def stored_rows(acts_path: Path, seed: int = 0, scale: float = 1.0) -> Callable[[int], torch.Tensor]:
    """``size -> (size, d_model)`` float32 rows drawn at random (with replacement) from stored activations, times ``scale``.

    The rows of a batch are read in file order (sorted), which is what the disk and the page cache do best.
    """
    rows = flat_rows(acts_path)
    rng = np.random.Generator(np.random.PCG64DXSM(seed))

    def draw(size: int) -> torch.Tensor:
        picked = np.sort(rng.integers(0, len(rows), size))
        return torch.from_numpy(rows[picked].astype(np.float32)).mul_(scale)

    return draw


def activation_scale(acts_path: Path, sample: int = 65_536, seed: int = 0) -> float:
    """The factor that gives the rows a mean squared norm of d_model (SAELens' "expected_average_only_in").

    An SAE is trained on the scaled rows so that one penalty means about the same at any layer and for any model
    (SmolLM2's middle layers have norms near 150, GPT-2's near 100); ``fold_scale`` then makes it an SAE of the
    rows as they are.
    """
    rows = flat_rows(acts_path)
    picked = np.sort(np.random.default_rng(seed).integers(0, len(rows), min(sample, len(rows))))
    squared = (rows[picked].astype(np.float64) ** 2).sum(1).mean()
    return float(np.sqrt(rows.shape[1] / squared))


@torch.no_grad()
def fold_scale(sae: SAE, scale: float) -> SAE:
    """Make an SAE trained on rows × ``scale`` into the same SAE of the rows themselves, in place.

    f = ReLU((s x - b_dec) W_enc + b_enc) = ReLU((x - b_dec / s) (s W_enc) + b_enc): the features are unchanged;
    and the reconstruction of x is the scaled one over s, f (W_dec / s) + b_dec / s.
    """
    sae.W_enc.mul_(scale)
    sae.W_dec.div_(scale)
    sae.b_dec.div_(scale)
    return sae


@torch.no_grad()
def measure(sae: SAE, rows: np.ndarray, batch: int = 8192) -> dict:
    """Explained variance (about the rows' mean), L0, dead and dense latents, and each latent's density, on ``rows``.

    Args:
        rows: (N, d_in) activations, e.g. the first ``EVAL_ROWS`` held-out rows.
    """
    device = sae.W_dec.device
    firing = torch.zeros(sae.config.n_latents, dtype=torch.float64)  # (n,) rows each latent fires on
    x_all, reconstruction_all, l0_total = [], [], 0.0
    for start in range(0, len(rows), batch):
        x = torch.as_tensor(np.asarray(rows[start : start + batch], dtype=np.float32), device=device)  # (b, d_in)
        reconstruction, features = sae(x)
        firing += (features > 0).sum(0).double().cpu()
        l0_total += mean_l0(features) * len(x)
        x_all.append(x.cpu())
        reconstruction_all.append(reconstruction.cpu())
    density = (firing / len(rows)).numpy()  # (n,)
    return {
        "rows": len(rows),
        "explained_variance": explained_variance(torch.cat(x_all), torch.cat(reconstruction_all)),
        "l0": l0_total / len(rows),
        "dead": int((density == 0).sum()),
        "dense": int((density > DENSE_ABOVE).sum()),
        "density": density,
    }


@torch.no_grad()
def ce_loss_recovered(loaded: LoadedLM, sae: SAE, layer: int, windows: np.ndarray, batch: int = 8) -> dict:
    """The next-token loss over ``windows`` (W, T) token ids, each led by its BOS: clean, with the SAE's reconstruction
    in place of ``hidden_states[layer]`` at every position but the BOS, and with it zeroed there.

    recovered = (zeroed - spliced) / (zeroed - clean): 1 when the reconstruction loses the model nothing, 0 when it is
    as bad as no layer at all. The BOS keeps its own stream (the SAE never saw it; ``corpus_activations`` drops it).
    The splice is a hook on block ``layer``'s output (``layer`` of 1 or more), removed whatever happens.
    """
    block = blocks_of(loaded.model, loaded.n_layers - 1)[layer - 1]
    replace: list[Callable[[torch.Tensor], torch.Tensor] | None] = [None]

    def splice(_module, _inputs, output):
        if replace[0] is None:
            return output
        hidden = output[0] if isinstance(output, tuple) else output  # (B, T, d_model)
        changed = torch.cat([hidden[:, :1], replace[0](hidden[:, 1:])], dim=1)
        return (changed, *output[1:]) if isinstance(output, tuple) else changed

    def by_sae(hidden: torch.Tensor) -> torch.Tensor:
        shape = hidden.shape
        reconstruction, _ = sae(hidden.reshape(-1, shape[-1]).float().to(sae.W_dec.device))
        return reconstruction.to(hidden.device, hidden.dtype).reshape(shape)

    losses = {"clean": 0.0, "spliced": 0.0, "zeroed": 0.0}
    handle = block.register_forward_hook(splice)
    try:
        for start in range(0, len(windows), batch):
            ids = torch.as_tensor(np.asarray(windows[start : start + batch], dtype=np.int64), device=loaded.device)
            for name, how in (("clean", None), ("spliced", by_sae), ("zeroed", torch.zeros_like)):
                replace[0] = how
                logits = loaded.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()
                # The loss of predicting each text token from what precedes it (the BOS is never predicted).
                loss = torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"
                )
                losses[name] += float(loss)
    finally:
        handle.remove()  # the model is shared with every user of the app
    predicted = len(windows) * (windows.shape[1] - 1)
    losses = {name: total / predicted for name, total in losses.items()}
    gap = losses["zeroed"] - losses["clean"]
    # Undefined (None) where zeroing the layer costs nothing, as in a randomly initialised model.
    return {**losses, "recovered": (losses["zeroed"] - losses["spliced"]) / gap if gap > 0 else None}


RECIPE = dict(
    sparsity="l1",
    steps=1_800,  # about 4.6 passes over 1.6 million tokens at 4,096 rows a step
    batch_size=4096,
    lr=1e-3,
    lr_decay_fraction=0.2,
    resample_every=250,
    dead_window=200,
    resample_until=0.7,
    # SmolLM2's middle layers have rare tokens with norms tens of times the rest: drawn with replacement, resampling
    # gave several dead latents the same outlier token, and they fired together as duplicates (found in a pilot run).
    resample_distinct=True,
    seed=0,
)
PENALTIES = (1.5, 2.5, 4.0)  # trained side by side (on rows scaled to a mean squared norm of d_model); one is kept
MAX_L0 = 64  # the kept SAE is the one with the lowest penalty whose held-out L0 is at most this
# 4 x 576 latents: SAELens keeps all the weights in one file, and a file on a Space must stay under 10 MB without LFS.
# In float16 that allows 10 MB / (2 x 576 x 2 bytes) = 4,340 latents; 8 x 576 would need 10.6 MB.
EXPANSION = 4
STORED_DTYPE = torch.float16


def chosen(measured: list[dict], max_l0: float = MAX_L0) -> int:
    """Which of SAEs trained with increasing penalties to keep: the first (the least penalised, so the best
    reconstruction and the fewest dead latents) whose L0 is at most ``max_l0``; if none is, the sparsest."""
    for i, m in enumerate(measured):
        if m["l0"] <= max_l0:
            return i
    return min(range(len(measured)), key=lambda i: measured[i]["l0"])


@torch.no_grad()
def _as_stored(model_sae: SAE, dtype: torch.dtype) -> SAE:
    """Round the weights to the type they are saved in, in place: the measured SAE is then the file's."""
    for weight in model_sae.weights:
        weight.copy_(weight.to(dtype).float())
    return model_sae


def _manifest(corpus: Path | None) -> dict | None:
    """The corpus's manifest (each source's package, version, licence and token counts), if there is one."""
    path = Path(corpus) / "manifest.json" if corpus else None
    return json.loads(path.read_text()) if path is not None and path.exists() else None


def build(
    acts: Path,
    out: Path,
    corpus: Path | None,
    loaded: LoadedLM | None,
    expansion: int = EXPANSION,
    penalties: tuple[float, ...] = PENALTIES,
    ce_windows: int = 64,
    **changes,
) -> dict:
    """Train one SAE per penalty side by side on ``acts/acts_train.npy``, measure each on held-out rows, keep the one
    ``chosen`` picks (with ``loaded``, its CE loss recovered on ``ce_windows`` held-out windows), and save it in
    SAELens' folder format, float16, with its provenance (every candidate's figures). Returns the provenance."""
    info = json.loads((acts / "info.json").read_text())
    d_model, layer = info["d_model"], info["layer"]
    recipes = [
        SAETrainConfig(d_in=d_model, n_latents=expansion * d_model, **{**RECIPE, **changes, "penalty": float(penalty)})
        for penalty in penalties
    ]
    started = time.perf_counter()

    def progress(step: int, steps: int, metrics: list[dict]) -> None:
        if step % max(1, steps // 40) == 0:
            shown = "  ".join(f"mse {m['mse']:.1f} l0 {m['l0']:.1f}" for m in metrics)
            print(f"step {step}/{steps} ({time.perf_counter() - started:.0f} s): {shown}", flush=True)

    scale = activation_scale(acts / "acts_train.npy", seed=recipes[0].seed)
    results = train_saes(stored_rows(acts / "acts_train.npy", recipes[0].seed, scale), recipes, on_step=progress)
    seconds = time.perf_counter() - started
    held_out = flat_rows(acts / "acts_eval.npy")[:EVAL_ROWS]
    candidates = []
    for result in results:
        fold_scale(result.sae, scale)  # an SAE of the stream as the model makes it: the saved folder needs no scaling
        _as_stored(result.sae, STORED_DTYPE)
        measured = measure(result.sae, held_out)
        candidates.append(
            {"penalty": result.config.penalty, "measured": measured, "resampled": result.history.resampled}
        )
    keep = chosen([c["measured"] for c in candidates])
    kept = results[keep]
    density = candidates[keep]["measured"]["density"]
    for candidate in candidates:
        candidate["measured"] = {k: v for k, v in candidate["measured"].items() if k != "density"}
    folder = kept.sae.save_saelens(
        out,
        f"blocks.{layer}.hook_resid_pre",
        stored_dtype=STORED_DTYPE,
        layer=layer,
        model_name=info["model"],
        prepend_bos=True,
        context_size=info["context"],
    )
    np.save(out / "feature_density.npy", density)
    provenance = {
        "model": info["model"],
        "layer": layer,
        "hook": f"{info['hook']}; SAELens' name for it: blocks.{layer}.hook_resid_pre",
        "data": {"activations": info, "corpus": _manifest(corpus)},
        "recipe": {k: v for k, v in asdict(kept.config).items() if k != "device"},
        "stored_dtype": str(STORED_DTYPE).removeprefix("torch."),
        "activation_scale": {
            "factor": scale,
            "why": "trained on the stream times this factor (mean squared norm d_model), then folded into the weights",
        },
        "held_out": candidates[keep]["measured"],
        "candidates": candidates,
        "choice": f"the lowest penalty of {list(penalties)} whose held-out L0 is at most {MAX_L0} (else the sparsest)",
        "resampled": kept.history.resampled,
        "seconds": round(seconds, 1),
        "sha256": {"sae_weights.safetensors": sha256(Path(folder) / "sae_weights.safetensors")},
        "reproduce": "python -m superpos_core.lm.corpus_sae --acts ACTS --corpus CORPUS --out OUT",
    }
    if loaded is not None:
        windows = np.load(acts / "tokens_eval.npy")[:ce_windows]
        provenance["ce_loss"] = {"windows": len(windows), **ce_loss_recovered(loaded, kept.sae, layer, windows)}
    (Path(folder) / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--acts", type=Path, required=True, help="a folder written by superpos_core.lm.corpus_activations"
    )
    parser.add_argument("--corpus", type=Path, help="the corpus the activations were read from (recorded)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--penalties", type=float, nargs="+", default=list(PENALTIES), help="trained side by side")
    parser.add_argument("--steps", type=int, default=RECIPE["steps"])
    parser.add_argument("--no-ce", action="store_true", help="skip the CE-loss-recovered check (it loads the model)")
    args = parser.parse_args(argv)
    from superpos_core import lm

    info = json.loads((args.acts / "info.json").read_text())
    loaded = None if args.no_ce else lm.load(info["model"], args.device)
    provenance = build(
        args.acts, args.out, args.corpus, loaded, penalties=tuple(args.penalties), steps=args.steps, device=args.device
    )
    print(json.dumps({k: provenance[k] for k in ("held_out", "ce_loss") if k in provenance}, indent=2))


if __name__ == "__main__":
    main()
