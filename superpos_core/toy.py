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
import queue
import threading
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
    # (I, 1, 1) each, on the CPU: u ↦ u · scale + offset = (u - S) / (1 - S) stretches a present feature's draw to [0, 1)
    scale: torch.Tensor = field(init=False)  # 1 / (1 - S)
    offset: torch.Tensor = field(init=False)  # -S / (1 - S)

    def __post_init__(self) -> None:
        # On the CPU, where the data is drawn whatever the device.
        self.scale = (1 / (1 - self.sparsity))[:, None, None].cpu()
        self.offset = (-self.sparsity / (1 - self.sparsity))[:, None, None].cpu()


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


def _data_generator(seed: int) -> np.random.Generator:
    """The generator the training data is drawn from: NumPy's PCG64DXSM, seeded with the run's seed.

    Not torch's Mersenne Twister: the data is a few thousand uniforms a step, and drawing them was the largest
    single cost of a toy model's step (about 80 µs of 200 on two cores; PCG64DXSM takes about 45). The initial
    weights still come from a ``torch.Generator`` with the same seed.
    """
    return np.random.Generator(np.random.PCG64DXSM(seed))


def _stretch(batch: _Batch, uniform: torch.Tensor) -> torch.Tensor:
    """Turn uniform draws (..., I, n, B) into data, in place: each feature 0 with probability S, else uniform in [0, 1).

    With u ~ U[0, 1): the feature is present when u >= S, and then (u - S) / (1 - S) is again uniform on
    [0, 1). One uniform per feature instead of two halves the cost of sampling.
    """
    return uniform.mul_(batch.scale).add_(batch.offset).clamp_min_(0.0)


def _sample(batch: _Batch, size: int, rng: np.random.Generator) -> torch.Tensor:
    """A fresh batch of ``size`` data vectors per instance, (I, size, n), drawn as training draws them.

    Feature-major, (I, n, B), like the training batches (``_Prefetched``): the same draws in the same order.
    """
    I, _, n = batch.W.shape
    uniform = rng.random((I, n, size), dtype=np.float32)  # (I, n, B)
    return _stretch(batch, torch.from_numpy(uniform)).to(batch.W.device).transpose(1, 2)


class _Prefetched:
    """Every step's batch, drawn ahead on a second thread while the first trains: ``for x in batches`` gives (I, n, B).

    Drawing the data was the largest single cost of a toy model's step (about half of it on two cores), and
    NumPy's generator and torch's operations release the GIL, so a second core can do it meanwhile. The draws
    are made in chunks of several steps, in order, from one generator that only this thread touches until the
    last chunk is drawn: the batches are exactly those ``_sample`` would draw one after another. At most a few
    chunks of about 2 MB each wait at once. ``close()`` (always, in a ``finally``) stops the thread early if
    training stops early.
    """

    CHUNK_NUMBERS = 2**19  # floats per chunk (2 MB)
    AHEAD = 2  # chunks drawn ahead of the one in use

    def __init__(self, batch: _Batch, size: int, steps: int, rng: np.random.Generator) -> None:
        I, _, n = batch.W.shape
        self.per_chunk = max(1, self.CHUNK_NUMBERS // (I * n * size))  # steps per chunk
        self.chunks = -(-steps // self.per_chunk)
        self.device = batch.W.device
        self._chunks: queue.Queue = queue.Queue(maxsize=self.AHEAD)
        self._stop = threading.Event()
        shape = (I, n, size)
        self._thread = threading.Thread(target=self._draw, args=(batch, shape, steps, rng), daemon=True)
        self._thread.start()

    def _draw(self, batch: _Batch, shape: tuple[int, int, int], steps: int, rng: np.random.Generator) -> None:
        try:
            for start in range(0, steps, self.per_chunk):
                uniform = rng.random((min(self.per_chunk, steps - start), *shape), dtype=np.float32)  # (k, I, n, B)
                self._put(_stretch(batch, torch.from_numpy(uniform)))
        except BaseException as error:  # handed to the training thread, which raises it
            self._put(error)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                return self._chunks.put(item, timeout=0.05)
            except queue.Full:
                pass

    def __iter__(self):
        for _ in range(self.chunks):
            chunk = self._chunks.get()
            if isinstance(chunk, BaseException):
                raise chunk
            yield from chunk.to(self.device)  # (I, n, B) each

    def close(self) -> None:
        """Stop drawing and wait for the thread: afterwards the generator is the caller's again."""
        self._stop.set()
        self._thread.join()


def _per_instance_loss(batch: _Batch, x: torch.Tensor) -> torch.Tensor:
    h = torch.bmm(x, batch.W.transpose(1, 2))  # (I, B, m)
    out = torch.relu(torch.bmm(h, batch.W) + batch.b[:, None, :])  # (I, B, n)
    return (batch.importance[:, None, :] * (x - out) ** 2).mean(1).sum(-1)  # (I,)


_relu_backward = (
    torch.ops.aten.threshold_backward.grad_input
)  # (grad, ReLU's output, 0): grad where the output > 0, else 0


def _fast_step(batch: _Batch, adam: FlatAdam, size: int) -> Callable[[torch.Tensor, float], None]:
    """One training step of every instance, gradients by hand: ``step(x, lr)`` updates W and b on the batch x (I, n, B).

    The loss is ``_per_instance_loss`` summed over instances. With G = WᵀW (I, n, n), the model is
    z = x G + b, out = ReLU(z), and its gradients, written out, are

        dL/dz = (2I/B) (out - x) where out > 0, else 0     (I, B, n)
        dL/db = Σ_B dL/dz                                   (I, n)
        dL/dW = W (A + Aᵀ),  A = xᵀ dL/dz                   (I, m, n); A: (I, n, n)

    (W is used twice, tied: hᵀ dL/dz = W A, and the path through h = x Wᵀ gives W Aᵀ.) So a step needs
    two products over the batch, not autograd's five, and about 20 PyTorch calls in all instead of autograd's
    and torch.optim's hundred or so: on the toy model's ten weights a call costs far more than its arithmetic,
    so the number of calls sets the speed. The batch comes feature-major, (I, n, B), so that the
    products and the per-feature broadcasts run along the long batch axis (with n = 5 innermost they were several
    times slower). Going through G sums in another order than autograd does, so the numbers agree with it
    to float rounding, not bit for bit (``tests/superpos_core/test_toy.py``). Work tensors are allocated once.
    """
    I, m, n = batch.W.shape
    W, b = batch.W, batch.b  # views of adam.flat: updating the buffer updates them
    g_W, g_b = adam.grads  # (I, m, n), (I, n): views of adam.grad
    device = W.device
    G = torch.empty(I, n, n, device=device)  # (I, n, n) WᵀW, symmetric
    Z = torch.empty(I, n, size, device=device)  # (I, n, B) zᵀ, then ReLU(z)ᵀ
    D = torch.empty(I, n, size, device=device)  # (I, n, B) (dL/dout)ᵀ, then (dL/dz)ᵀ
    A = torch.empty(I, n, n, device=device)  # (I, n, n) xᵀ dL/dz
    A_sym = torch.empty(I, n, n, device=device)  # (I, n, n) A + Aᵀ
    # autograd's dL/dout is -(I · (1/B)) · (2 (x - out)); 2/B and the sign are exact, so this is the same number.
    coefficient = (batch.importance * (2.0 / size))[:, :, None]  # (I, n, 1)
    # Views made once (each is a PyTorch call): they follow their tensors, which are only ever written in place.
    Wt, Dt, At = W.transpose(1, 2), D.transpose(1, 2), A.transpose(1, 2)
    b_column = b[:, :, None]  # (I, n, 1)

    def step(X: torch.Tensor, lr: float) -> None:
        # 1) Forward: zᵀ = G xᵀ + b (G is symmetric).
        torch.bmm(Wt, W, out=G)  # (I, n, n)
        torch.bmm(G, X, out=Z).add_(b_column).relu_()  # (I, n, B)
        # 2) Backward: dL/dz, then each parameter's gradient into its view of adam.grad.
        torch.sub(Z, X, out=D).mul_(coefficient)
        _relu_backward(D, Z, 0, grad_input=D)  # no gradient where ReLU output 0 (autograd's own op), in place
        torch.sum(D, 2, out=g_b)  # (I, n)
        torch.bmm(X, Dt, out=A)  # (I, n, n)
        torch.add(A, At, out=A_sym)
        torch.bmm(W, A_sym, out=g_W)  # (I, m, n)
        # 3) Adam on the one buffer holding every instance's W and b.
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
    batch = _init(configs, torch.Generator().manual_seed(first.seed), torch.device(device))
    batch.W.requires_grad_(False)
    batch.b.requires_grad_(False)
    adam = FlatAdam([batch.W, batch.b])  # batch.W and batch.b now live in adam.flat
    rng = _data_generator(first.seed)
    step = _fast_step(batch, adam, first.batch_size)
    batches = _Prefetched(batch, first.batch_size, first.steps, rng)
    try:
        for k, x in enumerate(batches):
            # Linear warm-down to 0: big steps early, then settle. Converges in a fraction of the steps a
            # constant 1e-3 needs, which is what makes a live demo possible. (The rate LambdaLR would set.)
            step(x, first.learning_rate * (1 - k / first.steps))
            if on_step and ((k + 1) % report_every == 0 or k + 1 == first.steps):
                on_step(k + 1, first.steps)
    finally:
        batches.close()
    with torch.no_grad():
        final = _per_instance_loss(batch, _sample(batch, 8 * first.batch_size, rng))
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
