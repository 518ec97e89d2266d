"""Undo the toy model's superposition with an SAE, and grade it against the features the data was made of.

    toy_model = toy.train(toy.ToyConfig(sparsity=0.99))        # the pentagon: 5 features in 2 dimensions
    graded = train_toy_sae(toy_model, ToySAEConfig())           # an SAE on h = W x, from fresh samples
    graded.recovered, graded.matched_cosine, graded.explained_variance

The toy model is the one place where the true features are known: feature i is stored along Wᵢ, the
i-th column of W. So an SAE fitted to its hidden vectors can be checked, not just admired. Each true
direction Wᵢ is paired with one SAE latent, one-to-one, by the assignment that maximises the sum of
**signed** cosines between Wᵢ and the latents' decoder rows (the Hungarian algorithm). Signed, because a
latent pointing at -Wᵢ reads the feature backwards: it fires on a different half of the plane, and a
ReLU code cannot stand in for feature i with it. A feature counts as recovered when its partner's cosine
is at least ``RECOVERED_AT``.

The SAE's sparsity is an L1 penalty on its activations weighted by its decoder norms (``train.py``'s
"l1"), not TopK. Here the data's L0 changes from one vector to the next (at S = 0.99 most hidden vectors
are 0, a few hold one feature, fewer two), which a fixed k cannot follow; and the penalty is a knob that
can be turned smoothly, so a sweep over it shows how the SAE trades reconstruction for the right features.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from superpos_core import toy
from superpos_core.sae import train as sae_train
from superpos_core.sae.checks import MAX_SEED

RECOVERED_AT = 0.95  # the matched cosine at which a feature counts as found
MAX_LATENTS = 256  # bounds the work of one request, with MAX_SAE_STEPS
MAX_SAE_STEPS = 20_000
EVALUATION_SAMPLES = 32_768  # fresh data vectors the trained SAE is measured on
SWEEP_PENALTIES = tuple(float(p) for p in np.geomspace(1e-3, 1.0, 10))  # the penalty sweep's grid


@dataclass(frozen=True)
class ToySAEConfig:
    """The SAE's recipe for a toy model's hidden layer; the rest of the recipe is ``SAETrainConfig``'s defaults."""

    latents: int | None = None  # dictionary size; None: 2n, twice the true features
    penalty: float = 0.3  # weight of the decoder-norm-weighted L1 term, per hidden vector
    steps: int = 1_500  # optimiser steps, one batch of fresh samples each (all 5 pentagon features by 1,500, seeds 0-5)
    seed: int = 0  # the SAE's initial weights, its batches of data and its resampling
    batch_size: int = 1024  # at S = 0.99 only about 5% of vectors hold a feature: a large batch sees enough of them
    lr: float = 1e-2  # Adam's rate before its linear decay over the last 20% of the steps

    def checked(self, n_features: int) -> ToySAEConfig:
        """The config with its latents filled in (2n by default), or ``toy.ToyInputError`` naming the setting."""
        latents = 2 * n_features if self.latents is None else self.latents
        if not isinstance(latents, (int, np.integer)) or isinstance(latents, bool) or not n_features <= latents:
            raise toy.ToyInputError(
                f"The SAE needs at least one latent per true feature ({n_features}), so that each feature can have a "
                f"partner of its own; got {latents!r} latents."
            )
        if latents > MAX_LATENTS:
            raise toy.ToyInputError(f"The SAE can have at most {MAX_LATENTS} latents; got {latents!r}.")
        if not (isinstance(self.penalty, (int, float)) and math.isfinite(self.penalty) and self.penalty >= 0):
            raise toy.ToyInputError(f"The sparsity penalty must be a number of 0 or more; got {self.penalty!r}.")
        if not isinstance(self.steps, (int, np.integer)) or not 1 <= self.steps <= MAX_SAE_STEPS:
            raise toy.ToyInputError(
                f"SAE steps must be a whole number from 1 to {MAX_SAE_STEPS:,}; got {self.steps!r}."
            )
        if not isinstance(self.seed, (int, np.integer)) or not 0 <= self.seed <= MAX_SEED:
            raise toy.ToyInputError(f"The SAE seed must be a whole number from 0 to {MAX_SEED:,}; got {self.seed!r}.")
        return replace(self, latents=int(latents), steps=int(self.steps), seed=int(self.seed))

    def trainer(self, d_in: int, device: str | torch.device) -> sae_train.SAETrainConfig:
        """The general trainer's recipe for this SAE."""
        return sae_train.SAETrainConfig(
            d_in=d_in,
            n_latents=self.latents,
            sparsity="l1",
            penalty=float(self.penalty),
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            # Check for dead latents a few times a run, however few steps are asked.
            resample_every=max(1, self.steps // 6),
            dead_window=max(1, self.steps // 10),
            device=str(torch.device(device)),
        )


# --- the data and the grading ------------------------------------------------------------------------


def sample_features(n_features: int, sparsity: float, size: int, generator: torch.Generator) -> torch.Tensor:
    """(size, n) feature vectors from the toy model's data: each feature 0 with probability S, else uniform in [0, 1].

    The same distribution the toy model was trained on (``toy.py``), drawn here with a generator of the SAE's.
    """
    present = torch.rand(size, n_features, generator=generator) >= sparsity  # (size, n)
    return torch.rand(size, n_features, generator=generator) * present


def hidden_source(W: np.ndarray, sparsity: float, generator: torch.Generator) -> Callable[[int], torch.Tensor]:
    """``size -> (size, m)`` hidden vectors h = W x of fresh samples x: an endless data source for ``train_sae``."""
    weights = torch.as_tensor(W, dtype=torch.float32)  # (m, n)
    return lambda size: sample_features(weights.shape[1], sparsity, size, generator) @ weights.T  # (size, m)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1; a row of zeros (a feature the toy model dropped) stays 0, and matches nothing."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 1e-12, norms, 1.0)


def cosine_matrix(W: np.ndarray, W_dec: np.ndarray) -> np.ndarray:
    """(n, latents) signed cosines between the true directions Wᵢ (W's columns, W: (m, n)) and the decoder rows (latents, m)."""
    return unit_rows(W.T) @ unit_rows(W_dec).T


def match_features(cosines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair each true feature with its own latent, maximising the sum of signed cosines (Hungarian).

    Args:
        cosines: (n, latents) signed cosines, latents ≥ n.

    Returns:
        partner (n,): the latent matched to each feature; matched (n,): its cosine. With |cos| instead, a
        latent at -Wᵢ would pass for feature i; signed, it scores -1 and is never counted as recovered.
    """
    from scipy.optimize import linear_sum_assignment  # here, not at the top: scipy.optimize is 0.3 s of every start

    features, latents = linear_sum_assignment(cosines, maximize=True)
    partner = np.empty(cosines.shape[0], dtype=int)
    partner[features] = latents
    return partner, cosines[np.arange(cosines.shape[0]), partner]


def recovered(matched_cosine: np.ndarray, at: float = RECOVERED_AT) -> int:
    """How many features were found: matched cosine at least ``at``."""
    return int((np.asarray(matched_cosine) >= at).sum())


# --- training and grading ------------------------------------------------------------------------------


@dataclass
class ToySAEResult:
    """An SAE trained on a toy model's hidden layer, graded against the model's true features."""

    toy: toy.ToyResult
    config: ToySAEConfig
    trained: sae_train.SAETrainResult
    cosines: np.ndarray  # (n, latents): signed cosine of true feature i with latent j's decoder direction
    partner: np.ndarray  # (n,): each feature's latent in the one-to-one matching
    matched_cosine: np.ndarray  # (n,)
    explained_variance: float  # about the mean, on fresh samples
    l0: float  # latents active per hidden vector
    true_l0: float  # features present per data vector (n(1 - S) expected)
    dead: int  # latents that fire on none of the fresh samples
    notes: list[str] = field(default_factory=list)

    @property
    def recovered(self) -> int:
        return recovered(self.matched_cosine)

    @property
    def decoder_directions(self) -> np.ndarray:
        """(latents, m): each latent's decoder row, at its trained length."""
        return self.trained.sae.W_dec.detach().cpu().numpy()

    def summary(self) -> dict:
        """The JSON contract of the app's /toy_sae endpoint."""
        return {
            "n_features": self.toy.config.n_features,
            "m": self.toy.config.m_hidden,
            "latents": self.config.latents,
            "recovered": self.recovered,
            "cosines": [[round(float(v), 5) for v in row] for row in self.cosines],
            "matched_cosine": [round(float(v), 5) for v in self.matched_cosine],
            "explained_variance": round(float(self.explained_variance), 5),
            "l0": round(float(self.l0), 5),
            "true_l0": round(float(self.true_l0), 5),
            "dead": int(self.dead),
        }


def train_toy_sae(
    toy_result: toy.ToyResult,
    config: ToySAEConfig = ToySAEConfig(),
    on_step: Callable[[int, int], None] | None = None,
    device: str | torch.device = "cpu",
) -> ToySAEResult:
    """Train an SAE on the hidden vectors of ``toy_result`` (fresh samples of its data) and grade it.

    Args:
        toy_result: a trained toy model (``toy.train``); its W gives h = W x and the true directions.
        config: the SAE's recipe (``ToyInputError`` names an unusable setting).
        on_step: ``on_step(done, total)`` about 50 times a run, e.g. to move a progress bar.
        device: where the SAE trains; the data is drawn on the CPU either way, so the numbers match.
    """
    return _train_and_grade(toy_result, config, [config.penalty], on_step, device)[0]


def _train_and_grade(
    toy_result: toy.ToyResult,
    config: ToySAEConfig,
    penalties: Sequence[float],
    on_step: Callable[[int, int], None] | None,
    device: str | torch.device,
) -> list[ToySAEResult]:
    """One SAE per penalty (``config``'s other settings for all), trained side by side on the same data, each graded."""
    c = toy_result.config
    configs = [replace(config, penalty=penalty).checked(c.n_features) for penalty in penalties]
    # The evaluation samples are drawn first, the training batches after them from the same generator:
    # a longer run is measured on the same vectors as a shorter one, and never on vectors it trained on.
    generator = torch.Generator().manual_seed(configs[0].seed)
    x_eval = sample_features(c.n_features, c.sparsity, EVALUATION_SAMPLES, generator)  # (N, n)
    train_source = hidden_source(toy_result.W, c.sparsity, generator)
    h_eval = x_eval @ torch.as_tensor(toy_result.W, dtype=torch.float32).T  # (N, m)
    report = None if on_step is None else (lambda done, total, _metrics: on_step(done, total))
    recipes = [each.trainer(c.m_hidden, device) for each in configs]
    trained_saes = sae_train.train_saes(train_source, recipes, report)
    true_l0 = float((x_eval > 0).sum(-1).double().mean())
    notes = []
    dropped = int((toy.feature_norms(toy_result.W) < 0.5).sum())
    if dropped:
        notes.append(
            f"The toy model dropped {dropped} of its {c.n_features} features (‖Wᵢ‖ < 0.5): they are barely in the hidden layer, "
            "so there is little of them for an SAE to find."
        )
    results = []
    for each, trained in zip(configs, trained_saes):
        measured = sae_train.evaluate(trained.sae, h_eval)
        cosines = cosine_matrix(toy_result.W, trained.sae.W_dec.detach().cpu().numpy())  # (n, latents)
        partner, matched = match_features(cosines)
        results.append(
            ToySAEResult(
                toy=toy_result,
                config=each,
                trained=trained,
                cosines=cosines,
                partner=partner,
                matched_cosine=matched,
                explained_variance=measured["explained_variance"],
                l0=measured["l0"],
                true_l0=true_l0,
                dead=measured["dead"],
                notes=list(notes),
            )
        )
    return results


@dataclass
class PenaltySweep:
    """One SAE per sparsity penalty, on the same toy model and the same data: what each finds and how well it reconstructs."""

    penalties: np.ndarray  # (P,)
    results: list[ToySAEResult]

    @property
    def recovered(self) -> list[int]:
        return [r.recovered for r in self.results]

    @property
    def explained_variance(self) -> list[float]:
        return [r.explained_variance for r in self.results]

    def summary(self) -> dict:
        """The JSON of the app's /toy_sae_sweep endpoint."""
        first = self.results[0]
        return {
            "n_features": first.toy.config.n_features,
            "m": first.toy.config.m_hidden,
            "latents": first.config.latents,
            "penalties": [float(f"{p:.6g}") for p in self.penalties],
            "recovered": self.recovered,
            "explained_variance": [round(float(v), 5) for v in self.explained_variance],
            "l0": [round(float(r.l0), 5) for r in self.results],
            "true_l0": round(float(first.true_l0), 5),
        }


def penalty_sweep(
    toy_result: toy.ToyResult,
    config: ToySAEConfig = ToySAEConfig(),
    penalties: Sequence[float] = SWEEP_PENALTIES,
    on_step: Callable[[int, int], None] | None = None,
    device: str | torch.device = "cpu",
) -> PenaltySweep:
    """One SAE per penalty (``config``'s other settings, its seed included, for all), trained in one batched run, each graded.

    The SAEs start from the same initial weights and see the same batches (``sae.train.train_saes``), so the
    penalty is the only thing that differs between them. ``on_step(done, total)`` counts the run's steps.
    """
    penalties = np.asarray(penalties, dtype=float)
    return PenaltySweep(penalties, _train_and_grade(toy_result, config, penalties, on_step, device))
