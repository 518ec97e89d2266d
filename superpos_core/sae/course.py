"""The course's sparse autoencoder: 16 features trained in a second on the one text the learner typed.

An SAE rewrites an activation vector x (d_in numbers) as a sparse, non-negative code f over more
"features" than dimensions, and reads x back from it:

    f  = ReLU(x W_enc + b_enc)   (n_features,)  mostly zeros
    x' = f W_dec + b_dec         (d_in,)

This is the course's recipe (MSE + L1, Adam, StepLR, full-batch), computed exactly but faster:
``CourseSAEConfig``, ``SparseAutoencoder``, ``train_course_sae``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from superpos_core.rank import pytorch_linear_init
from superpos_core.sae.checks import MAX_SEED, SAEInputError, is_real, whole_number

MAX_FEATURES = 4096  # bounds one request's memory and time, whatever is asked
MAX_EPOCHS = 5000


# --- the course's way: a tiny SAE trained on one text ----------------------------------------------


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
        whole_number("The number of SAE features (n_features)", self.n_features, 1, MAX_FEATURES)
        whole_number("The number of training epochs (epochs)", self.epochs, 1, MAX_EPOCHS)
        whole_number("The learning-rate step size (lr_step_size)", self.lr_step_size, 1, None)
        whole_number("The seed (seed)", self.seed, 0, MAX_SEED)
        if not is_real(self.l1_weight) or self.l1_weight < 0:
            raise SAEInputError(
                f"The sparsity penalty (l1_weight) must be 0 or more; got {self.l1_weight!r}. "
                "0 trains a plain autoencoder; larger values make fewer features fire per token."
            )
        if not is_real(self.learning_rate) or self.learning_rate <= 0:
            raise SAEInputError(
                f"The learning rate (learning_rate) must be above 0; got {self.learning_rate!r}. The course uses 0.001."
            )
        if not is_real(self.lr_gamma) or not 0 < self.lr_gamma <= 1:
            raise SAEInputError(
                f"The learning-rate decay (lr_gamma) must be above 0 and at most 1; got {self.lr_gamma!r}. The course halves it: 0.5."
            )
        return self


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
    ``tests/superpos_core/sae/test_course.py`` checks the two give the same weights.

    Args:
        activations: (T, d_in) activations of T tokens (any float dtype; trained in float32 on
            their device).
        config: the recipe; validated first (``SAEInputError`` names any unusable setting).
        on_epoch: called as ``on_epoch(epoch, epochs, loss)`` every ``report_every`` epochs and
            after the last, e.g. to move a progress bar.
        report_every: how often ``on_epoch`` is called.
    """
    config = config.validated()
    whole_number("report_every", report_every, 1, None)
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
