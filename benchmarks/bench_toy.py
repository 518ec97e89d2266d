"""python -m benchmarks.bench_toy [--repeats 3] [--threads 1] [--paper-steps 5000] [--quick]

Times the toy-model tab's training (``superpos_core.toy``) against the course's way of training
the same model: one model at a time, in a plain PyTorch loop.

1) Time to a converged answer, n=5 features in m=2 dimensions, for two textbook pictures:
   dense   (S=0,    r=0.9): the 2 most important features kept (norm >= 0.9), the rest dropped (<= 0.1);
   pentagon (S=0.99, r=1):   all 5 features kept (norm >= 0.9), 72° ± 5° between neighbours.
   Ours is one call of ``toy.train`` with its defaults (several seeds side by side, a high
   learning rate warmed down to 0; the settings are printed). The course's way trains one model
   with Adam at a constant lr 1e-3 and is stopped the first time it meets the criterion (checked
   every 500 steps, up to 10,000).
2) A sparsity sweep over the 20 points of ``toy.sparsity_grid()``: ours is one batched
   ``toy.sweep`` run; the course's way trains the same models (``toy.sweep``'s seeds per sparsity)
   one after another with the same steps, batch and learning rate, so the ratio measures batching
   alone. It
   is also timed at a paper-like setting (one model per sparsity, lr 1e-3, batch 1024, 5,000 steps).
3) 10,000 steps, the hand-written step (gradients written out, Adam on one flat buffer) against the old
   way, autograd + torch.optim.Adam, the same maths (kept here as ``old_train_toy`` and ``old_train_sae``):
   the pentagon (n=5, m=2, S=0.99; ``toy.train``'s 4 seeds side by side), an SAE of 2n latents on its
   hidden layer (fresh samples each batch), and ``/toy``'s defaults (1,000 steps).
4) The /toy_sae event on its defaults, as the tab's handler runs it (toy model, SAE, grading, figures).
5) The penalty sweep's ten SAEs: one batched ``toy_sae.penalty_sweep`` run against one ``train_toy_sae`` per
   penalty, one after another.

Goals: a converged answer in <= 2 s; the 20-point sweep in <= 10 s; 10,000 steps of the toy model and of
its SAE <= 2 s each; the /toy_sae event <= 3 s. About 2 minutes on 2 idle cores.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.measure import load_average, threads_and_load
from benchmarks.summary import quick_run, record, verdict
from superpos_core import toy, toy_sae
from superpos_core.sae import train as sae_train

N_FEATURES, M_HIDDEN = 5, 2
GOAL_CONVERGED_S = 2.0
GOAL_SWEEP_S = 10.0
GOAL_LONG_S = 2.0  # 10,000 steps of the toy model, and of its SAE
GOAL_SAE_EVENT_S = 3.0  # the /toy_sae event on its defaults, figures included
LONG_STEPS = 10_000
CHECK_EVERY = 500  # steps between two looks at the course's model
CAP_STEPS = 10_000  # the course's loop gives up here


# --- the two pictures a converged model should show -------------------------------------------------


def neighbour_angles(W: np.ndarray) -> np.ndarray:
    """Degrees between neighbouring feature directions of a 2-D embedding W (2, n), round the circle."""
    angles = np.sort(np.degrees(np.arctan2(W[1], W[0])) % 360.0)  # (n,)
    return np.diff(np.append(angles, angles[0] + 360.0))  # (n,), sums to 360


def dense_converged(W: np.ndarray) -> bool:
    norms = toy.feature_norms(W)  # features are ordered by importance, most important first
    return bool(norms[:M_HIDDEN].min() >= 0.9 and norms[M_HIDDEN:].max() <= 0.1)


def pentagon_converged(W: np.ndarray) -> bool:
    norms = toy.feature_norms(W)
    return bool(norms.min() >= 0.9 and np.all(np.abs(neighbour_angles(W) - 72.0) <= 5.0))


@dataclass(frozen=True)
class Criterion:
    name: str
    sparsity: float
    importance_decay: float
    description: str
    converged: Callable[[np.ndarray], bool]


CRITERIA = [
    Criterion("dense", 0.0, 0.9, "features 0-1 norm >= 0.9, features 2-4 norm <= 0.1", dense_converged),
    Criterion("pentagon", 0.99, 1.0, "all 5 norms >= 0.9, neighbours 72° ± 5° apart", pentagon_converged),
]


# --- the course's way: the reference we compare with ------------------------------------------------


class CourseToyModel(torch.nn.Module):
    """One toy model, as the course and most reproductions of the paper write it: no instance axis."""

    def __init__(self, n_features: int, m_hidden: int, generator: torch.Generator):
        super().__init__()
        self.W = torch.nn.Parameter(torch.empty(m_hidden, n_features))  # (m, n)
        torch.nn.init.xavier_normal_(self.W, generator=generator)
        self.b = torch.nn.Parameter(torch.zeros(n_features))  # (n,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x @ self.W.T  # (B, m)
        return torch.relu(h @ self.W + self.b)  # (B, n)


def course_batch(size: int, n_features: int, sparsity: float, generator: torch.Generator) -> torch.Tensor:
    """Each feature 0 with probability S, else uniform in [0, 1]: one draw for the values, one for
    which are present, as the paper's code does. Same distribution as the sampler in ``superpos_core.toy``, which gets
    it from a single draw."""
    values = torch.rand(size, n_features, generator=generator)  # (B, n)
    present = torch.rand(size, n_features, generator=generator) >= sparsity  # (B, n)
    return torch.where(present, values, 0.0)


@dataclass
class CourseRun:
    W: np.ndarray  # (m, n)
    seconds: float  # training time until it stopped, checks excluded
    met_at: int | None  # the step at which the criterion was first seen met; None if never (or not asked)


def course_train(
    sparsity: float,
    importance_decay: float,
    seed: int,
    *,
    steps: int,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    warm_down: bool = False,
    converged: Callable[[np.ndarray], bool] | None = None,
) -> CourseRun:
    """Train one model in a plain loop. With ``converged``, stop the first time it is met."""
    generator = torch.Generator().manual_seed(seed)
    model = CourseToyModel(N_FEATURES, M_HIDDEN, generator)
    importance = importance_decay ** torch.arange(N_FEATURES, dtype=torch.float32)  # (n,)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    # The warm-down is only there to match ours step for step when the sweep compares batching alone.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps) if warm_down else None
    seconds, met_at = 0.0, None
    start = time.perf_counter()
    for step in range(steps):
        x = course_batch(batch_size, N_FEATURES, sparsity, generator)  # (B, n)
        # Mean over the batch, summed over features, as ours. The paper also averages over features:
        # a constant factor of n, which Adam's step size does not see.
        loss = (importance * (x - model(x)) ** 2).mean(0).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if schedule:
            schedule.step()
        if converged and (step + 1) % CHECK_EVERY == 0:
            seconds += time.perf_counter() - start  # the clock stops while we look
            if converged(model.W.detach().numpy()):
                met_at = step + 1
                break
            start = time.perf_counter()
    else:
        seconds += time.perf_counter() - start
    return CourseRun(model.W.detach().numpy().copy(), seconds, met_at)


# --- the old way of each step: autograd and torch.optim.Adam, the maths the hand-written step repeats ---------


def old_train_toy(config: toy.ToyConfig) -> np.ndarray:
    """``toy.train``'s instances trained as they were before the gradients were written out: the same
    initialisation and loss, autograd, torch.optim.Adam and LambdaLR, and the data drawn as it then was (torch's
    generator, in the training thread; ``toy.train`` now draws it with NumPy's, ahead on a second thread).
    Returns W (I, m, n)."""
    I, m, n, size = config.restarts, config.m_hidden, config.n_features, config.batch_size
    generator = torch.Generator().manual_seed(config.seed)
    W = torch.empty(I, m, n)
    torch.nn.init.xavier_normal_(W.view(-1, n), generator=generator)
    W.requires_grad_(True)
    b = torch.zeros(I, n, requires_grad=True)
    optimizer = torch.optim.Adam([W, b], lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / config.steps)
    for _ in range(config.steps):
        u = torch.rand(I, size, n, generator=generator)  # (I, B, n)
        x = torch.clamp_min_((u - config.sparsity) / (1 - config.sparsity), 0.0)
        h = torch.bmm(x, W.transpose(1, 2))  # (I, B, m)
        out = torch.relu(torch.bmm(h, W) + b[:, None, :])  # (I, B, n)
        loss = (config.importance * (x - out) ** 2).mean(1).sum(-1).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return W.detach().numpy()


def old_train_sae(source: Callable[[int], torch.Tensor], config: sae_train.SAETrainConfig) -> sae_train.SAE:
    """``train_sae``'s loop as it was: ``SAE.loss``, autograd, torch.optim.Adam, the same resampling."""
    generator = torch.Generator().manual_seed(config.seed)
    sae = sae_train.SAE(config, generator)
    first = source(config.batch_size)
    with torch.no_grad():
        sae.b_dec.copy_(first.mean(0))
    optimizer = torch.optim.Adam(sae.parameters(), lr=config.lr)
    last_fired = torch.zeros(config.n_latents, dtype=torch.long)
    recent = []
    for step in range(config.steps):
        x = first if step == 0 else source(config.batch_size)
        for group in optimizer.param_groups:
            group["lr"] = sae_train.learning_rate(config, step)
        loss, _, features = sae.loss(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1
        with torch.no_grad():
            last_fired[(features > 0).any(0)] = done
        recent = (recent + [x])[-8:]
        if done % config.resample_every == 0 and done <= config.resample_until * config.steps:
            dead = (done - last_fired) >= min(config.dead_window, done)
            sae_train.resample_dead_latents(sae, dead, torch.cat(recent), generator, optimizer)
            last_fired[dead] = done
    return sae


def hidden_layer(W: np.ndarray, sparsity: float, seed: int) -> Callable[[int], torch.Tensor]:
    """Fresh hidden vectors h = W x of the toy model's data, ``size`` at a time: an SAE's training source."""
    generator = torch.Generator().manual_seed(seed)
    Wt = torch.as_tensor(W, dtype=torch.float32).T.contiguous()  # (n, m)
    # 0-dim tensors: a Python number in a tensor operation costs a conversion each call.
    S, keep = torch.tensor(sparsity), torch.tensor(1 - sparsity)

    def source(size: int) -> torch.Tensor:
        u = torch.rand(size, Wt.shape[0], generator=generator)  # (size, n)
        return u.sub_(S).div_(keep).clamp_min_(0.0) @ Wt  # (size, m)

    return source


def median_of(repeats: int, run: Callable, *args) -> tuple[float, object]:
    """The median seconds of ``repeats`` calls of ``run(*args)``, and what the last returned."""
    times, result = [], None
    for _ in range(repeats):
        seconds, result = timed(run, *args)
        times.append(seconds)
    return statistics.median(times), result


def long_runs(steps: int, repeats: int = 3) -> list[tuple[str, float, float, bool | None]]:
    """(what, ours s, old way s, goal met) for the toy model, its SAE and /toy's defaults: ours the median of
    ``repeats`` runs (a second or two each), the old way timed once (several times longer)."""
    pentagon = toy.ToyConfig(N_FEATURES, M_HIDDEN, sparsity=0.99, importance_decay=1.0, steps=steps)
    ours_toy, result = median_of(repeats, toy.train, pentagon)
    old_toy, _ = timed(old_train_toy, pentagon)
    recipe = sae_train.SAETrainConfig(d_in=M_HIDDEN, n_latents=2 * N_FEATURES, steps=steps)
    ours_sae, _ = median_of(repeats, lambda: sae_train.train_sae(hidden_layer(result.W, 0.99, 1), recipe))
    old_sae, _ = timed(old_train_sae, hidden_layer(result.W, 0.99, 1), recipe)
    defaults = toy.ToyConfig(N_FEATURES, M_HIDDEN, sparsity=0.99, importance_decay=1.0, steps=1_000, seed=0)
    ours_defaults, _ = median_of(repeats, toy.train, defaults)
    old_defaults, _ = timed(old_train_toy, defaults)
    judged = steps == LONG_STEPS
    return [
        (f"toy model, pentagon, {steps:,} steps", ours_toy, old_toy, ours_toy <= GOAL_LONG_S if judged else None),
        (
            f"SAE of 2n latents on its hidden layer, {steps:,} steps",
            ours_sae,
            old_sae,
            ours_sae <= GOAL_LONG_S if judged else None,
        ),
        ("/toy defaults (1,000 steps)", ours_defaults, old_defaults, None),
    ]


@dataclass
class SAEEventTimes:
    seconds: list[float]
    recovered: str  # what the last run found, as its summary says it


def sae_event_times(runs: int) -> SAEEventTimes:
    """The toy tab's /toy_sae handler on its defaults, ``runs`` times (after one warm-up run)."""
    from demos import toy as toy_tab  # gradio: imported here, so the rest of the benchmark does not pay for it
    from demos import toy_sae as toy_sae_tab

    controls = [toy_tab.DEFAULTS[k] for k in ("n", "m", "sparsity", "decay", "steps", "seed")]
    sae_controls = (2 * toy_tab.DEFAULTS["n"], toy_sae.ToySAEConfig().penalty, toy_sae.ToySAEConfig().steps, 0)

    def event():
        return toy_sae_tab.train_toy_sae(toy_tab.read_controls, *controls, *sae_controls, progress=lambda *a, **k: None)

    event()
    seconds, shown = [], None
    for _ in range(runs):
        start = time.perf_counter()
        shown = event()
        seconds.append(time.perf_counter() - start)
    summary = shown["sae_summary"]
    return SAEEventTimes(seconds, f"recovered {summary['recovered']} of {summary['n_features']} features")


def penalty_sweep_times(steps: int) -> tuple[float, float, list[int], list[int]]:
    """The /toy_sae_sweep's SAEs on the pentagon: one batched ``penalty_sweep`` against one ``train_toy_sae`` per
    penalty, one after another (the way the sweep was run before). Returns (batched s, one by one s, features
    recovered per penalty by each)."""
    pentagon = toy.train(toy.ToyConfig(N_FEATURES, M_HIDDEN, sparsity=0.99, importance_decay=1.0, steps=1_000))
    config = toy_sae.ToySAEConfig(steps=steps)
    batched_s, swept = timed(toy_sae.penalty_sweep, pentagon, config)
    one_by_one_s, each = timed(
        lambda: [toy_sae.train_toy_sae(pentagon, toy_sae.ToySAEConfig(penalty=p, steps=steps)) for p in swept.penalties]
    )
    return batched_s, one_by_one_s, swept.recovered, [r.recovered for r in each]


# --- timing --------------------------------------------------------------------------------------


def timed(run: Callable, *args, **kwargs) -> tuple[float, object]:
    """How long ``run(*args, **kwargs)`` took, in seconds, and what it returned."""
    start = time.perf_counter()
    result = run(*args, **kwargs)
    return time.perf_counter() - start, result


@dataclass
class Side:
    """One side's repeats: seconds each, and whether each met the criterion."""

    seconds: list[float]
    met: list[bool]

    @property
    def median(self) -> float:
        return float(np.median(self.seconds))

    @property
    def median_is_lower_bound(self) -> bool:
        # An unmet course run is timed at the cap, longer than any met run, so it sorts last:
        # the median is a real time to convergence unless half or more of the runs are unmet.
        return self.met.count(False) > (len(self.met) - 1) // 2

    def each(self) -> str:
        return " ".join(f"{s:.2f}{'' if ok else 'x'}" for s, ok in zip(self.seconds, self.met))


def time_to_converged(criterion: Criterion, repeats: int) -> tuple[Side, Side]:
    ours, course = Side([], []), Side([], [])
    for seed in range(repeats):
        # Alternate the two sides seed by seed, so drift in the machine's speed hits both alike.
        config = toy.ToyConfig(
            N_FEATURES, M_HIDDEN, sparsity=criterion.sparsity, importance_decay=criterion.importance_decay, seed=seed
        )
        seconds, result = timed(toy.train, config)
        ours.seconds.append(seconds)
        ours.met.append(criterion.converged(result.W))
        run = course_train(
            criterion.sparsity, criterion.importance_decay, seed, steps=CAP_STEPS, converged=criterion.converged
        )
        course.seconds.append(run.seconds)
        course.met.append(run.met_at is not None)
    return ours, course


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Time the toy model's training against the course's one-model-at-a-time loop."
    )
    parser.add_argument("--repeats", type=int, default=3, help="seeds per criterion, and runs of our sweep")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1, as `python app.py` runs)")
    # 20 models x 5,000 steps is about 45 s on an idle core, half of the whole run; 0 leaves it out.
    parser.add_argument(
        "--paper-steps", type=int, default=5000, help="steps per model of the paper-like sweep (0 skips it)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a check that it runs: 1 seed, a 4-point sweep, no paper-like sweep; no goal judged",
    )
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.paper_steps = 1, 0
        quick_run()
    torch.set_num_threads(args.threads)
    begun = time.perf_counter()

    print(f"Toy model of superposition, n={N_FEATURES} features in m={M_HIDDEN} dimensions")
    print(threads_and_load())

    # Untimed warm-up of both sides: the first call pays for PyTorch's lazy set-up, not for training.
    toy.train(toy.ToyConfig(N_FEATURES, M_HIDDEN, steps=50))
    course_train(0.0, 1.0, 0, steps=50)

    # 1) Time to a converged answer.
    print()
    defaults = toy.ToyConfig()
    print(
        f"time to a converged answer: {args.repeats} seeds each; ours = toy.train defaults ({defaults.restarts} seeds side by side, "
        f"{defaults.steps:,} steps, batch {defaults.batch_size}, lr {defaults.learning_rate:g} warmed down)"
    )
    print(
        f"course way = one model, Adam lr 1e-3 constant, batch 1024, checked every {CHECK_EVERY} steps up to {CAP_STEPS:,}; x = criterion not met"
    )
    converged = {}
    for criterion in CRITERIA:
        ours, course = time_to_converged(criterion, args.repeats)
        converged[criterion.name] = ours
        record(
            "toy",
            f"{criterion.name}: converged answer (median s)",
            ours.median,
            "s",
            course.median,
            None,
            f"<= {GOAL_CONVERGED_S:.0f} s",
            ours.median <= GOAL_CONVERGED_S and all(ours.met),
        )
        bound = ">=" if course.median_is_lower_bound else ""
        ratio = f"{bound}{course.median / ours.median:.2f}x"
        print()
        print(f"{criterion.name} (S={criterion.sparsity:g}, r={criterion.importance_decay:g}): {criterion.description}")
        print(f"  {'side':<28} {'median s':>9} {'met':>5} {'course/ours':>12}   each repeat (s)")
        print(
            f"  {'ours: toy.train':<28} {ours.median:>9.2f} {ours.met.count(True):>3}/{len(ours.met)} {1.0:>11.2f}x   {ours.each()}"
        )
        median = f"{bound}{course.median:.2f}"
        print(
            f"  {'course way: one model':<28} {median:>9} {course.met.count(True):>3}/{len(course.met)} {ratio:>12}   {course.each()}"
        )

    # 2) Sparsity sweep.
    sparsities = toy.sparsity_grid()
    if args.quick:
        sparsities = sparsities[::5]  # 4 of the 20: both ends' behaviour, a fifth of the time
    sweep_config = toy.ToyConfig(N_FEATURES, M_HIDDEN, importance_decay=1.0)
    # toy.sweep's own defaults, read from its signature so that the course's loop always repeats them.
    sweep_defaults = inspect.signature(toy.sweep).parameters
    restarts, batch_size = sweep_defaults["restarts"].default, sweep_defaults["batch_size"].default
    ours_seconds, results = [], []
    for _ in range(args.repeats):
        seconds, results = timed(toy.sweep, sweep_config, sparsities, restarts=restarts, batch_size=batch_size)
        ours_seconds.append(seconds)
    ours_sweep = float(np.median(ours_seconds))

    # Same steps, batch, learning rate and warm-down as ours, one model at a time: only batching
    # differs (and ours' one-draw sampling, a few microseconds a step next to ~0.3 ms of overhead).
    same_seconds, same_W = timed(
        lambda: [
            course_train(
                s,
                1.0,
                seed,
                steps=sweep_config.steps,
                batch_size=batch_size,
                learning_rate=sweep_config.learning_rate,
                warm_down=True,
            ).W
            for s in sparsities
            for seed in range(restarts)
        ]
    )
    same_W = same_W[::restarts]  # the first seed of each sparsity, for the sanity line

    rows = [
        (f"ours: toy.sweep ({len(sparsities)}x{restarts} models batched)", ours_sweep, len(ours_seconds)),
        (f"course way, same settings ({len(sparsities) * restarts} runs)", same_seconds, 1),
    ]
    if args.paper_steps > 0:
        # One model per sparsity, as the paper's sweep has one instance per sparsity.
        paper_seconds, paper_W = timed(lambda: [course_train(s, 1.0, 0, steps=args.paper_steps).W for s in sparsities])
        rows.append((f"course way, paper-like ({len(sparsities)} runs)", paper_seconds, 1))

    print()
    print(f"sparsity sweep: {len(sparsities)} sparsities from {sparsities[0]:.3f} to {sparsities[-1]:.3f}, r=1")
    print(
        f"  ours and 'same settings': {sweep_config.steps:,} steps, batch {batch_size}, lr {sweep_config.learning_rate:g} warmed down, {restarts} seeds per sparsity"
    )
    if args.paper_steps > 0:
        print(f"  paper-like: {args.paper_steps:,} steps, batch 1024, lr 1e-3 constant, 1 seed per sparsity")
    print(f"  {'side':<44} {'runs':>4} {'median s':>9} {'course/ours':>12}")
    record(
        "toy",
        f"{len(sparsities)}-point sparsity sweep",
        ours_sweep,
        "s",
        rows[1][1],
        None,
        f"<= {GOAL_SWEEP_S:.0f} s",
        ours_sweep <= GOAL_SWEEP_S,
    )
    for label, seconds, runs in rows:
        print(f"  {label:<44} {runs:>4} {seconds:>9.2f} {seconds / ours_sweep:>11.2f}x")

    # Sanity: the sweep should go from few features kept (dense) to all five (sparse).
    densest, sparsest = results[0], results[-1]
    print()
    print(f"  represented features (norm > 0.5) at S={sparsities[0]:.3f} / S={sparsities[-1]:.3f}:")
    print(
        f"    ours {toy.represented(densest.W)} / {toy.represented(sparsest.W)}"
        f"  (norms {np.round(densest.feature_norms, 2)} / {np.round(sparsest.feature_norms, 2)})"
    )
    print(
        f"    course way (seed 0), same settings {toy.represented(same_W[0])} / {toy.represented(same_W[-1])}", end=""
    )
    print(
        f";  paper-like {toy.represented(paper_W[0])} / {toy.represented(paper_W[-1])}" if args.paper_steps > 0 else ""
    )

    # 3) 10,000 steps: the hand-written step against autograd + torch.optim.Adam.
    steps = 1_000 if args.quick else LONG_STEPS
    long = long_runs(steps, 1 if args.quick else args.repeats)
    print()
    print(
        f"{steps:,} steps: ours = gradients written out, Adam on one flat buffer (median of {1 if args.quick else args.repeats}); "
        "old way = autograd + torch.optim.Adam (once)"
    )
    print(f"  {'run':<52} {'ours s':>7} {'old s':>7} {'old/ours':>9}")
    for label, ours_s, old_s, met in long:
        print(f"  {label:<52} {ours_s:>7.2f} {old_s:>7.2f} {old_s / ours_s:>8.1f}x")
        record("toy", label, ours_s, "s", old_s, None, f"<= {GOAL_LONG_S:.0f} s" if met is not None else "", met)

    # 4) The /toy_sae event as the tab runs it: the toy model, an SAE on its hidden layer, the grading and figures.
    sae_event = sae_event_times(1 if args.quick else args.repeats)
    print()
    print("/toy_sae defaults (pentagon; toy model, then its SAE, graded, figures drawn), as the tab's handler runs it")
    print(
        f"  median {statistics.median(sae_event.seconds):.2f} s over {len(sae_event.seconds)} runs; {sae_event.recovered}"
    )
    record(
        "toy",
        "/toy_sae defaults",
        statistics.median(sae_event.seconds),
        "s",
        None,
        None,
        f"<= {GOAL_SAE_EVENT_S:.0f} s",
        statistics.median(sae_event.seconds) <= GOAL_SAE_EVENT_S,
    )

    # 5) The penalty sweep: its SAEs in one batched run, against one after another.
    sweep_steps = 300 if args.quick else toy_sae.ToySAEConfig().steps
    batched_s, one_by_one_s, batched_found, one_by_one_found = penalty_sweep_times(sweep_steps)
    print()
    print(
        f"/toy_sae_sweep's {len(toy_sae.SWEEP_PENALTIES)} SAEs on the pentagon, {sweep_steps:,} steps each: one batched run "
        "(same initial weights and batches for every penalty) against one train_toy_sae per penalty"
    )
    print(f"  batched {batched_s:.2f} s, one after another {one_by_one_s:.2f} s ({one_by_one_s / batched_s:.1f}x)")
    print(f"  features recovered per penalty: batched {batched_found}; one after another {one_by_one_found}")
    record("toy", "/toy_sae_sweep's SAEs, one batched run", batched_s, "s", one_by_one_s, None, "", None)

    print()
    print("goals:")
    for criterion in CRITERIA:
        ours = converged[criterion.name]
        ok = ours.median <= GOAL_CONVERGED_S and all(ours.met)
        label = f"{criterion.name}: converged answer in <= {GOAL_CONVERGED_S:.0f} s, every seed:"
        print(f"  {label:<52} {ours.median:6.2f} s, {ours.met.count(True)}/{len(ours.met)} converged  {verdict(ok)}")
    label = f"sweep of {len(sparsities)} sparsities in <= {GOAL_SWEEP_S:.0f} s:"
    print(f"  {label:<52} {ours_sweep:6.2f} s  {verdict(ours_sweep <= GOAL_SWEEP_S)}")
    for what, ours_s, _, met in long[:2]:
        label = f"{what.split(',')[0]}: {steps:,} steps <= {GOAL_LONG_S:.0f} s:"
        print(f"  {label:<52} {ours_s:6.2f} s  {verdict(met)}")
    label = f"/toy_sae defaults in <= {GOAL_SAE_EVENT_S:.0f} s:"
    event_s = statistics.median(sae_event.seconds)
    print(f"  {label:<52} {event_s:6.2f} s  {verdict(event_s <= GOAL_SAE_EVENT_S)}")
    print()
    print(f"whole run: {time.perf_counter() - begun:.0f} s (load average now {load_average():.2f})")


if __name__ == "__main__":
    main()
