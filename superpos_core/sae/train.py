"""A general SAE trainer, for any activations: the toy model's hidden layer, MNIST's fc1, a language model's stream.

    result = train_sae(activations, SAETrainConfig(d_in=2, n_latents=10, penalty=3e-2, steps=5000))
    result.sae.W_dec   # (n_latents, d_in): row i is latent i's direction

The SAE is the standard one, with SAELens' weight names (so it saves in SAELens' folder format):

    f  = σ((x - b_dec) W_enc + b_enc)   (n_latents,)   σ = ReLU, or ReLU of the k largest (TopK)
    x' = f W_dec + b_dec                (d_in,)

Two ways to make f sparse, chosen in the config:

- ``"l1"``: loss = ‖x - x'‖² + penalty · Σᵢ fᵢ ‖W_dec,i‖. The L1 is weighted by each decoder row's norm
  (Anthropic's April 2024 update to Towards Monosemanticity): an unweighted L1 can be cut for free by
  shrinking f and growing W_dec, so the penalty would buy nothing.
- ``"topk"``: only the k largest pre-activations pass (Gao et al. 2024); the L0 is exactly at most k, and
  the loss is the reconstruction error alone. Decoder rows are kept at unit norm, so that f alone says how
  strongly a latent fires.

Adam with a learning rate held, then decayed linearly to 0 over the last ``lr_decay_fraction`` of the
steps; latents that stay silent are resampled (Towards Monosemanticity): re-initialised towards inputs
the SAE reconstructs badly. Everything random is drawn from one generator seeded with ``seed``, so a run
on the CPU is reproducible and never touches the global RNG (a server shares one process between users).

The gradients are written out (``_fast_step``) and Adam updates one flat buffer (``superpos_core.adam``):
on small SAEs, such as one on a toy model's 2-dimensional hidden layer, autograd's and torch.optim's
per-call overhead was the whole cost of a step. The numbers are autograd's and torch.optim.Adam's, to float
rounding (``tests/superpos_core/sae/test_train.py`` compares them). ``train_saes`` trains several SAEs
that differ only in their penalty side by side, each weight with a leading instance axis: the same number
of calls per step for ten SAEs as for one, which is what makes a penalty sweep one run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from superpos_core.adam import FlatAdam
from superpos_core.sae import formats
from superpos_core.sae.checks import MAX_SEED, SAEInputError, is_real, whole_number

SPARSITIES = ("l1", "topk")


@dataclass(frozen=True)
class SAETrainConfig:
    """One SAE's recipe. Only ``d_in`` and ``n_latents`` have no default."""

    d_in: int  # size of each input vector (the layer's width)
    n_latents: int  # dictionary size: usually several times d_in
    sparsity: str = "l1"  # "l1" (L1 of activations weighted by decoder norms) or "topk"
    penalty: float = 1e-2  # weight of the L1 term, per input vector ("l1" only)
    k: int = 4  # latents allowed to fire per input ("topk" only)
    steps: int = 3000  # optimiser steps, one batch each
    batch_size: int = 256  # input vectors per step
    lr: float = 3e-3  # Adam's learning rate before the decay
    lr_decay_fraction: float = 0.2  # the last share of the steps, over which the rate falls linearly to 0
    resample_every: int = 500  # steps between checks for dead latents (0: never resample)
    dead_window: int = 200  # a latent silent on every batch of this many steps is dead
    resample_until: float = 0.7  # no resampling after this share of the steps: the rest lets the new latents settle
    resample_distinct: bool = False  # each dead latent towards a different input (data with rare, huge outlier rows)
    decoder_init_norm: float = 0.1  # length of each decoder row at the start (W_enc starts as W_decᵀ)
    seed: int = 0  # seed of the initial weights, the batches drawn from a tensor and the resampling
    device: str = "cpu"  # where the SAE trains

    def validated(self) -> SAETrainConfig:
        """Return the config unchanged if every setting is usable, else raise ``SAEInputError``."""
        whole_number("The input size (d_in)", self.d_in, 1, None)
        whole_number("The number of latents (n_latents)", self.n_latents, 1, None)
        whole_number("The number of steps (steps)", self.steps, 1, None)
        whole_number("The batch size (batch_size)", self.batch_size, 1, None)
        whole_number("The resampling interval (resample_every)", self.resample_every, 0, None)
        whole_number("The dead-latent window (dead_window)", self.dead_window, 1, None)
        whole_number("The seed (seed)", self.seed, 0, MAX_SEED)
        if self.sparsity not in SPARSITIES:
            raise SAEInputError(f"The sparsity must be one of {', '.join(SPARSITIES)}; got {self.sparsity!r}.")
        if self.sparsity == "topk":
            whole_number("The number of active latents (k)", self.k, 1, self.n_latents)
        if not is_real(self.penalty) or self.penalty < 0:
            raise SAEInputError(f"The sparsity penalty (penalty) must be 0 or more; got {self.penalty!r}.")
        if not is_real(self.lr) or self.lr <= 0:
            raise SAEInputError(f"The learning rate (lr) must be above 0; got {self.lr!r}.")
        for name in ("lr_decay_fraction", "resample_until"):
            value = getattr(self, name)
            if not is_real(value) or not 0 <= value <= 1:
                raise SAEInputError(f"{name} must be a share of the steps, from 0 to 1; got {value!r}.")
        if not is_real(self.decoder_init_norm) or self.decoder_init_norm <= 0:
            raise SAEInputError(f"decoder_init_norm must be above 0; got {self.decoder_init_norm!r}.")
        return self


class SAE(nn.Module):
    """The standard SAE (ReLU or TopK), with SAELens' weight names; trained by ``train_sae``.

    Args:
        config: the recipe; its d_in, n_latents, sparsity and k set the shapes and the activation.
        generator: draws the initial decoder directions (W_enc starts as their transpose).
    """

    def __init__(self, config: SAETrainConfig, generator: torch.Generator) -> None:
        super().__init__()
        self.config = config
        directions = torch.randn(config.n_latents, config.d_in, generator=generator)  # (n, d_in)
        W_dec = nn.functional.normalize(directions, dim=1) * config.decoder_init_norm
        self.W_dec = nn.Parameter(W_dec)  # (n, d_in): row i is latent i's direction
        self.W_enc = nn.Parameter(W_dec.T.clone())  # (d_in, n)
        self.b_enc = nn.Parameter(torch.zeros(config.n_latents))  # (n,)
        self.b_dec = nn.Parameter(torch.zeros(config.d_in))  # (d_in,)

    @property
    def weights(self) -> tuple[nn.Parameter, ...]:
        """(W_dec, W_enc, b_enc, b_dec): the order the trainer stacks and updates them in."""
        return self.W_dec, self.W_enc, self.b_enc, self.b_dec

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)  # (B, d_in) -> (B, n)
        if self.config.sparsity == "topk":
            values, indices = pre.topk(self.config.k, dim=-1)  # (B, k)
            pre = torch.zeros_like(pre).scatter_(-1, indices, values)  # (B, n), all but the k largest zeroed
        return pre

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.W_dec + self.b_dec  # (B, n) -> (B, d_in)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (reconstruction (B, d_in), features (B, n))."""
        features = self.encode(x)
        return self.decode(features), features

    def save_saelens(self, folder, hook_name: str, stored_dtype: torch.dtype = torch.float32, **reading) -> Path:
        """Save it in SAELens' folder format (``formats.write_saelens``), for ``load_pretrained_sae`` and SAELens.

        Args:
            folder: where to write it.
            hook_name: the activation it read, TransformerLens-named (``blocks.15.hook_resid_post``).
            stored_dtype: the weights' type in the file (``formats.write_saelens``).
            reading: ``SAESettings`` fields saying how its training text was read (prepend_bos, context_size,
                center_writing_weights, model_name, layer); the rest of cfg.json is the recipe.
        """
        if self.config.sparsity != "l1":
            raise SAEInputError("Only a ReLU SAE (sparsity 'l1') is SAELens' standard architecture; a TopK SAE is not.")
        settings = dict(layer=None, model_name=None, prepend_bos=False, context_size=None, center_writing_weights=False)
        settings = formats.SAESettings(
            d_in=self.config.d_in,
            d_sae=self.config.n_latents,
            hook_name=hook_name,
            apply_b_dec_to_input=True,
            **{**settings, **reading},
        )
        recipe = {name: value for name, value in asdict(self.config).items() if name not in ("d_in", "device")}
        return formats.write_saelens(folder, dict(self.state_dict()), settings, stored_dtype, superpos_recipe=recipe)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, reconstruction error, features): per input vector, averaged over the batch."""
        reconstruction, features = self(x)
        mse = (reconstruction - x).pow(2).sum(-1).mean()  # squared error per vector, not per dimension
        if self.config.sparsity == "l1":
            sparsity = (features * self.W_dec.norm(dim=1)).sum(-1).mean()
            return mse + self.config.penalty * sparsity, mse, features
        return mse, mse, features


# --- what a trained SAE is measured by -------------------------------------------------------------


def explained_variance(x: torch.Tensor, reconstruction: torch.Tensor) -> float:
    """1 - Σ‖x - x'‖² / Σ‖x - mean(x)‖²: taken about the mean, so predicting the mean scores 0 and a perfect
    reconstruction 1. (About 0 instead, a large mean activation would make any reconstruction look good.)"""
    x, reconstruction = x.double(), reconstruction.double()  # (N, d_in) each
    spread = (x - x.mean(0)).pow(2).sum()
    return float(1 - (x - reconstruction).pow(2).sum() / spread) if spread > 0 else float("nan")


def mean_l0(features: torch.Tensor) -> float:
    """Latents active (> 0) per input vector, on average over the rows of ``features`` (N, n)."""
    return float((features > 0).sum(-1).double().mean())


def dead_latents(features: torch.Tensor) -> int:
    """Latents that fire on none of the rows of ``features`` (N, n)."""
    return int((features.amax(0) <= 0).sum()) if features.shape[0] else features.shape[1]


# --- training --------------------------------------------------------------------------------------


@dataclass
class SAETrainHistory:
    """What was measured during training, one entry per report (and the resampling events)."""

    step: list[int] = field(default_factory=list)  # the step each report was made after
    loss: list[float] = field(default_factory=list)  # the batch's loss
    mse: list[float] = field(default_factory=list)  # its reconstruction error, per input vector
    l0: list[float] = field(default_factory=list)  # its latents active per input vector
    lr: list[float] = field(default_factory=list)  # the learning rate of that step
    resampled: list[tuple[int, int]] = field(default_factory=list)  # (step, latents resampled) at each resampling


@dataclass
class SAETrainResult:
    """A trained SAE, its recipe and its history."""

    config: SAETrainConfig
    sae: SAE
    history: SAETrainHistory


DataSource = torch.Tensor | np.ndarray | Callable[[int], torch.Tensor]  # a table of rows, or batch_size -> fresh batch


FRESH_CHUNK_NUMBERS = 2**16  # a data source is asked for this many numbers at once when its batches are small


def _batches(source: DataSource, config: SAETrainConfig, generator: torch.Generator) -> Callable[[], torch.Tensor]:
    """A function giving the next (batch_size, d_in) float32 batch on the config's device.

    A data source is asked for several batches at once when a batch is small (up to ``FRESH_CHUNK_NUMBERS``
    numbers: 128 batches of a toy model's 2-dimensional hidden layer), and they are handed out one by one: on a
    toy SAE, drawing the batch was a sixth of a step's time, most of it the source's per-call overhead.
    """
    device = torch.device(config.device)
    if callable(source):
        per_call = max(1, FRESH_CHUNK_NUMBERS // (config.batch_size * config.d_in))  # batches asked for at once
        waiting: list[torch.Tensor] = []

        def fresh() -> torch.Tensor:
            if not waiting:
                rows = torch.as_tensor(source(per_call * config.batch_size)).to(device, torch.float32)
                if rows.ndim != 2 or rows.shape[1] != config.d_in or rows.shape[0] != per_call * config.batch_size:
                    raise SAEInputError(
                        f"The data source gave a batch of shape {tuple(rows.shape)}; expected (rows, {config.d_in}) "
                        f"with the {per_call * config.batch_size} rows asked for."
                    )
                waiting.extend(reversed(rows.split(config.batch_size)))
            return waiting.pop()

        return fresh
    table = torch.as_tensor(source).detach().to(device, torch.float32)
    if table.ndim != 2 or table.shape[1] != config.d_in or table.shape[0] < 1:
        raise SAEInputError(f"The activations must have shape (rows, {config.d_in}); got {tuple(table.shape)}.")
    # Rows drawn with replacement by the run's own generator (on the CPU: reproducible on any device).
    return lambda: table[torch.randint(table.shape[0], (config.batch_size,), generator=generator).to(device)]


def learning_rate(config: SAETrainConfig, step: int) -> float:
    """The rate of step ``step`` (0-based): ``lr``, then falling linearly to 0 over the last ``lr_decay_fraction``."""
    decay_steps = config.lr_decay_fraction * config.steps
    left = config.steps - step
    return config.lr * min(1.0, left / decay_steps) if decay_steps > 0 else config.lr


@torch.no_grad()
def resample_dead_latents(
    sae: SAE,
    dead: torch.Tensor,
    x: torch.Tensor,
    generator: torch.Generator,
    optimizer: torch.optim.Adam | FlatAdam | None = None,
) -> int:
    """Re-initialise the ``dead`` latents (bool (n,)) towards inputs of ``x`` (N, d_in) the SAE reconstructs badly.

    As Towards Monosemanticity does: each dead latent gets an input drawn with probability proportional to
    its squared reconstruction error; its decoder row becomes that input's direction (less b_dec), its
    encoder column the same direction at 0.2 × the mean length of the living latents' columns, its bias 0;
    Adam forgets what it had accumulated for them. Returns how many latents were resampled.

    With ``sae.config.resample_distinct`` the inputs are drawn without replacement (while there are enough): where a
    few rows have errors far above the rest (a language model's rare high-norm tokens), drawing with replacement
    gives many latents the same row, and they then fire together as duplicates.
    """
    chosen = dead.nonzero().flatten()  # (D,)
    if len(chosen) == 0:
        return 0
    reconstruction, _ = sae(x)
    errors = (x - reconstruction).pow(2).sum(-1)  # (N,)
    weights = errors.cpu().double() if errors.sum() > 0 else torch.ones(len(x), dtype=torch.float64)
    distinct = sae.config.resample_distinct and len(chosen) <= int((weights > 0).sum())
    picked = torch.multinomial(weights, len(chosen), replacement=not distinct, generator=generator)  # (D,)
    picked = picked.to(x.device)
    directions = nn.functional.normalize(x[picked] - sae.b_dec, dim=1)  # (D, d_in)
    alive = ~dead
    scale = sae.W_enc[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
    sae.W_dec[chosen] = directions * (sae.W_dec[alive].norm(dim=1).mean() if alive.any() else 1.0)
    sae.W_enc[:, chosen] = directions.T * 0.2 * scale
    sae.b_enc[chosen] = 0
    if optimizer is not None:
        for parameter, rows in ((sae.W_dec, chosen), (sae.b_enc, chosen)):
            for moment in optimizer.state.get(parameter, {}).values():
                if torch.is_tensor(moment) and moment.ndim:
                    moment[rows] = 0
        for moment in optimizer.state.get(sae.W_enc, {}).values():
            if torch.is_tensor(moment) and moment.ndim:
                moment[:, chosen] = 0
    return len(chosen)


_relu_backward = torch.ops.aten.threshold_backward  # (grad, ReLU's output, 0): grad where the output > 0, else 0


@dataclass
class _Stack:
    """Several SAEs of one shape trained side by side: each weight with a leading instance axis, in ``adam.flat``."""

    W_dec: torch.Tensor  # (I, n, d_in)
    W_enc: torch.Tensor  # (I, d_in, n)
    b_enc: torch.Tensor  # (I, n)
    b_dec: torch.Tensor  # (I, d_in)

    @property
    def params(self) -> list[torch.Tensor]:
        return [self.W_dec, self.W_enc, self.b_enc, self.b_dec]


class _InstanceMoments:
    """One instance's view of a stack's Adam moments, keyed by that instance's SAE's parameters, as
    ``torch.optim.Adam.state`` is: what ``resample_dead_latents`` resets for the latents it re-initialises."""

    def __init__(self, sae: SAE, adam: FlatAdam, i: int) -> None:
        self.state = {
            own: {name: moment[i] for name, moment in adam.state[stacked].items()}
            for own, stacked in zip(sae.weights, adam.params)
        }


def _fast_step(config: SAETrainConfig, stack: _Stack, adam: FlatAdam, penalties: torch.Tensor) -> Callable:
    """One training step of every SAE in the stack, gradients written out: ``step(x, lr)`` updates them all on x (B, d_in).

    Each instance's loss is ``SAE.loss``'s with its own penalty; its gradients are what autograd computes for it,
    operation by operation (the same products, batched over the instances), and Adam is ``torch.optim.Adam``'s
    update on one buffer (``FlatAdam``). On a toy model's hidden layer (d_in = 2, 10 latents) a step's cost is its
    number of PyTorch calls, not its arithmetic: about 35 here, Adam included, against autograd's and
    torch.optim's hundred and more, and the same 35 for ten SAEs as for one. With e = x' - x,

        dL/dx'    = 2e / B                                  (I, B, d_in)
        dL/df     = dL/dx' W_decᵀ + λ/B · ‖W_dec,i‖         (I, B, n)   the second term: "l1" only
        dL/dpre   = dL/df where f > 0, else 0               (I, B, n)   ReLU, and TopK's unchosen latents (f = 0)
        dL/dW_dec = fᵀ dL/dx' + (λ/B Σ_B f) W_dec,i/‖W_dec,i‖
        dL/db_dec = Σ_B dL/dx' - Σ_B dL/dpre W_encᵀ         the input is centred on b_dec
        dL/dW_enc = (x - b_dec)ᵀ dL/dpre,  dL/db_enc = Σ_B dL/dpre

    Args:
        penalties: (I,) float32, each instance's L1 weight ("l1" only).

    Returns (features f (I, B, n), which latents fired (I, n), error e (I, B, d_in), decoder norms (I, n)) of the
    batch before the update, for the caller's bookkeeping.
    """
    W_dec, W_enc, b_enc, b_dec = stack.params  # views of adam.flat, outside autograd
    g_W_dec, g_W_enc, g_b_enc, g_b_dec = adam.grads  # views of adam.grad
    # Views made once (each is a PyTorch call): they follow the buffer, which is only written in place.
    W_dec_t, b_enc_row, b_dec_row = W_dec.transpose(1, 2), b_enc[:, None, :], b_dec[:, None, :]
    g_b_dec_column, g_b_enc_column = g_b_dec[:, :, None], g_b_enc[:, :, None]  # (I, d_in, 1), (I, n, 1)
    l1 = config.sparsity == "l1"
    # Constants as 0-dim tensors: a Python number in a tensor operation is wrapped and cast on every call,
    # which costs as much as the operation itself here. The cast gives the same float32, so the same numbers.
    scalars: dict[float, torch.Tensor] = {}

    def scalar(value: float) -> torch.Tensor:
        if value not in scalars:
            scalars[value] = torch.tensor(value, dtype=torch.float32, device=W_dec.device)
        return scalars[value]

    zero, tiny = scalar(0.0), scalar(torch.finfo(torch.float32).tiny)
    per_rows: dict[int, torch.Tensor] = {}  # batch size -> (I, 1) each penalty over B, in float32 as autograd divides

    def step(x: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = x.shape[0]
        # 1) Forward, as SAE.forward, for every instance on the same batch.
        centred = torch.sub(x, b_dec_row)  # (I, B, d_in)
        features = torch.baddbmm(b_enc_row, centred, W_enc).relu_()  # (I, B, n)
        if config.sparsity == "topk":
            values, indices = features.topk(config.k, dim=-1)  # (I, B, k)
            features = torch.zeros_like(features).scatter_(-1, indices, values)  # (I, B, n)
        error = torch.baddbmm(b_dec_row, features, W_dec).sub_(x)  # (I, B, d_in): x' - x
        norms = torch.linalg.vector_norm(W_dec, 2, 2)  # (I, n): Tensor.norm's kernel, without its Python dispatching
        # 2) Backward into adam.grad's views. autograd's factors: 1/B from the mean times 2 from the square
        #    (exact, so 2/B is the same number), and the penalty in float32 divided by B in float32.
        d_rec = error * scalar(2.0 / rows)  # (I, B, d_in) dL/dx'
        torch.bmm(features.transpose(1, 2), d_rec, out=g_W_dec)  # (I, n, d_in)
        torch.sum(d_rec, 1, out=g_b_dec)  # (I, d_in)
        d_features = torch.bmm(d_rec, W_dec_t)  # (I, B, n) dL/df
        totals = torch.sum(features, 1)  # (I, n) each latent's activations summed over the batch
        if l1:
            if rows not in per_rows:
                per_rows[rows] = (penalties / torch.tensor(rows, dtype=torch.float32)).to(W_dec.device)[:, None, None]
            per_row = per_rows[rows]  # (I, 1, 1)
            d_features.addcmul_(per_row, norms[:, None, :])
            # ‖W_dec,i‖'s gradient is W_dec,i / ‖W_dec,i‖, taken as 0 for a zero row (as autograd); such a row
            # divided by any positive number is 0 already, so a floor on the norm stands in for the mask.
            d_norms = totals.div(norms.clamp_min(tiny))[:, :, None].mul_(per_row)  # (I, n, 1) λ/B Σ_B f / ‖W_dec,i‖
            g_W_dec.addcmul_(d_norms, W_dec)
        d_pre = _relu_backward(d_features, features, 0)  # (I, B, n): 0 where f = 0 (ReLU, or not among TopK's k)
        torch.sum(d_pre, 1, out=g_b_enc)  # (I, n)
        torch.bmm(centred.transpose(1, 2), d_pre, out=g_W_enc)  # (I, d_in, n)
        g_b_dec_column.baddbmm_(W_enc, g_b_enc_column, alpha=-1)  # Σ_B dL/dpre W_encᵀ, summed over the batch first
        fired = totals > zero  # (I, n) latents that fired on this batch (f ≥ 0)
        # 3) Adam.
        adam.step(lr)
        return features, fired, error, norms

    return step


def _side_by_side(configs: list[SAETrainConfig]) -> SAETrainConfig:
    """The first config, once every config is checked usable and the same but for its penalty."""
    configs = [c.validated() for c in configs]
    if not configs:
        raise SAEInputError("At least one SAE recipe is needed.")
    first = configs[0]
    for other in configs[1:]:
        if replace(other, penalty=first.penalty) != first:
            raise SAEInputError("SAEs trained side by side may differ only in their penalty.")
    return first


def train_sae(
    source: DataSource,
    config: SAETrainConfig,
    on_step: Callable[[int, int, dict], None] | None = None,
    report_every: int | None = None,
) -> SAETrainResult:
    """Train an SAE on activations.

    Args:
        source: a (rows, d_in) table of activations (batches are drawn from it with replacement), or a
            function ``source(batch_size)`` giving a fresh (batch_size, d_in) batch each call (e.g. new
            samples of a toy model's data).
        config: the recipe; validated first (``SAEInputError`` names any unusable setting).
        on_step: called as ``on_step(step, steps, metrics)`` at each report (``metrics``: loss, mse, l0,
            lr of that step), e.g. to move a progress bar.
        report_every: steps between reports; by default about 50 reports a run.
    """
    report = None if on_step is None else (lambda done, steps, metrics: on_step(done, steps, metrics[0]))
    return train_saes(source, [config], report, report_every)[0]


def train_saes(
    source: DataSource,
    configs: list[SAETrainConfig],
    on_step: Callable[[int, int, list[dict]], None] | None = None,
    report_every: int | None = None,
) -> list[SAETrainResult]:
    """Train several SAEs side by side, in one batched run: one per recipe, the recipes the same but for the penalty.

    Every SAE starts from the same initial weights (drawn once, from the shared seed) and sees the same batches,
    so what differs between them is what the penalty did: a sweep over the penalty in the time of little more
    than one run. Resampling is each SAE's own (its dead latents, drawn in turn from the one generator).

    Args:
        source, report_every: as ``train_sae``'s.
        configs: the recipes (``SAEInputError`` if one is unusable, or if they differ in anything but the penalty).
        on_step: called as ``on_step(step, steps, metrics)`` at each report, ``metrics`` one dict per SAE.
    """
    config = _side_by_side(configs)
    every = report_every if report_every is not None else max(1, config.steps // 50)
    whole_number("report_every", every, 1, None)
    instances = len(configs)
    generator = torch.Generator().manual_seed(config.seed)
    next_batch = _batches(source, config, generator)
    start = SAE(config, generator).to(config.device)  # the initial weights every instance starts from
    first = next_batch()  # (B, d_in)
    with torch.no_grad():
        start.b_dec.copy_(first.mean(0))  # start at the data's centre: the latents then only model what varies
    stack = _Stack(*(p.detach()[None].repeat(instances, *(1,) * p.ndim) for p in start.weights))
    adam = FlatAdam(stack.params)  # every instance's weights now live in adam.flat
    saes = [SAE(c, torch.Generator()).to(config.device).requires_grad_(False) for c in configs]
    for i, sae in enumerate(saes):  # each SAE's weights are its instance's views of the stack, for resampling
        for own, weights in zip(sae.weights, stack.params):
            own.data = weights[i]
    moments = [_InstanceMoments(sae, adam, i) for i, sae in enumerate(saes)]
    penalties = torch.tensor([c.penalty for c in configs], dtype=torch.float32)  # (I,)
    step_with = _fast_step(config, stack, adam, penalties)
    histories = [SAETrainHistory() for _ in configs]
    last_fired = torch.zeros(instances, config.n_latents, dtype=torch.long, device=config.device)  # (I, n)
    recent: list[torch.Tensor] = []  # batches since the last resampling check, to resample towards

    with torch.no_grad():
        for step in range(config.steps):
            x = first if step == 0 else next_batch()  # (B, d_in)
            lr = learning_rate(config, step)
            features, fired, error, norms = step_with(x, lr)
            if config.sparsity == "topk":
                stack.W_dec.div_(stack.W_dec.norm(dim=2, keepdim=True).clamp_min(1e-12))
            done = step + 1
            last_fired.masked_fill_(fired, done)

            # Resampling: latents silent over the whole window, and only while there is time left to train them.
            if config.resample_every:
                recent = (recent + [x])[-8:]  # a few recent batches: enough inputs to choose from
                if done % config.resample_every == 0 and done <= config.resample_until * config.steps:
                    dead = (done - last_fired) >= min(config.dead_window, done)  # (I, n)
                    inputs = torch.cat(recent)
                    for i, sae in enumerate(saes):
                        count = resample_dead_latents(sae, dead[i], inputs, generator, moments[i])
                        if count:
                            histories[i].resampled.append((done, count))
                            last_fired[i, dead[i]] = done  # a fresh latent gets a whole window to start firing

            if done % every == 0 or done == config.steps:
                # Each batch's loss before this step's update, as ``SAE.loss`` computes it.
                mse = error.pow(2).sum(-1).mean(-1)  # (I,)
                sparsity = (features * norms[:, None, :]).sum(-1).mean(-1)  # (I,)
                reports = []
                for i, (c, history) in enumerate(zip(configs, histories)):
                    loss = mse[i] + c.penalty * sparsity[i] if c.sparsity == "l1" else mse[i]
                    metrics = {"loss": float(loss), "mse": float(mse[i]), "l0": mean_l0(features[i]), "lr": lr}
                    history.step.append(done)
                    for name, value in metrics.items():
                        getattr(history, name).append(value)
                    reports.append(metrics)
                if on_step is not None:
                    on_step(done, config.steps, reports)
    for sae in saes:  # each SAE gets storage of its own (they are saved with safetensors, and outlive the stack)
        for own in sae.weights:
            own.data = own.data.clone()
    return [SAETrainResult(c, sae.eval(), history) for c, sae, history in zip(configs, saes, histories)]


def evaluate(sae: SAE, x: torch.Tensor) -> dict:
    """Explained variance (about the mean), L0 and dead latents of ``sae`` on activations ``x`` (N, d_in)."""
    with torch.no_grad():
        x = torch.as_tensor(x).to(sae.W_dec.device, torch.float32)
        reconstruction, features = sae(x)
    return {
        "explained_variance": explained_variance(x, reconstruction),
        "l0": mean_l0(features),
        "dead": dead_latents(features),
    }
