"""The general SAE trainer, on synthetic sparse data whose true directions are known."""

import numpy as np
import pytest
import torch

from superpos_core.sae import train
from superpos_core.sae.checks import SAEInputError

D_IN, N_TRUE = 8, 12  # 12 directions in 8 dimensions: superposed


@pytest.fixture(autouse=True)
def one_thread():
    """As the app runs (``--threads 1``): these tiny steps are all overhead, and a second thread only adds
    waiting (ten times slower on a busy two-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sparse_data(seed: int = 1, active: float = 1.5):
    """(true directions (N_TRUE, D_IN), a source of fresh batches): each sample is about ``active`` of the
    directions at once, each at a strength in [0.5, 1.5)."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(N_TRUE, D_IN, generator=generator), dim=1)

    def source(batch: int) -> torch.Tensor:
        on = torch.rand(batch, N_TRUE, generator=generator) < active / N_TRUE  # (batch, N_TRUE)
        strength = torch.rand(batch, N_TRUE, generator=generator) + 0.5
        return (on * strength) @ directions  # (batch, D_IN)

    return directions, source


def recovered(directions: torch.Tensor, sae: train.SAE, at: float = 0.95) -> int:
    """True directions with a latent whose decoder row points the same way (signed cosine ≥ ``at``)."""
    rows = torch.nn.functional.normalize(sae.W_dec.detach(), dim=1)  # (n_latents, D_IN)
    return int(((directions @ rows.T).amax(1) >= at).sum())


def config(**changes) -> train.SAETrainConfig:
    recipe = dict(d_in=D_IN, n_latents=24, penalty=0.5, k=2, steps=1000, batch_size=64, lr=1e-2, resample_every=200)
    return train.SAETrainConfig(**{**recipe, **changes})


@pytest.mark.slow  # about a second each: a thousand steps
@pytest.mark.parametrize("sparsity", ["l1", "topk"])
def test_it_recovers_the_true_directions(sparsity):
    directions, source = sparse_data()
    result = train.train_sae(source, config(sparsity=sparsity))
    assert recovered(directions, result.sae) >= 10  # of 12; the untrained SAE finds none
    assert recovered(directions, train.SAE(config(), torch.Generator().manual_seed(0))) == 0
    measured = train.evaluate(result.sae, source(2048))
    assert measured["explained_variance"] > 0.8
    if sparsity == "topk":
        assert measured["l0"] <= 2  # TopK: never more than k
    else:
        assert measured["l0"] < 4


def test_same_seed_same_weights_and_the_global_rng_is_left_alone():
    x = sparse_data()[1](512)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = train.train_sae(x, config(steps=200))
    assert torch.rand(1) == before  # training drew nothing from the global generator
    second = train.train_sae(x, config(steps=200))
    other = train.train_sae(x, config(steps=200, seed=1))
    for name, weight in first.sae.state_dict().items():
        torch.testing.assert_close(weight, second.sae.state_dict()[name], rtol=0, atol=0)
    assert not torch.equal(first.sae.W_dec, other.sae.W_dec)
    assert first.history.loss == second.history.loss


def test_the_progress_callback_moves_and_ends_at_the_last_step():
    calls = []
    result = train.train_sae(
        sparse_data()[1], config(steps=120), on_step=lambda *args: calls.append(args), report_every=25
    )
    assert [step for step, _, _ in calls] == [25, 50, 75, 100, 120]
    assert all(total == 120 for _, total, _ in calls)
    assert set(calls[0][2]) == {"loss", "mse", "l0", "lr"}
    assert result.history.step == [25, 50, 75, 100, 120] and len(result.history.loss) == 5


def test_resampling_revives_dead_latents():
    directions, source = sparse_data()
    result = train.train_sae(source, config(steps=200, resample_every=0))
    sae, x = result.sae, source(1024)
    with torch.no_grad():  # silence five latents for good: no input can make them fire
        sae.W_enc[:, :5] = 0
        sae.b_enc[:5] = -1
    assert train.dead_latents(sae.encode(x)) >= 5
    dead = torch.zeros(sae.config.n_latents, dtype=torch.bool)
    dead[:5] = True
    assert train.resample_dead_latents(sae, dead, x, torch.Generator().manual_seed(0)) == 5
    with torch.no_grad():
        fired = (sae.encode(x) > 0).any(0)  # (n_latents,)
    assert fired[:5].all()  # each resampled latent now fires on the inputs it was aimed at


def test_distinct_resampling_aims_each_dead_latent_at_a_different_input():
    # One huge outlier row among small ones: drawn in proportion to the error, nearly every draw is the outlier.
    x = torch.randn(256, D_IN, generator=torch.Generator().manual_seed(1)) * 0.01
    x[7] = 100.0
    picks = {}
    for distinct in (False, True):
        sae = train.SAE(config(resample_distinct=distinct), torch.Generator().manual_seed(0))
        dead = torch.zeros(sae.config.n_latents, dtype=torch.bool)
        dead[:6] = True
        train.resample_dead_latents(sae, dead, x, torch.Generator().manual_seed(0))
        directions = torch.nn.functional.normalize(sae.W_dec[:6].detach(), dim=1)  # (6, D_IN)
        picks[distinct] = len(torch.unique(directions.round(decimals=4), dim=0))
    assert picks[False] == 1  # all six latents copies of one direction: they would fire as duplicates
    assert picks[True] == 6


def test_training_resamples_latents_that_stay_silent():
    # One direction only: a strong penalty leaves most of the 24 latents with nothing to do, and they die.
    line = torch.nn.functional.normalize(torch.ones(1, D_IN), dim=1)
    x = torch.rand(2048, 1, generator=torch.Generator().manual_seed(0)) * line  # (2048, D_IN)
    never = train.train_sae(x, config(steps=600, resample_every=0, penalty=2.0))
    again = train.train_sae(x, config(steps=600, resample_every=100, dead_window=50, penalty=2.0))
    assert not never.history.resampled
    assert again.history.resampled and all(count > 0 for _, count in again.history.resampled)
    assert all(step <= 0.7 * 600 for step, _ in again.history.resampled)  # none in the last 30% of the steps


def test_explained_variance_is_taken_about_the_mean():
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0)) + 10  # a large mean
    assert train.explained_variance(x, x) == pytest.approx(1.0)
    assert train.explained_variance(x, x.mean(0).expand_as(x)) == pytest.approx(0.0, abs=1e-9)
    assert train.explained_variance(x, torch.zeros_like(x)) < 0  # worse than the mean


def test_l0_and_dead_latents():
    features = torch.tensor([[0.0, 1.0, 0.0, 2.0], [0.0, 0.5, 0.0, 0.0]])
    assert train.mean_l0(features) == 1.5 and train.dead_latents(features) == 2


def test_the_learning_rate_is_held_then_decays_to_zero():
    recipe = config(steps=100, lr=1e-2, lr_decay_fraction=0.2)
    rates = [train.learning_rate(recipe, step) for step in range(100)]
    assert rates[:80] == [1e-2] * 80 and rates[90] == pytest.approx(5e-3) and rates[-1] == pytest.approx(1e-2 / 20)
    assert rates[80:] == sorted(rates[80:], reverse=True)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(sparsity="l2"), "sparsity"),
        (dict(sparsity="topk", k=25), "k"),
        (dict(penalty=-1.0), "penalty"),
        (dict(lr=0.0), "learning rate"),
        (dict(steps=0), "steps"),
        (dict(lr_decay_fraction=1.5), "lr_decay_fraction"),
    ],
)
def test_unusable_settings_name_themselves(changes, message):
    with pytest.raises(SAEInputError, match=message):
        train.train_sae(torch.zeros(4, D_IN), config(**changes))


def test_data_of_the_wrong_shape_is_refused():
    with pytest.raises(SAEInputError, match=r"\(rows, 8\)"):
        train.train_sae(torch.zeros(4, 3), config(steps=1))
    with pytest.raises(SAEInputError, match=r"expected \(rows, 8\)"):
        train.train_sae(lambda batch: torch.zeros(batch, 3), config(steps=1))


def test_a_trained_sae_saves_in_saelens_format_and_loads_back_as_it_was(tmp_path):
    from superpos_core import sae as sae_package

    x = sparse_data()[1](512)
    trained = train.train_sae(x, config(steps=50)).sae
    folder = trained.save_saelens(tmp_path / "sae", "blocks.2.hook_resid_post", prepend_bos=True, context_size=64)
    loaded = sae_package.load_pretrained_sae(folder)
    assert (loaded.hook_name, loaded.layer, loaded.prepend_bos, loaded.context_size) == (
        "blocks.2.hook_resid_post",
        2,
        True,
        64,
    )
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), trained.encode(x))
        torch.testing.assert_close(loaded(x), trained(x)[0])
    assert loaded.cfg["superpos_recipe"]["n_latents"] == 24
    with pytest.raises(SAEInputError, match="TopK"):
        train.train_sae(x, config(steps=1, sparsity="topk")).sae.save_saelens(
            tmp_path / "k", "blocks.2.hook_resid_post"
        )


def reference_train_sae(x: torch.Tensor, recipe: train.SAETrainConfig) -> tuple[train.SAE, list[float]]:
    """train_sae as it was before its gradients were written out: SAE.loss, autograd and torch.optim.Adam."""
    generator = torch.Generator().manual_seed(recipe.seed)
    draw = lambda: x[torch.randint(x.shape[0], (recipe.batch_size,), generator=generator)]  # noqa: E731
    sae = train.SAE(recipe, generator)
    first = draw()
    with torch.no_grad():
        sae.b_dec.copy_(first.mean(0))
    optimizer = torch.optim.Adam(sae.parameters(), lr=recipe.lr)
    last_fired = torch.zeros(recipe.n_latents, dtype=torch.long)
    recent, losses = [], []
    for step in range(recipe.steps):
        batch = first if step == 0 else draw()
        for group in optimizer.param_groups:
            group["lr"] = train.learning_rate(recipe, step)
        loss, _, features = sae.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        with torch.no_grad():
            if recipe.sparsity == "topk":
                sae.W_dec.div_(sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))
            last_fired[(features > 0).any(0)] = step + 1
        recent = (recent + [batch])[-8:]
        if (step + 1) % recipe.resample_every == 0 and step + 1 <= recipe.resample_until * recipe.steps:
            dead = (step + 1 - last_fired) >= min(recipe.dead_window, step + 1)
            train.resample_dead_latents(sae, dead, torch.cat(recent), generator, optimizer)
            last_fired[dead] = step + 1
    return sae, losses


@pytest.mark.parametrize("sparsity", ["l1", "topk"])
def test_the_hand_written_step_trains_as_autograd_and_torch_adam_do(sparsity):
    # Data on one line, a strong penalty: latents die and are resampled, so that path is compared too.
    line = torch.nn.functional.normalize(torch.ones(1, D_IN), dim=1)
    x = torch.rand(2048, 1, generator=torch.Generator().manual_seed(0)) * line + 0.1 * sparse_data()[1](2048)
    recipe = config(sparsity=sparsity, steps=300, resample_every=60, dead_window=30, penalty=2.0)
    ours = train.train_sae(x, recipe, report_every=1)
    sae, losses = reference_train_sae(x, recipe)
    if sparsity == "l1":
        assert ours.history.resampled  # the comparison covers resampling
    for name, weight in sae.state_dict().items():
        torch.testing.assert_close(ours.sae.state_dict()[name], weight, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(ours.history.loss, losses, rtol=1e-5, atol=1e-7)


def test_saes_side_by_side_train_as_each_would_alone():
    # The same start and the same batches for every penalty: with no resampling (whose draws interleave with
    # the batches'), each SAE of the batched run is the one a run of its own makes, to float rounding.
    x = sparse_data()[1](4096)
    recipes = [config(penalty=p, steps=200, resample_every=0) for p in (0.05, 0.5, 2.0)]
    together = train.train_saes(x, recipes)
    for recipe, trained in zip(recipes, together):
        alone = train.train_sae(x, recipe)
        assert trained.config == recipe
        for name, weight in alone.sae.state_dict().items():
            torch.testing.assert_close(trained.sae.state_dict()[name], weight, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(trained.history.loss, alone.history.loss, rtol=1e-4)
    assert together[0].sae.W_dec.data_ptr() != together[1].sae.W_dec.data_ptr()  # each has weights of its own


def test_only_the_penalty_may_differ_side_by_side():
    with pytest.raises(SAEInputError, match="only in their penalty"):
        train.train_saes(np.zeros((10, D_IN)), [config(), config(steps=10)])
