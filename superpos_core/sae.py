"""Sparse autoencoders (SAEs) for the language-model tab, two ways.

    python -m superpos_core.sae --layers 8        # download GPT-2 small's layer-8 SAE once, for offline use

An SAE rewrites an activation vector x (d_in numbers) as a sparse, non-negative code f over many
more "features" than dimensions, and reads x back from it:

    f  = ReLU(x W_enc + b_enc)   (d_sae,)  mostly zeros
    x' = f W_dec + b_dec         (d_in,)

If a network stores more features than it has dimensions (superposition), an SAE trained to
reconstruct its activations with few active features at a time can pull them apart again.

1. The course's way: a tiny SAE (16 features) trained in a second on the activations of the one
   text the learner typed: ``CourseSAEConfig``, ``SparseAutoencoder``, ``train_course_sae``.
2. The field's way: SAEs with tens of thousands of features trained on hundreds of millions of
   tokens, published on the Hugging Face hub in SAELens' folder format (``cfg.json`` and
   ``sae_weights.safetensors``): ``load_pretrained_sae``, ``fetch_pretrained_sae``, the catalogue
   ``GPT2_SMALL_RES_JB``, and ``neuronpedia_url`` to look a feature up on Neuronpedia. Such an SAE
   only means what it was trained to mean on inputs like its training data: ``sae_input`` reads a
   text as SAELens fed the SAE (after the BOS, in windows of its context size, centred if the
   model's writing weights were centred).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors import SafetensorError, safe_open
from torch import nn

from superpos_core import lm, serving
from superpos_core.rank import pytorch_linear_init

MAX_FEATURES = 4096  # bounds one request's memory and time, whatever is asked
MAX_EPOCHS = 5000
MAX_SEED = (
    2**63 - 1
)  # torch.Generator.manual_seed takes 64-bit seeds (a larger one overflows); the other tabs use the same bound

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
WEIGHT_NAMES = ("W_enc", "W_dec", "b_enc", "b_dec")


class SAEInputError(ValueError):
    """A setting or input the SAE tools cannot use; the message is meant for the learner."""


class SAELoadError(RuntimeError):
    """A pretrained SAE that cannot be loaded; the message says what is wrong and what to do."""


# --- 1. the course's way: a tiny SAE trained on one text ----------------------------------------


@dataclass(frozen=True)
class CourseSAEConfig:
    """The course's recipe; the defaults are its values."""

    n_features: int = 16  # dictionary size; 16 fills the course's 4×4 grid of learned features
    l1_weight: float = 0.01  # weight of the sparsity penalty, mean |feature activation|
    learning_rate: float = 1e-3  # Adam's, halved every lr_step_size epochs
    lr_step_size: int = 100  # StepLR step_size: epochs between halvings
    lr_gamma: float = 0.5  # StepLR gamma: the factor applied at each step
    epochs: int = 500  # full-batch steps: every epoch sees all the text's tokens at once
    seed: int = 0  # for the initial weights, drawn from a private generator

    def validated(self) -> CourseSAEConfig:
        """Return the config unchanged if every setting is usable, else raise ``SAEInputError``."""
        _whole_number("The number of SAE features (n_features)", self.n_features, 1, MAX_FEATURES)
        _whole_number("The number of training epochs (epochs)", self.epochs, 1, MAX_EPOCHS)
        _whole_number("The learning-rate step size (lr_step_size)", self.lr_step_size, 1, None)
        _whole_number("The seed (seed)", self.seed, 0, MAX_SEED)
        if not _is_real(self.l1_weight) or self.l1_weight < 0:
            raise SAEInputError(
                f"The sparsity penalty (l1_weight) must be 0 or more; got {self.l1_weight!r}. "
                "0 trains a plain autoencoder; larger values make fewer features fire per token."
            )
        if not _is_real(self.learning_rate) or self.learning_rate <= 0:
            raise SAEInputError(
                f"The learning rate (learning_rate) must be above 0; got {self.learning_rate!r}. The course uses 0.001."
            )
        if not _is_real(self.lr_gamma) or not 0 < self.lr_gamma <= 1:
            raise SAEInputError(
                f"The learning-rate decay (lr_gamma) must be above 0 and at most 1; got {self.lr_gamma!r}. The course halves it: 0.5."
            )
        return self


def _is_real(value) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _whole_number(label: str, value, low: int, high: int | None) -> None:
    ok = (
        isinstance(value, (int, np.integer))
        and not isinstance(value, bool)
        and value >= low
        and (high is None or value <= high)
    )
    if not ok:
        bounds = f"from {low:,} to {high:,}" if high is not None else f"of at least {low}"
        raise SAEInputError(f"{label} must be a whole number {bounds}; got {value!r}.")


def _seeded_linear(in_features: int, out_features: int, generator: torch.Generator) -> nn.Linear:
    """An ``nn.Linear`` initialised as PyTorch initialises one, but from ``generator``.

    It is built on the meta device, which allocates nothing and draws nothing from the global RNG,
    then given real parameters. (``nn.utils.skip_init`` does the same but its ``to_empty`` costs
    half a second on first use, longer than the whole training.)
    """
    layer = nn.Linear(in_features, out_features, device="meta")
    layer.weight = nn.Parameter(pytorch_linear_init(out_features, in_features, generator=generator))
    bound = 1 / math.sqrt(in_features)  # nn.Linear's bias init
    layer.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound, generator=generator))
    return layer


class SparseAutoencoder(nn.Module):
    """The course's SAE: Linear(d_in → n_features) + ReLU, then Linear(n_features → d_in).

    The weights are drawn as ``nn.Linear`` draws them, but from a private generator seeded with
    ``seed``: a server shares one process between users, and reseeding the global RNG would make
    one user's run depend on another's.

    Args:
        d_in: size of each activation vector (768 for GPT-2 small's residual stream).
        n_features: number of learned features.
        seed: seed of the initial weights.
    """

    def __init__(self, d_in: int, n_features: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.encoder = _seeded_linear(d_in, n_features, generator)
        self.decoder = _seeded_linear(n_features, d_in, generator)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x))  # (T, d_in) -> (T, n_features)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder(features)  # (T, n_features) -> (T, d_in)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (reconstruction (T, d_in), features (T, n_features)), as the course's model does."""
        features = self.encode(x)
        return self.decode(features), features

    def loss(self, x: torch.Tensor, l1_weight: float) -> torch.Tensor:
        """The course's loss: MSE(reconstruction, x) + l1_weight · mean |features|."""
        reconstruction, features = self(x)
        return nn.functional.mse_loss(reconstruction, x) + l1_weight * features.abs().mean()


@dataclass
class CourseSAEResult:
    """A trained course SAE and what we measure on the text it was trained on."""

    config: CourseSAEConfig
    model: SparseAutoencoder
    loss_history: np.ndarray  # (epochs,) the loss each epoch, before its update (what the course plots)
    mse_history: np.ndarray  # (epochs,) its reconstruction part; mse_history[0] is the untrained error
    final_mse: float  # reconstruction MSE of the trained SAE (after the last update)
    l0: float  # mean number of features active (> 0) per token
    mean_activation: np.ndarray  # (n_features,) each feature's mean activation over the tokens
    feature_acts: np.ndarray  # (T, n_features) every token's code
    encoder_rows: np.ndarray  # (n_features, d_in) what each feature reads: the course's 4×4 grid

    @property
    def mse_before(self) -> float:
        return float(self.mse_history[0])

    @property
    def dead_features(self) -> int:
        """Features that fire on no token of the text."""
        return int((self.feature_acts.max(0) <= 0).sum())

    def summary(self) -> dict:
        """Plain numbers for an API or a table."""
        return {
            "n_features": self.config.n_features,
            "epochs": self.config.epochs,
            "l1_weight": float(self.config.l1_weight),
            "mse_before": round(self.mse_before, 6),
            "final_mse": round(self.final_mse, 6),
            "final_loss": round(float(self.loss_history[-1]), 6),
            "l0": round(self.l0, 4),
            "dead_features": self.dead_features,
        }


def as_activations(activations: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Token activations as a contiguous float32 (T, d_in) tensor on their device, checked for the learner."""
    x = torch.as_tensor(activations).detach()
    if x.ndim != 2:
        raise SAEInputError(
            f"The activations must be a table with one row per token, shape (tokens, d_in); got shape {tuple(x.shape)}."
        )
    if x.shape[0] < 1:
        raise SAEInputError("There are no tokens to train on: type at least one word.")
    if x.shape[1] < 1:
        raise SAEInputError("The activations have no dimensions (d_in is 0).")
    if not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
        raise SAEInputError(f"The activations must be numbers; got dtype {x.dtype}.")
    x = x.to(torch.float32).contiguous()
    if not torch.isfinite(x).all():
        raise SAEInputError("The activations contain NaN or infinite values; the SAE cannot train on them.")
    return x


def train_course_sae(
    activations: np.ndarray | torch.Tensor,
    config: CourseSAEConfig = CourseSAEConfig(),
    on_epoch: Callable[[int, int, float], None] | None = None,
    report_every: int = 10,
) -> CourseSAEResult:
    """Train the course's SAE full-batch on one text's token activations.

    The result is the course's loop (Adam at ``learning_rate``, StepLR, MSE + L1 loss, one step
    per epoch on all tokens) computed exactly, but with the gradients and Adam's update written
    out on one flat parameter buffer instead of autograd and ``torch.optim``. On 64 tokens × 768
    dimensions each epoch is four small matrix products; autograd and the optimiser's per-tensor
    bookkeeping cost more than that, and cutting them makes 500 epochs about 3 times faster.
    ``tests/superpos_core/test_sae.py`` checks the two give the same weights.

    Args:
        activations: (T, d_in) activations of T tokens (any float dtype; trained in float32 on
            their device).
        config: the recipe; validated first (``SAEInputError`` names any unusable setting).
        on_epoch: called as ``on_epoch(epoch, epochs, loss)`` every ``report_every`` epochs and
            after the last, e.g. to move a progress bar.
        report_every: how often ``on_epoch`` is called.
    """
    config = config.validated()
    _whole_number("report_every", report_every, 1, None)
    x = as_activations(activations)  # (T, d_in)
    T, d_in = x.shape
    n = config.n_features
    model = SparseAutoencoder(d_in, n, seed=config.seed).to(x.device)

    # 1) All parameters live in one flat buffer, so each Adam step is a handful of whole-buffer
    #    operations rather than the same operations once per tensor.
    params = [model.encoder.weight, model.encoder.bias, model.decoder.weight, model.decoder.bias]
    sizes = [p.numel() for p in params]
    flat = torch.cat([p.detach().reshape(-1) for p in params])  # (P,)
    grad = torch.zeros_like(flat)  # (P,)
    W_enc, b_enc, W_dec, b_dec = (v.view(p.shape) for v, p in zip(flat.split(sizes), params))
    g_W_enc, g_b_enc, g_W_dec, g_b_dec = (v.view(p.shape) for v, p in zip(grad.split(sizes), params))
    exp_avg, exp_avg_sq, denom = torch.zeros_like(flat), torch.zeros_like(flat), torch.empty_like(flat)
    beta1, beta2, eps = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, as the course used

    # 2) Work tensors allocated once; every epoch writes into them.
    pre = torch.empty(T, n, device=x.device)  # (T, n) encoder pre-activation h
    features = torch.empty(T, n, device=x.device)  # (T, n) f = ReLU(h)
    error = torch.empty(T, d_in, device=x.device)  # (T, d_in) x' - x, then dL/dx'
    d_features = torch.empty(T, n, device=x.device)  # (T, n) dL/df, then dL/dh
    squared_error = torch.empty(config.epochs, device=x.device)  # Σ (x' - x)² per epoch
    feature_sum = torch.empty(config.epochs, device=x.device)  # Σ f per epoch (f ≥ 0, so Σ |f|)
    mse_scale, l1_scale = 1.0 / (T * d_in), config.l1_weight / (T * n)

    def loss_at(epoch: int) -> float:
        return float(squared_error[epoch]) * mse_scale + float(feature_sum[epoch]) * l1_scale

    with torch.no_grad():
        for epoch in range(config.epochs):
            # 3) Forward: the course's model, into preallocated tensors.
            torch.addmm(b_enc, x, W_enc.t(), out=pre)  # (T, n)
            torch.clamp(pre, min=0, out=features)
            torch.addmm(b_dec, features, W_dec.t(), out=error).sub_(x)  # (T, d_in): x' - x
            torch.dot(error.view(-1), error.view(-1), out=squared_error[epoch])
            torch.sum(features, (0, 1), out=feature_sum[epoch])

            # 4) Backward by hand. L = Σ(x' - x)²/(T·d_in) + λ·Σf/(T·n), so
            #    dL/dx' = 2(x' - x)/(T·d_in); dL/dW_dec = (dL/dx')ᵀ f; dL/db_dec = Σ_t dL/dx';
            #    dL/df = (dL/dx') W_dec + λ/(T·n); dL/dh = dL/df where h > 0, else 0 (ReLU, and
            #    autograd's |f|' = sign(0) = 0 at f = 0); dL/dW_enc = (dL/dh)ᵀ x; dL/db_enc = Σ_t dL/dh.
            error.mul_(2 * mse_scale)  # (T, d_in) now dL/dx'
            torch.mm(error.t(), features, out=g_W_dec)  # (d_in, n)
            torch.sum(error, 0, out=g_b_dec)  # (d_in,)
            torch.mm(error, W_dec, out=d_features).add_(l1_scale)  # (T, n) dL/df
            d_features.mul_(pre > 0)  # (T, n) dL/dh
            torch.mm(d_features.t(), x, out=g_W_enc)  # (n, d_in)
            torch.sum(d_features, 0, out=g_b_enc)  # (n,)

            # 5) Adam, exactly as torch.optim.Adam computes it, at StepLR's learning rate for
            #    this epoch (lr · γ^⌊epoch / step_size⌋, the value StepLR would have set).
            step = epoch + 1
            lr = config.learning_rate * config.lr_gamma ** (epoch // config.lr_step_size)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            torch.sqrt(exp_avg_sq, out=denom).div_(math.sqrt(1 - beta2**step)).add_(eps)
            flat.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1**step))

            if on_epoch is not None and (step % report_every == 0 or step == config.epochs):
                on_epoch(step, config.epochs, loss_at(epoch))

        # 6) Hand the trained weights back to the model and measure it on the text.
        for p, v in zip(params, flat.split(sizes)):
            p.copy_(v.view(p.shape))
        reconstruction, codes = model(x)  # (T, d_in), (T, n)
        final_mse = float(nn.functional.mse_loss(reconstruction, x))

    mse_history = (squared_error * mse_scale).cpu().numpy()
    codes_np = codes.cpu().numpy()
    return CourseSAEResult(
        config=config,
        model=model.eval(),
        loss_history=mse_history + (feature_sum * l1_scale).cpu().numpy(),
        mse_history=mse_history,
        final_mse=final_mse,
        l0=float((codes_np > 0).sum(1).mean()),
        mean_activation=codes_np.mean(0),
        feature_acts=codes_np,
        encoder_rows=model.encoder.weight.detach().cpu().numpy().copy(),
    )


# --- 2. the field's way: pretrained SAEs in SAELens' format ----------------------------------------


@dataclass(frozen=True)
class PretrainedRelease:
    """A family of pretrained SAEs published together, one folder per layer (catalogue entry)."""

    name: str  # SAELens' release id
    model_name: str  # the model whose activations they read, as TransformerLens names it
    repo_id: str  # Hugging Face repository
    subfolder_pattern: str  # the folder of one layer's SAE, formatted with layer=
    hook_pattern: str  # the activation it reads, TransformerLens-named, formatted with layer=
    layers: tuple[int, ...]  # layers with an SAE in this release (as catalogued here)
    d_in: int  # activation size
    d_sae: int  # features per SAE
    neuronpedia_pattern: str  # a feature's page, formatted with layer= and index=
    notes: str = ""  # what a learner should know about where the SAEs come from
    # How the SAEs' training data was read, used where a cfg.json is silent (a cfg.json that says otherwise
    # is refused): None leaves it to the file, or to SAELens' default when the file is silent too.
    prepend_bos: bool | None = None  # each training window started with the model's BOS
    center_writing_weights: bool | None = None  # TransformerLens centred the model's writing weights
    context_size: int | None = None  # positions per training window, BOS included

    def subfolder(self, layer: int) -> str:
        self._check_layer(layer)
        return self.subfolder_pattern.format(layer=layer)

    def hook_name(self, layer: int) -> str:
        self._check_layer(layer)
        return self.hook_pattern.format(layer=layer)

    def _check_layer(self, layer: int) -> None:
        if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool) or layer not in self.layers:
            raise SAEInputError(
                f"{self.name} has SAEs for layers {self.layers[0]} to {self.layers[-1]}; got layer {layer!r}."
            )


GPT2_SMALL_RES_JB = PretrainedRelease(
    name="gpt2-small-res-jb",
    model_name="gpt2-small",
    repo_id="jbloom/GPT2-Small-SAEs-Reformatted",
    subfolder_pattern="blocks.{layer}.hook_resid_pre",
    hook_pattern="blocks.{layer}.hook_resid_pre",
    layers=tuple(range(12)),
    d_in=768,
    d_sae=24_576,
    neuronpedia_pattern="https://www.neuronpedia.org/gpt2-small/{layer}-res-jb/{index}",
    notes=(
        "Joseph Bloom's residual-stream SAEs for GPT-2 small: one per layer, each reading the residual "
        "stream entering block L (hook_resid_pre), 24,576 features (32× the 768 dimensions). "
        "About 150 MB of weights per layer."
    ),
    # These cfg.json files (saved in early 2024 by SAELens, then called mats_sae_training) record
    # context_size 128 but not how the model was loaded. SAELens loaded it then with TransformerLens'
    # HookedTransformer.from_pretrained, whose defaults centre the writing weights. Its commit 7c0d1f7
    # (Sept 2024, "fix: centre writing weights defaults") moved training to from_pretrained_no_processing,
    # began saving model_from_pretrained_kwargs in cfg.json, and gave this release (and two other early
    # GPT-2 ones) model_from_pretrained_kwargs {"center_writing_weights": true} in its catalogue
    # (sae_lens/pretrained_saes.yaml, config_overrides), which its loader merges over the file's settings
    # (get_sae_lens_config_from_disk in sae_lens/loading/pretrained_sae_loaders.py). prepend_bos true is
    # SAELens' default for files that leave it out (handle_pre_6_0_config there), stated here as data.
    prepend_bos=True,
    center_writing_weights=True,
    context_size=128,
)
PRETRAINED_RELEASES = {GPT2_SMALL_RES_JB.name: GPT2_SMALL_RES_JB}  # release name -> catalogue entry


SPLIT_ENCODE_WORK = 2**27  # multiply-adds from which ``PretrainedSAE.encode`` uses two threads


def neuronpedia_url(layer: int, index: int, release: PretrainedRelease = GPT2_SMALL_RES_JB) -> str:
    """The Neuronpedia page of feature ``index`` of the layer-``layer`` SAE (top activations, explanations)."""
    release._check_layer(layer)
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or not 0 <= index < release.d_sae:
        raise SAEInputError(f"Feature numbers of {release.name} run from 0 to {release.d_sae - 1:,}; got {index!r}.")
    return release.neuronpedia_pattern.format(layer=int(layer), index=int(index))


class PretrainedSAE(nn.Module):
    """A standard ReLU SAE with SAELens' weight names, for inference.

    The parameters do not require gradients; call ``requires_grad_(True)`` to attribute through it.

    Args:
        W_enc: (d_in, d_sae) encoder weights.
        W_dec: (d_sae, d_in) decoder weights: row i is feature i's direction in activation space.
        b_enc: (d_sae,) encoder bias.
        b_dec: (d_in,) decoder bias.
        hook_name: the activation the SAE reads, TransformerLens-named (``blocks.8.hook_resid_pre``).
        layer: the block that activation belongs to, or None for one outside the blocks.
        apply_b_dec_to_input: whether ``encode`` subtracts ``b_dec`` first (centring x on the
            decoder's bias, as most SAELens SAEs were trained).
        model_name: the model the SAE was trained on, if ``cfg.json`` says.
        prepend_bos: whether each window of its training text started with the model's BOS token.
        context_size: positions per training window, BOS included (None: not recorded).
        center_writing_weights: whether it was trained on TransformerLens' centred residual stream:
            with the model's writing weights centred, every activation has zero mean over d_in.
        source: where it was loaded from, for messages.
        cfg: the whole ``cfg.json``, for anything else it says.
    """

    def __init__(
        self,
        W_enc: torch.Tensor,
        W_dec: torch.Tensor,
        b_enc: torch.Tensor,
        b_dec: torch.Tensor,
        *,
        hook_name: str,
        layer: int | None,
        apply_b_dec_to_input: bool = True,
        model_name: str | None = None,
        prepend_bos: bool = True,
        context_size: int | None = None,
        center_writing_weights: bool = False,
        source: str = "",
        cfg: dict | None = None,
    ) -> None:
        super().__init__()
        # (d_in, d_sae), stored column-major: each half of its columns is then one contiguous block,
        # which is what ``encode`` hands to each of its two threads.
        self.W_enc = nn.Parameter(W_enc.T.contiguous().T, requires_grad=False)
        self.W_dec = nn.Parameter(W_dec, requires_grad=False)  # (d_sae, d_in)
        self.b_enc = nn.Parameter(b_enc, requires_grad=False)  # (d_sae,)
        self.b_dec = nn.Parameter(b_dec, requires_grad=False)  # (d_in,)
        self.hook_name = hook_name
        self.layer = layer
        self.apply_b_dec_to_input = apply_b_dec_to_input
        self.model_name = model_name
        self.prepend_bos = prepend_bos
        self.context_size = context_size
        self.center_writing_weights = center_writing_weights
        self.source = source
        self.cfg = dict(cfg or {})

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU((x - b_dec) W_enc + b_enc), or without ``- b_dec`` if not ``apply_b_dec_to_input``.

        x is cast to the SAE's dtype and device: models often run in half precision, and the
        features should not depend on that.
        """
        x = x.to(device=self.W_enc.device, dtype=self.W_enc.dtype)  # (..., d_in)
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        flat = x.reshape(-1, self.d_in)  # (N, d_in)

        # addmm adds b_enc inside the product and the ReLU reuses its output: for 64 tokens and
        # 24,576 features that saves two passes over a 6 MB result.
        def features(columns: slice) -> torch.Tensor:
            return torch.addmm(self.b_enc[columns], flat, self.W_enc[:, columns]).relu_()  # (N, columns)

        if (
            flat.device.type == "cpu"
            and flat.shape[0] * self.d_in * self.d_sae >= SPLIT_ENCODE_WORK
            and (os.cpu_count() or 1) > 1
        ):
            # A big product (64 tokens × 768 × 24,576 is 1.2 G multiply-adds, ~25 ms on one core) is
            # split into two halves of the features, one per core: ~14 ms. PyTorch's own threads are
            # left at the app's setting, one per request; the matrix product runs without the GIL.
            half = self.d_sae // 2
            halves = [serving.encode_pool().submit(features, part) for part in (slice(0, half), slice(half, None))]
            codes = torch.cat([h.result() for h in halves], dim=1)  # (N, d_sae)
        else:
            codes = features(slice(None))  # (N, d_sae)
        return codes.reshape(*x.shape[:-1], self.d_sae)  # (..., d_sae)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.W_dec + self.b_dec  # (..., d_sae) -> (..., d_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of x (..., d_in)."""
        return self.decode(self.encode(x))


@dataclass(frozen=True)
class _Settings:
    """What we use from a cfg.json, checked."""

    d_in: int
    d_sae: int
    hook_name: str
    layer: int | None
    apply_b_dec_to_input: bool
    model_name: str | None
    prepend_bos: bool
    context_size: int | None
    center_writing_weights: bool


_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def _read_cfg(cfg_path: Path, source: str) -> dict:
    if not cfg_path.is_file():
        raise SAELoadError(
            f"{source} has no {CFG_FILENAME}. A pretrained SAE folder needs {CFG_FILENAME} (its settings) and "
            f"{WEIGHTS_FILENAME} (its weights), as SAELens saves them."
        )
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SAELoadError(f"{CFG_FILENAME} of {source} is not valid JSON ({error}).") from error
    if not isinstance(cfg, dict):
        raise SAELoadError(
            f"{CFG_FILENAME} of {source} should hold a JSON object of settings; it holds a {type(cfg).__name__}."
        )
    return cfg


_SILENT = object()  # a setting a cfg.json does not record


def _recorded(cfg: dict, key: str, default=_SILENT):
    """A cfg.json setting: at the top level, where SAELens saved it before version 6, or in the
    ``metadata`` object, where SAELens 6 saves where an SAE's inputs come from (model, hook, BOS...)."""
    if key in cfg:
        return cfg[key]
    metadata = cfg.get("metadata")
    if isinstance(metadata, dict) and key in metadata:
        return metadata[key]
    return default


def _with_catalogue(where: str, key: str, recorded, release: PretrainedRelease | None):
    """The file's setting; where it is silent, the catalogue's; a catalogue that disagrees with the file is an error."""
    catalogued = None if release is None else getattr(release, key)
    if recorded is _SILENT or recorded is None:
        return catalogued
    if catalogued is not None and recorded != catalogued:
        raise SAELoadError(
            f"{where}: {key} is {recorded!r}, but the catalogue entry {release.name} says {catalogued!r}; which one describes the SAE's training is unclear."
        )
    return recorded


def _settings(cfg: dict, source: str, release: PretrainedRelease | None = None) -> _Settings:
    """Check a cfg.json's settings: the ones we need, and none that would change the maths.

    ``release``, the catalogue entry the SAE belongs to, supplies how its training data was read where the
    file is silent (as SAELens' catalogue does for its older releases).
    """
    where = f"{CFG_FILENAME} of {source}"
    sizes = {}
    for key in ("d_in", "d_sae"):
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            missing = "is missing" if key not in cfg else f"is {value!r}, not a positive whole number"
            raise SAELoadError(f"{where}: {key} {missing}; it is needed to check the weights' shapes.")
        sizes[key] = value

    # Files saved before SAELens 6 call it hook_point (and hook_point_layer); newer ones may leave
    # the layer out altogether, since the hook name already says it.
    hook_name = _recorded(cfg, "hook_name", cfg.get("hook_point"))
    if not isinstance(hook_name, str) or not hook_name:
        raise SAELoadError(
            f"{where}: hook_name (or hook_point) is missing: which activation the SAE reads, e.g. 'blocks.8.hook_resid_pre'."
        )
    match = _BLOCK.match(hook_name)
    named_layer = int(match.group(1)) if match else None
    layer = _recorded(cfg, "hook_layer", cfg.get("hook_point_layer"))
    if layer is None:
        layer = named_layer
    elif not isinstance(layer, int) or isinstance(layer, bool) or (named_layer is not None and layer != named_layer):
        raise SAELoadError(f"{where}: hook_layer {layer!r} does not agree with hook_name {hook_name!r}.")

    # Settings that change what encode must compute. We only compute the standard ReLU SAE, so
    # anything else is refused rather than silently giving wrong features.
    normalize = cfg.get("normalize_activations")
    if normalize not in (None, "none", False):
        meaning = "expected_average_only_in" if normalize is True else normalize  # older files wrote a bool
        raise SAELoadError(
            f"{where}: normalize_activations = {meaning!r} is not supported. Such an SAE expects its input "
            "rescaled by a factor measured on its training data, which is not in the files; only SAEs with "
            "normalize_activations 'none' (or absent) can be used here."
        )
    architecture = cfg.get("architecture", "standard")
    if architecture != "standard":
        raise SAELoadError(
            f"{where}: architecture {architecture!r} is not supported; only the standard ReLU SAE (f = ReLU(x W_enc + b_enc)) is."
        )
    activation = cfg.get("activation_fn", cfg.get("activation_fn_str", "relu"))
    if activation not in (None, "relu"):
        raise SAELoadError(f"{where}: activation function {activation!r} is not supported; only 'relu' is.")
    if cfg.get("finetuning_scaling_factor"):
        raise SAELoadError(
            f"{where}: finetuning_scaling_factor is not supported (it rescales the features after encoding)."
        )
    head = _recorded(cfg, "hook_head_index", cfg.get("hook_point_head_index"))
    if head is not None:
        raise SAELoadError(
            f"{where}: hook_head_index {head!r} is not supported: this SAE reads one attention head's output, not a whole activation."
        )

    apply_b_dec = cfg.get("apply_b_dec_to_input", True)  # SAELens' default for files that leave it out
    if not isinstance(apply_b_dec, bool):
        raise SAELoadError(f"{where}: apply_b_dec_to_input must be true or false; got {apply_b_dec!r}.")
    model_name = _recorded(cfg, "model_name", None)

    # How the training text was read: what sae_input must reproduce.
    prepend_bos = _with_catalogue(where, "prepend_bos", _recorded(cfg, "prepend_bos"), release)
    prepend_bos = True if prepend_bos is None else prepend_bos  # SAELens' default for files that leave it out
    if not isinstance(prepend_bos, bool):
        raise SAELoadError(f"{where}: prepend_bos must be true or false; got {prepend_bos!r}.")
    context_size = _with_catalogue(where, "context_size", _recorded(cfg, "context_size"), release)
    shortest = 2 if prepend_bos else 1  # a window must hold a token of text besides its BOS
    if context_size is not None and (
        not isinstance(context_size, int) or isinstance(context_size, bool) or context_size < shortest
    ):
        raise SAELoadError(
            f"{where}: context_size must be a whole number of at least {shortest} (positions per training window); got {context_size!r}."
        )
    # SAELens loads the model with HookedTransformer.from_pretrained_no_processing(**model_from_pretrained_kwargs)
    # (sae_lens/load_model.py), so kwargs that leave center_writing_weights out mean uncentred weights.
    kwargs = _recorded(cfg, "model_from_pretrained_kwargs")
    if kwargs is not _SILENT and kwargs is not None and not isinstance(kwargs, dict):
        raise SAELoadError(
            f"{where}: model_from_pretrained_kwargs must be an object of keyword arguments; got {kwargs!r}."
        )
    centred = kwargs.get("center_writing_weights", False) if isinstance(kwargs, dict) else _SILENT
    centred = _with_catalogue(where, "center_writing_weights", centred, release)
    centred = False if centred is None else centred
    if not isinstance(centred, bool):
        raise SAELoadError(
            f"{where}: model_from_pretrained_kwargs.center_writing_weights must be true or false; got {centred!r}."
        )
    return _Settings(
        d_in=sizes["d_in"],
        d_sae=sizes["d_sae"],
        hook_name=hook_name,
        layer=layer,
        apply_b_dec_to_input=apply_b_dec,
        model_name=model_name if isinstance(model_name, str) else None,
        prepend_bos=prepend_bos,
        context_size=context_size,
        center_writing_weights=centred,
    )


def _read_weights(weights_path: Path, settings: _Settings, source: str) -> dict[str, torch.Tensor]:
    """The four tensors, shapes checked from the header before the (large) data is read."""
    if not weights_path.is_file():
        raise SAELoadError(f"{source} has no {WEIGHTS_FILENAME}: the SAE's weights are missing.")
    d_in, d_sae = settings.d_in, settings.d_sae
    expected = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
    where = f"{WEIGHTS_FILENAME} of {source}"
    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            names = set(handle.keys())
            missing = [name for name in WEIGHT_NAMES if name not in names]
            if missing:
                raise SAELoadError(
                    f"{where} lacks tensor(s) {', '.join(missing)}; it has {sorted(names)}. A standard SAE needs {', '.join(WEIGHT_NAMES)}."
                )
            problems = []
            for name, shape in expected.items():
                actual = tuple(handle.get_slice(name).get_shape())
                if actual != shape:
                    hint = " (it looks transposed)" if actual == shape[::-1] and len(shape) == 2 else ""
                    problems.append(f"{name} has shape {actual}, expected {shape}{hint}")
            if problems:
                raise SAELoadError(
                    f"{where} does not match d_in={d_in}, d_sae={d_sae} in {CFG_FILENAME}: {'; '.join(problems)}."
                )
            # float32 whatever the file stores (some releases ship float16 or bfloat16): CPU matrix
            # products in half precision are slow or unsupported, and the course computes in float32.
            tensors = {name: handle.get_tensor(name).to(torch.float32).contiguous() for name in WEIGHT_NAMES}
            scale = handle.get_tensor("scaling_factor") if "scaling_factor" in names else None
    except SafetensorError as error:
        raise SAELoadError(f"{where} is not a readable safetensors file ({error}).") from error
    if scale is not None and not torch.all(scale == 1):
        raise SAELoadError(
            f"{where} has a scaling_factor that is not all ones; SAEs with a fine-tuned scaling factor are not supported."
        )
    return tensors


def _load(cfg_path: Path, weights_path: Path, source: str, release: PretrainedRelease | None) -> PretrainedSAE:
    cfg = _read_cfg(cfg_path, source)
    settings = _settings(cfg, source, release)
    tensors = _read_weights(weights_path, settings, source)
    return PretrainedSAE(
        **tensors,
        hook_name=settings.hook_name,
        layer=settings.layer,
        apply_b_dec_to_input=settings.apply_b_dec_to_input,
        model_name=settings.model_name,
        prepend_bos=settings.prepend_bos,
        context_size=settings.context_size,
        center_writing_weights=settings.center_writing_weights,
        source=source,
        cfg=cfg,
    ).eval()


def load_pretrained_sae(folder: str | Path, release: PretrainedRelease | None = None) -> PretrainedSAE:
    """Load an SAE saved in SAELens' format: ``folder/cfg.json`` and ``folder/sae_weights.safetensors``.

    Raises ``SAELoadError`` for a missing file or tensor, a shape that does not match ``d_in`` and
    ``d_sae``, or a setting this loader does not compute (normalised inputs, non-ReLU
    architectures); the message names it.

    Args:
        folder: the folder holding both files.
        release: the catalogue entry it belongs to, if any: it says how the SAE's training text was
            read (BOS, context size, centring) where ``cfg.json`` is silent.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SAELoadError(
            f"There is no folder {folder}: a pretrained SAE is a folder holding {CFG_FILENAME} and {WEIGHTS_FILENAME}."
        )
    return _load(folder / CFG_FILENAME, folder / WEIGHTS_FILENAME, source=str(folder), release=release)


def _why_unavailable(error: Exception) -> str:
    if isinstance(error, LocalEntryNotFoundError):  # before RemoteEntryNotFoundError's relatives
        return "it is not in the local Hugging Face cache and the hub could not be reached (offline?)"
    if isinstance(error, GatedRepoError):
        return "the repository is gated: accept its terms on huggingface.co and log in with `hf auth login`"
    if isinstance(error, RepositoryNotFoundError):
        return "the hub has no such repository (check the name)"
    if isinstance(error, RevisionNotFoundError):
        return "the hub has no such revision of the repository"
    if isinstance(error, RemoteEntryNotFoundError):
        return "the repository has no such file (check the subfolder)"
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__


def fetch_pretrained_sae(
    repo_id: str,
    subfolder: str,
    *,
    local_files_only: bool = False,
    revision: str | None = None,
    release: PretrainedRelease | None = None,
) -> PretrainedSAE:
    """Load a pretrained SAE from the Hugging Face hub, through the ordinary Hugging Face cache.

    The first call downloads ``subfolder/cfg.json`` and ``subfolder/sae_weights.safetensors``;
    later calls find them in the cache (``$HF_HOME``, by default ``~/.cache/huggingface``), also
    offline. Any failure (offline and not cached, no such repository or file, a gated repository)
    becomes ``SAELoadError`` saying what is unavailable and how to get it.

    Args:
        repo_id: the hub repository, e.g. ``GPT2_SMALL_RES_JB.repo_id``.
        subfolder: the SAE's folder in it, e.g. ``GPT2_SMALL_RES_JB.subfolder(8)``.
        local_files_only: look only in the cache. Offline, the hub client otherwise retries for
            about 20 s before giving up; a server that knows it is offline should pass True (or
            set ``HF_HUB_OFFLINE=1``).
        revision: a branch, tag or commit of the repository (default: main).
        release: the catalogue entry it belongs to (see ``load_pretrained_sae``); by default the
            catalogued release of ``repo_id``, if there is one, so that its SAEs are read as trained
            whichever way they are fetched.
    """
    if release is None:
        release = next((entry for entry in PRETRAINED_RELEASES.values() if entry.repo_id == repo_id), None)
    paths = {}
    for filename in (CFG_FILENAME, WEIGHTS_FILENAME):
        try:
            paths[filename] = Path(
                hf_hub_download(
                    repo_id, filename, subfolder=subfolder, revision=revision, local_files_only=local_files_only
                )
            )
        except Exception as error:  # offline, 404, gated, disk full...: all mean "not available"
            raise SAELoadError(
                f"The pretrained SAE {repo_id} / {subfolder} is not available: {filename} could not be fetched "
                f"because {_why_unavailable(error)}. Run it once with internet access, e.g. "
                f"`python -m superpos_core.sae --repo {repo_id} --subfolder {subfolder}`, and the files are kept in "
                f"the Hugging Face cache ({hf_constants.HF_HUB_CACHE}); from then on they load offline."
            ) from error
    return _load(paths[CFG_FILENAME], paths[WEIGHTS_FILENAME], source=f"{repo_id}/{subfolder}", release=release)


def fetch_release_sae(
    layer: int, release: PretrainedRelease = GPT2_SMALL_RES_JB, *, local_files_only: bool = False
) -> PretrainedSAE:
    """The catalogued SAE of one layer, e.g. ``fetch_release_sae(8)`` for GPT-2 small's block 8.

    Args:
        layer: the layer (block) whose SAE to load.
        release: a catalogue entry (default: GPT-2 small's residual-stream SAEs).
        local_files_only: look only in the Hugging Face cache (see ``fetch_pretrained_sae``).
    """
    return fetch_pretrained_sae(
        release.repo_id, release.subfolder(layer), local_files_only=local_files_only, release=release
    )


# --- what a pretrained SAE reads -------------------------------------------------------------------

_RESIDUAL = re.compile(r"^blocks\.(\d+)\.hook_resid_(pre|post)$")
WINDOWS_PER_PASS = 16  # windows read in one batched forward pass: bounds memory for very long token lists


def hidden_state_index(hook_name: str, n_layers: int) -> int:
    """The Hugging Face hidden state a TransformerLens residual-stream hook is, in a model with ``n_layers`` of them.

    ``blocks.L.hook_resid_pre`` is hidden state L (0 is the embeddings) and ``blocks.L.hook_resid_post``
    is L + 1, except after the last block: Hugging Face applies the final norm to its last hidden state.

    Raises ``SAEInputError`` for any other hook, or a block the model does not have.
    """
    match = _RESIDUAL.match(hook_name)
    if match is None:
        raise SAEInputError(
            f"This SAE reads {hook_name!r}; only SAEs of the residual stream (blocks.L.hook_resid_pre or hook_resid_post) can be fed here."
        )
    index = int(match.group(1)) + (match.group(2) == "post")
    if index > n_layers - 2:  # hidden states 0 .. n_layers - 2 are the residual stream as it is
        raise SAEInputError(
            f"This SAE reads {hook_name!r}, which this model's hidden states do not hold: it has {n_layers - 1} blocks, and its last "
            "hidden state has the final norm applied."
        )
    return index


@dataclass(frozen=True)
class SAEInput:
    """What a pretrained SAE is fed for one text (``sae_input``), and how it was read."""

    activations: torch.Tensor  # (T, d_in) float32 on the CPU, one row per token of the text
    hidden_state: int  # the hidden state the SAE's hook is (Hugging Face numbering: 0 = embeddings)
    bos: int | None  # the token each window starts with, None if the SAE was trained without one
    window: int  # positions per window, BOS included: the SAE's context_size, or the model's context if shorter or unrecorded
    windows: int  # how many windows the text took
    centred: bool  # each row had its mean over d_in taken away (the SAE was trained on centred writing weights)
    reused: bool  # taken from the analysis given, without a forward pass of its own


def sae_input(
    model_sae: PretrainedSAE, loaded: lm.LoadedLM, token_ids: Sequence[int], analysis: lm.TextAnalysis | None = None
) -> SAEInput:
    """The activations ``model_sae`` should encode for a text's tokens, read as its training text was.

    SAELens trains an SAE on TransformerLens activations of fixed-length windows of text, and its
    features mean what they mean only on such inputs. Three of the SAE's settings say how:

    1. ``prepend_bos``: every window starts with the model's BOS (``lm.bos_token_id``) at position 0,
       as SAELens puts one at the start of each training window; its row is not returned.
    2. ``context_size``: windows of that many positions, BOS included. A longer text is read in
       consecutive windows, each from position 0 after its own BOS, as SAELens cut its training text;
       positions the SAE never saw in training are never fed to it. (Unrecorded: the model's context.)
    3. ``center_writing_weights``: TransformerLens centred every weight that writes to the residual
       stream (embeddings, attention and MLP outputs) over d_model, so each write, and so the stream,
       has zero mean over d_model. The stream is read only through LayerNorm, which takes the mean away
       anyway, so nothing else changes: the centred stream is the Hugging Face hidden state minus its
       own mean over d_model, position by position. (Exact for LayerNorm models such as GPT-2; models
       with RMSNorm could not have had their weights centred.)

    Args:
        model_sae: a pretrained SAE of the residual stream (see ``hidden_state_index``).
        loaded: the model it reads, from ``lm.load``; its width must be the SAE's d_in.
        token_ids: the text's tokens, without a BOS (as ``TextAnalysis.token_ids``).
        analysis: the analysis of these tokens, if there is one. Its hidden states are reused, saving a
            forward pass, when they are what the SAE reads: the text read after the same BOS, in one window.

    Raises:
        SAEInputError: no tokens, a hook or width the model does not have, or an SAE trained after a BOS
            read with a model that has none.
    """
    ids = [int(t) for t in token_ids]
    if not ids:
        raise SAEInputError("There are no tokens for the SAE to read: type at least one word.")
    if loaded.d_model != model_sae.d_in:
        raise SAEInputError(
            f"This SAE reads {model_sae.d_in}-dimensional activations, and {loaded.title}'s are {loaded.d_model}-dimensional: it belongs to another model."
        )
    index = hidden_state_index(model_sae.hook_name, loaded.n_layers)
    bos = lm.bos_token_id(loaded.tokenizer) if model_sae.prepend_bos else None
    if model_sae.prepend_bos and bos is None:
        raise SAEInputError(
            f"This SAE was trained on text read after a BOS token, and {loaded.title}'s tokenizer has none."
        )
    prefix = [] if bos is None else [bos]
    window = min(model_sae.context_size or loaded.context_length, loaded.context_length)
    if window <= len(prefix):
        raise SAEInputError(
            f"{loaded.title} reads {loaded.context_length} positions at a time: no room for text after the BOS."
        )
    step = window - len(prefix)  # text tokens per window
    chunks = [ids[start : start + step] for start in range(0, len(ids), step)]

    # 1) The analysis already read the text after the same BOS in one pass: those are the SAE's inputs.
    reused = (
        analysis is not None
        and len(chunks) == 1
        and analysis.model == loaded.name
        and analysis.token_ids == ids
        and analysis.bos_id == bos
        and analysis.n_layers == loaded.n_layers
    )
    if reused:
        hidden = analysis.hidden_states[index].clone()  # (T, d_model), a copy: the analysis is shared
    else:
        hidden = _read_windows(loaded, prefix, chunks, index)  # (T, d_model)
    # 2) TransformerLens' centred residual stream, from the uncentred one (see 3. above).
    if model_sae.center_writing_weights:
        hidden = hidden - hidden.mean(dim=-1, keepdim=True)
    return SAEInput(
        hidden.to("cpu", torch.float32).contiguous(),
        index,
        bos,
        window,
        len(chunks),
        model_sae.center_writing_weights,
        reused,
    )


def _read_windows(loaded: lm.LoadedLM, prefix: list[int], chunks: list[list[int]], index: int) -> torch.Tensor:
    """Hidden state ``index`` of ``prefix + chunk`` for every chunk, prefix rows dropped, end to end: (T, d_model).

    Equal-length windows go through the model together; only the last chunk can be shorter, and it is
    read on its own rather than padded, so no window's numbers depend on another's.
    """
    full, rest = (chunks, []) if len(chunks[-1]) == len(chunks[0]) else (chunks[:-1], chunks[-1:])
    groups = [full[i : i + WINDOWS_PER_PASS] for i in range(0, len(full), WINDOWS_PER_PASS)] + ([rest] if rest else [])
    extra = {"logits_to_keep": 1} if loaded.keeps_last_logits else {}
    rows = []
    for group in groups:
        input_ids = torch.tensor([prefix + chunk for chunk in group], device=loaded.device)  # (W, window)
        with torch.inference_mode():
            out = loaded.model(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids), output_hidden_states=True, **extra
            )
        hidden = out.hidden_states[index][:, len(prefix) :]  # (W, window - prefix, d_model)
        rows.append(hidden.reshape(-1, hidden.shape[-1]).to("cpu", torch.float32))  # (W · tokens, d_model)
    return torch.cat(rows)  # (T, d_model)


# --- which features fire ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureHit:
    """One feature among the strongest."""

    index: int  # the feature's number, as Neuronpedia numbers it
    activation: float  # its peak (or mean) over the text, or its value at the token asked about
    token: int  # the token position where it peaks (or the token asked about)


def token_position(token, tokens: int) -> int:
    """``token`` as a position in a text of ``tokens`` tokens (negative counts from the end, as in Python).

    Raises ``SAEInputError`` for a position outside the text, or for anything but a whole number.
    """
    if not isinstance(token, (int, np.integer)) or isinstance(token, bool) or not -tokens <= token < tokens:
        raise SAEInputError(
            f"Token position {token!r} is outside the text, which has {tokens} tokens (0 to {tokens - 1})."
        )
    return int(token) % tokens


def top_features(
    feature_acts: np.ndarray | torch.Tensor, k: int = 10, token: int | None = None, by: str = "max"
) -> list[FeatureHit]:
    """The k features that fire most, on the whole text or on one token, strongest first.

    Over the whole text features are ranked by their **maximum** over tokens by default: SAE
    features are sparse, so the interesting ones fire strongly on one or two tokens (a name, a
    closing bracket) and are 0 elsewhere. Ranking by the mean would bury those under the few
    dense features that fire a little on every token, and make a feature's rank depend on the
    length of the text. ``by="mean"`` is offered for comparison. Features that fire nowhere are
    never listed, so fewer than k may come back.

    Args:
        feature_acts: (T, d_sae) features of every token, e.g. ``sae.encode(acts)``.
        k: how many features at most.
        token: a position (negative counts from the end, as in Python): rank by that token's
            features only. None: rank over the whole text.
        by: "max" or "mean" over tokens, for the whole text.
    """
    acts = torch.as_tensor(feature_acts).detach()
    if acts.ndim != 2 or acts.shape[0] < 1:
        raise SAEInputError(
            f"Feature activations must have shape (tokens, features) with at least one token; got {tuple(acts.shape)}."
        )
    _whole_number("The number of top features (k)", k, 1, None)
    if by not in ("max", "mean"):
        raise SAEInputError(f"Features can be ranked by 'max' or 'mean' over the tokens; got {by!r}.")
    acts = acts.to(torch.float32).cpu()
    T = acts.shape[0]
    if token is not None:
        token = token_position(token, T)
        scores = acts[token]  # (d_sae,)
    elif by == "max":
        scores = acts.amax(0)  # (d_sae,)
    else:
        scores = acts.mean(0)  # (d_sae,)
    values, indices = scores.topk(min(k, scores.numel()))  # (k,), (k,)
    # Where each chosen feature peaks, searched in its own column only: the arg-max of all d_sae
    # columns at once cost ten times the rest of the ranking (3.4 ms for 64 tokens × 24,576).
    positions = [token] * len(indices) if token is not None else acts[:, indices].argmax(0).tolist()
    return [
        FeatureHit(index=int(i), activation=float(v), token=position)
        for v, i, position in zip(values, indices, positions)
        if v > 0
    ]


# --- download once, for offline use ----------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Download SAEs into the Hugging Face cache and check that they load."""
    parser = argparse.ArgumentParser(prog="python -m superpos_core.sae", description=main.__doc__)
    parser.add_argument(
        "--release", default=GPT2_SMALL_RES_JB.name, choices=sorted(PRETRAINED_RELEASES), help="catalogued release"
    )
    parser.add_argument("--layers", type=int, nargs="*", default=[], help="layers of the release to fetch")
    parser.add_argument("--repo", help="any hub repository in SAELens' format (with --subfolder), instead of a release")
    parser.add_argument("--subfolder", help="the SAE's folder in --repo")
    args = parser.parse_args(argv)
    if bool(args.repo) != bool(args.subfolder):
        parser.error("--repo and --subfolder go together")
    release = PRETRAINED_RELEASES[args.release]
    wanted = (
        [(args.repo, args.subfolder)]
        if args.repo
        else [(release.repo_id, release.subfolder(layer)) for layer in args.layers]
    )
    if not wanted:
        parser.error("name --layers (e.g. --layers 8) or --repo and --subfolder")
    for repo_id, subfolder in wanted:
        try:
            sae = fetch_pretrained_sae(repo_id, subfolder)
        except SAELoadError as error:
            print(error, file=sys.stderr)
            return 1
        print(f"{repo_id}/{subfolder}: {sae.hook_name}, d_in {sae.d_in}, d_sae {sae.d_sae:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
