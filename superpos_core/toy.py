"""Anthropic's toy model of superposition (Elhage et al., 2022), trained many instances at once.

n sparse features are squeezed through m dimensions and read back out:

    h  = W x              W: (m, n)
    x' = ReLU(Wᵀ h + b)   b: (n,)

Each feature is 0 with probability S (the sparsity) and uniform in [0, 1] otherwise, and the
reconstruction error of feature i is weighted by its importance Iᵢ = rⁱ. Dense features: the model
keeps the m most important and ignores the rest. Sparse features: it packs more than m of them,
in regular shapes (antipodal pairs, a pentagon), because they rarely collide.

Every tensor carries a leading instance axis, so one optimiser step trains a whole batch of models:
several seeds of one setting (we keep the best, as the paper does) or a sweep over sparsities.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from superpos_core.adam import FlatAdam

MAX_FEATURES, MAX_HIDDEN = 64, 16
MAX_STEPS = 20_000  # bounds the work of one request, whatever is asked
MAX_SPARSITY = 0.999


class ToyInputError(ValueError):
    """A control value the toy model cannot use; the message is meant for the learner."""


@dataclass(frozen=True)
class ToyConfig:
    n_features: int = 5
    m_hidden: int = 2
    sparsity: float = 0.0  # probability that a feature is 0
    importance_decay: float = 1.0  # r in Iᵢ = rⁱ; 1 = all features equally important
    steps: int = 1_000
    seed: int = 0
    batch_size: int = 1024
    learning_rate: float = 5e-2  # with a linear warm-down to 0; the paper's constant 1e-3 needs many more steps
    restarts: int = 4  # seeds trained side by side; the lowest-loss one is shown

    def checked(self) -> tuple[ToyConfig, list[str]]:
        """Validate the controls; clamp the ones that merely ask for too much. Returns notes."""
        notes = []
        for name, low, high in (("n_features", 1, MAX_FEATURES), ("m_hidden", 1, MAX_HIDDEN)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not low <= value <= high:
                label = "features n" if name == "n_features" else "hidden dimensions m"
                raise ToyInputError(
                    f"The number of {label} must be a whole number from {low} to {high}; got {value!r}."
                )
        if not (isinstance(self.sparsity, (int, float)) and math.isfinite(self.sparsity) and 0 <= self.sparsity < 1):
            raise ToyInputError(
                f"Sparsity is the chance that a feature is zero, from 0 up to (not including) 1; got {self.sparsity!r}. At 1 there would be no data at all."
            )
        if not (isinstance(self.importance_decay, (int, float)) and 0 < self.importance_decay <= 1):
            raise ToyInputError(
                f"Importance decay r must be above 0 and at most 1 (feature i has importance rⁱ); got {self.importance_decay!r}."
            )
        config = self
        if self.sparsity > MAX_SPARSITY:
            notes.append(
                f"Sparsity {self.sparsity} was lowered to {MAX_SPARSITY}: sparser data would need far longer training."
            )
            config = _replace(config, sparsity=MAX_SPARSITY)
        steps = int(self.steps) if isinstance(self.steps, (int, float)) and math.isfinite(self.steps) else 0
        if steps < 1:
            raise ToyInputError(f"Training steps must be at least 1; got {self.steps!r}.")
        if steps > MAX_STEPS:
            notes.append(f"Training steps were capped at {MAX_STEPS:,} (asked for {steps:,}).")
            steps = MAX_STEPS
        return _replace(config, steps=steps), notes

    @property
    def importance(self) -> torch.Tensor:
        return self.importance_decay ** torch.arange(self.n_features, dtype=torch.float32)  # (n,)


def _replace(config: ToyConfig, **changes) -> ToyConfig:
    values = {**config.__dict__, **changes}
    return ToyConfig(**values)


@dataclass
class ToyResult:
    """One trained toy model (the best of its restarts) and what we measure on it."""

    config: ToyConfig
    W: np.ndarray  # (m, n)
    b: np.ndarray  # (n,)
    loss: float
    notes: list[str] = field(default_factory=list)

    @property
    def feature_norms(self) -> np.ndarray:
        return feature_norms(self.W)

    @property
    def interference(self) -> np.ndarray:
        return interference(self.W)

    @property
    def dimensionality(self) -> np.ndarray:
        return feature_dimensionality(self.W)

    @property
    def features_per_dimension(self) -> float:
        return features_per_dimension(self.W)

    @property
    def superposition(self) -> bool:
        return in_superposition(self.W)

    def summary(self) -> dict:
        """The JSON contract of the app's /toy endpoint.

        ``represented`` counts features with ‖Wᵢ‖ > 0.5 (fully or partly stored); ``superposition`` is decided
        from the geometry (see ``in_superposition``), not from that count.
        """
        c = self.config
        return {
            "n_features": c.n_features,
            "m": c.m_hidden,
            "sparsity": float(c.sparsity),
            "feature_norms": [round(float(v), 5) for v in self.feature_norms],
            "dimensionality": [round(float(v), 5) for v in self.dimensionality],
            "features_per_dimension": round(float(self.features_per_dimension), 5),
            "represented": represented(self.W),
            "superposition": self.superposition,
            "loss": float(self.loss),
        }


class TiedReadout(nn.Module):
    """x' = ReLU(Wᵀh + b), reading back with the encoder's own W (the weights are tied, as in the paper)."""

    def __init__(self, encoder: nn.Linear) -> None:
        super().__init__()
        self._encoder = [encoder]  # in a list: the encoder's W is counted once, under the encoder
        self.bias = nn.Parameter(torch.zeros(encoder.in_features))  # b: (n,)
        self.relu = nn.ReLU()

    def extra_repr(self) -> str:
        m, n = self._encoder[0].weight.shape
        return f"in_features={m}, out_features={n}, bias=True, weight=hidden.weight.T"

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.relu(h @ self._encoder[0].weight + self.bias)  # (B, m) @ (m, n) -> (B, n)


class ToyModel(nn.Module):
    """One trained toy model as a module, to print and inspect; training itself batches many (``train_instances``).

    model = ToyModel.from_result(toy.train(ToyConfig(sparsity=0.99)))
    model(x)  # (B, n) -> (B, n)
    """

    def __init__(self, n_features: int, m_hidden: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_features, m_hidden, bias=False)  # h = W x; its weight is W: (m, n)
        self.readout = TiedReadout(self.hidden)

    @classmethod
    def from_result(cls, result: ToyResult) -> ToyModel:
        model = cls(result.config.n_features, result.config.m_hidden)
        with torch.no_grad():
            model.hidden.weight.copy_(torch.as_tensor(result.W))
            model.readout.bias.copy_(torch.as_tensor(result.b))
        return model.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.hidden(x))  # (B, n) -> (B, m) -> (B, n)


# --- measures of superposition -------------------------------------------------------------------


def feature_norms(W: np.ndarray) -> np.ndarray:
    """‖Wᵢ‖ for each feature (column): about 1 if the feature is represented, 0 if dropped."""
    return np.linalg.norm(W, axis=0)


def _unit_columns(W: np.ndarray) -> np.ndarray:
    norms = feature_norms(W)
    return W / np.where(norms > 1e-12, norms, 1.0)


def interference(W: np.ndarray) -> np.ndarray:
    """Σ_{j≠i} (Ŵᵢ · Wⱼ)²: how much of other features lies along feature i's direction."""
    overlaps = (_unit_columns(W).T @ W) ** 2  # (n, n): (Ŵᵢ · Wⱼ)²
    return overlaps.sum(1) - np.diag(overlaps)


def feature_dimensionality(W: np.ndarray) -> np.ndarray:
    """Dᵢ = ‖Wᵢ‖² / Σⱼ (Ŵᵢ · Wⱼ)²: the share of a dimension feature i gets (1 alone, ½ in a pair, ⅖ in a pentagon)."""
    overlaps = ((_unit_columns(W).T @ W) ** 2).sum(1)  # includes j = i, which contributes ‖Wᵢ‖²
    norms_sq = feature_norms(W) ** 2
    return np.divide(norms_sq, overlaps, out=np.zeros_like(norms_sq), where=overlaps > 1e-12)


def features_per_dimension(W: np.ndarray) -> float:
    """‖W‖²_F / m: roughly how many features each hidden dimension carries.

    The paper reports its inverse, "dimensions per feature" D* = m / ‖W‖²_F. ‖W‖²_F counts the
    represented features (each contributes its squared norm), so this is 1 for a model that keeps m
    features in m dimensions, and a pentagon of unit vectors in 2 dimensions would give 2.5. Trained,
    the pentagon reads 3.35 to 3.40: its kept features grow to a norm of about 1.16, which lets the
    negative bias cut off the interference and still pass each feature at full strength (the
    paper's own setup does the same).
    """
    return float((W**2).sum() / W.shape[0])


SUPERPOSITION_ABOVE = 1.1  # features per dimension that count as "clearly above 1"


def in_superposition(W: np.ndarray, above: float = SUPERPOSITION_ABOVE) -> bool:
    """Whether the model stores more features than it has dimensions, judged from W's geometry.

    Without superposition WᵀW is (close to) a projection of rank at most m: its trace ‖W‖²_F is at
    most m, whichever features it spreads over. Dense, equally important features give exactly that:
    a 2-dimensional slice spread over all five (norms about 0.6, eigenvalues 1, 1, 0, 0, 0), which a
    count of norms above a threshold would call "4 of 5 kept". Only packing more than m features'
    worth into m dimensions, with their interference filtered by the bias, takes ‖W‖²_F / m clearly
    above 1 (measured: dense 1.00 to 1.01; the pentagon 3.4).
    """
    return features_per_dimension(W) > above


# --- training ----------------------------------------------------------------------------------------


@dataclass
class _Batch:
    """Instances trained together: each has its own sparsity, importance and seed."""

    W: torch.Tensor  # (I, m, n)
    b: torch.Tensor  # (I, n)
    sparsity: torch.Tensor  # (I,)
    importance: torch.Tensor  # (I, n)


def _init(configs: list[ToyConfig], generator: torch.Generator, device: torch.device) -> _Batch:
    n, m = configs[0].n_features, configs[0].m_hidden
    W = torch.empty(len(configs), m, n)
    torch.nn.init.xavier_normal_(W.view(-1, n), generator=generator)  # as the paper's code
    return _Batch(
        W=W.to(device).requires_grad_(True),
        b=torch.zeros(len(configs), n, device=device, requires_grad=True),
        sparsity=torch.tensor([c.sparsity for c in configs], device=device),
        importance=torch.stack([c.importance for c in configs]).to(device),
    )


def _sample(batch: _Batch, size: int, generator: torch.Generator) -> torch.Tensor:
    """Features that are 0 with probability S, else uniform in [0, 1], from one uniform draw.

    With u ~ U[0, 1): the feature is present when u >= S, and then (u - S) / (1 - S) is again
    uniform on [0, 1). One random tensor instead of two halves the cost of sampling.
    """
    I, _, n = batch.W.shape
    # Drawn on the CPU whatever the device, so a GPU trains on the very numbers a CPU would.
    u = torch.rand(I, size, n, generator=generator).to(batch.W.device)  # (I, B, n)
    s = batch.sparsity[:, None, None]  # (I, 1, 1)
    return torch.clamp_min_((u - s) / (1 - s), 0.0)


def _per_instance_loss(batch: _Batch, x: torch.Tensor) -> torch.Tensor:
    h = torch.bmm(x, batch.W.transpose(1, 2))  # (I, B, m)
    out = torch.relu(torch.bmm(h, batch.W) + batch.b[:, None, :])  # (I, B, n)
    return (batch.importance[:, None, :] * (x - out) ** 2).mean(1).sum(-1)  # (I,)


_relu_backward = (
    torch.ops.aten.threshold_backward.grad_input
)  # (grad, ReLU's output, 0): grad where the output > 0, else 0


def _fast_step(batch: _Batch, adam: FlatAdam, size: int, generator: torch.Generator) -> Callable[[float], None]:
    """One training step of every instance, gradients by hand: ``step(lr)`` draws a batch and updates W and b.

    The loss is ``_per_instance_loss`` summed over instances. With G = WᵀW (I, n, n), the model is
    z = x G + b, out = ReLU(z), and its gradients, written out, are

        dL/dz = (2I/B) (out - x) where out > 0, else 0     (I, B, n)
        dL/db = Σ_B dL/dz                                   (I, n)
        dL/dW = W (A + Aᵀ),  A = xᵀ dL/dz                   (I, m, n); A: (I, n, n)

    (W is used twice, tied: hᵀ dL/dz = W A, and the path through h = x Wᵀ gives W Aᵀ.) So a step needs
    two products over the batch, not autograd's five, and about 25 PyTorch calls in all instead of autograd's
    and torch.optim's hundred or so: on the toy model's ten weights a call costs far more than its arithmetic,
    so the number of calls sets the speed. The batch is held feature-major, (I, n, B), so that the products
    and the per-feature broadcasts run along the long batch axis (with n = 5 innermost they were several
    times slower). Going through G sums in another order than autograd does, so the numbers agree with it
    to float rounding, not bit for bit (``tests/superpos_core/test_toy.py``). Work tensors are allocated once.
    """
    I, m, n = batch.W.shape
    W, b = batch.W, batch.b  # views of adam.flat: updating the buffer updates them
    g_W, g_b = adam.grads  # (I, m, n), (I, n): views of adam.grad
    device = W.device
    u = torch.empty(I, size, n)  # (I, B, n) the uniform draw, on the CPU (as ``_sample``), then the batch x
    on_device = torch.empty(I, size, n, device=device) if device.type != "cpu" else u  # (I, B, n) x on the device
    X = torch.empty(I, n, size, device=device)  # (I, n, B) xᵀ, the batch feature-major
    G = torch.empty(I, n, n, device=device)  # (I, n, n) WᵀW, symmetric
    Z = torch.empty(I, n, size, device=device)  # (I, n, B) zᵀ, then ReLU(z)ᵀ
    D = torch.empty(I, n, size, device=device)  # (I, n, B) (dL/dout)ᵀ, then (dL/dz)ᵀ
    A = torch.empty(I, n, n, device=device)  # (I, n, n) xᵀ dL/dz
    A_sym = torch.empty(I, n, n, device=device)  # (I, n, n) A + Aᵀ
    s = batch.sparsity[:, None, None].cpu()  # (I, 1, 1)
    keep = 1 - s  # (I, 1, 1)
    # autograd's dL/dout is -(I · (1/B)) · (2 (x - out)); 2/B and the sign are exact, so this is the same number.
    coefficient = (batch.importance * (2.0 / size))[:, :, None]  # (I, n, 1)
    # Views made once (each is a PyTorch call): they follow their tensors, which are only ever written in place.
    Wt, xT, Dt, At = W.transpose(1, 2), on_device.transpose(1, 2), D.transpose(1, 2), A.transpose(1, 2)
    b_column = b[:, :, None]  # (I, n, 1)

    def step(lr: float) -> None:
        # 1) The batch, as ``_sample`` draws it (same generator calls, same arithmetic), then feature-major.
        torch.rand(I, size, n, generator=generator, out=u)
        u.sub_(s).div_(keep).clamp_min_(0.0)  # (I, B, n)
        if on_device is not u:
            on_device.copy_(u)
        X.copy_(xT)  # (I, n, B)
        # 2) Forward: zᵀ = G xᵀ + b (G is symmetric).
        torch.bmm(Wt, W, out=G)  # (I, n, n)
        torch.bmm(G, X, out=Z).add_(b_column).relu_()  # (I, n, B)
        # 3) Backward: dL/dz, then each parameter's gradient into its view of adam.grad.
        torch.sub(Z, X, out=D).mul_(coefficient)
        _relu_backward(D, Z, 0, grad_input=D)  # no gradient where ReLU output 0 (autograd's own op), in place
        torch.sum(D, 2, out=g_b)  # (I, n)
        torch.bmm(X, Dt, out=A)  # (I, n, n)
        torch.add(A, At, out=A_sym)
        torch.bmm(W, A_sym, out=g_W)  # (I, m, n)
        # 4) Adam on the one buffer holding every instance's W and b.
        adam.step(lr)

    return step


def train_instances(
    configs: list[ToyConfig],
    on_step: Callable[[int, int], None] | None = None,
    report_every: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train one toy model per config, all in one batched tensor.

    All configs must share n, m, steps, batch size, learning rate and seed; sparsity and
    importance may differ. Returns W (I, m, n), b (I, n) and each instance's final loss (I,),
    the loss measured on a fresh batch with the final weights. ``on_step(done, total)`` is called
    every ``report_every`` steps (by default about 50 times a run, so that a progress bar moves
    however few steps are asked) and after the last.

    The maths is Adam (``torch.optim.Adam``'s defaults) on ``_per_instance_loss`` summed over the
    instances, with gradients and update written out by hand (``_fast_step``, ``FlatAdam``);
    ``tests/superpos_core/test_toy.py`` checks it against autograd and ``torch.optim.Adam``.
    """
    first = configs[0]
    report_every = report_every or max(1, first.steps // 50)
    generator = torch.Generator().manual_seed(first.seed)
    batch = _init(configs, generator, torch.device(device))
    batch.W.requires_grad_(False)
    batch.b.requires_grad_(False)
    adam = FlatAdam([batch.W, batch.b])  # batch.W and batch.b now live in adam.flat
    step = _fast_step(batch, adam, first.batch_size, generator)
    for k in range(first.steps):
        # Linear warm-down to 0: big steps early, then settle. Converges in a fraction of the steps a
        # constant 1e-3 needs, which is what makes a live demo possible. (The rate LambdaLR would set.)
        step(first.learning_rate * (1 - k / first.steps))
        if on_step and ((k + 1) % report_every == 0 or k + 1 == first.steps):
            on_step(k + 1, first.steps)
    with torch.no_grad():
        final = _per_instance_loss(batch, _sample(batch, 8 * first.batch_size, generator))
    return batch.W.cpu().numpy().copy(), batch.b.cpu().numpy().copy(), final.cpu().numpy()


def represented(W: np.ndarray, threshold: float = 0.5) -> int:
    """How many features the model keeps: columns with norm above ``threshold`` (about 1 when kept)."""
    return int((feature_norms(W) > threshold).sum())


def train(
    config: ToyConfig, on_step: Callable[[int, int], None] | None = None, device: str | torch.device = "cpu"
) -> ToyResult:
    """Train ``config.restarts`` seeds of one setting side by side; keep the lowest loss."""
    config, notes = config.checked()
    W, b, loss = train_instances([config] * config.restarts, on_step, device=device)
    best = int(np.argmin(loss))
    return ToyResult(config, W[best], b[best], float(loss[best]), notes)


def sparsity_grid(points: int = 20, densest: float = 1.0, sparsest: float = 0.01) -> np.ndarray:
    """Sparsities whose feature probability 1 - S is log-spaced from ``densest`` to ``sparsest``."""
    return 1.0 - np.geomspace(densest, sparsest, points)


def sweep(
    config: ToyConfig,
    sparsities: np.ndarray | None = None,
    on_step=None,
    restarts: int = 2,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
) -> list[ToyResult]:
    """One batched training run over many sparsities (and ``restarts`` seeds of each).

    Fewer restarts and a smaller batch than ``train``: the sweep is about the trend across
    sparsities, and this keeps 20 points of n=20, m=5 to a few seconds on two cores.
    """
    config, notes = config.checked()
    config = _replace(config, restarts=restarts, batch_size=batch_size)
    sparsities = sparsity_grid() if sparsities is None else np.asarray(sparsities, dtype=float)
    configs = [_replace(config, sparsity=float(s)) for s in sparsities for _ in range(config.restarts)]
    W, b, loss = train_instances(configs, on_step, device=device)
    results = []
    for k, s in enumerate(sparsities):
        rows = slice(k * config.restarts, (k + 1) * config.restarts)
        best = k * config.restarts + int(np.argmin(loss[rows]))
        results.append(ToyResult(_replace(config, sparsity=float(s)), W[best], b[best], float(loss[best]), notes))
    return results
