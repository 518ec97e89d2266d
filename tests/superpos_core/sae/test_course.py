"""The course's SAE: its recipe, checks, and the fast trainer against the course's own loop."""

import numpy as np
import pytest
import torch

from superpos_core import sae

# --- builders (made here, never downloaded) --------------------------------------------------------


def superposed_activations(
    tokens: int = 64, d_in: int = 32, n_true: int = 24, active: int = 2, seed: int = 0
) -> torch.Tensor:
    """Token activations built from ``active`` of ``n_true`` unit directions each: more directions
    than dimensions, every token sparse in them. The data an SAE is for."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(n_true, d_in, generator=generator), dim=1)  # (n_true, d_in)
    codes = torch.zeros(tokens, n_true)
    for t in range(tokens):
        chosen = torch.randperm(n_true, generator=generator)[:active]
        codes[t, chosen] = torch.rand(active, generator=generator) + 0.5
    return codes @ directions  # (tokens, d_in)


def course_loop(x: torch.Tensor, config: sae.CourseSAEConfig) -> tuple[sae.SparseAutoencoder, list[float]]:
    """The course's training loop, verbatim in spirit: autograd, torch.optim.Adam, StepLR."""
    model = sae.SparseAutoencoder(x.shape[1], config.n_features, seed=config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step_size, gamma=config.lr_gamma)
    losses = []
    for _ in range(config.epochs):
        optimizer.zero_grad()
        loss = model.loss(x, config.l1_weight)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return model, losses


@pytest.mark.slow
def test_training_lowers_the_reconstruction_error():
    x = superposed_activations()
    result = sae.train_course_sae(x)
    untrained = sae.SparseAutoencoder(x.shape[1], 16, seed=0)
    with torch.no_grad():
        before = float(torch.nn.functional.mse_loss(untrained(x)[0], x))
    assert result.mse_before == pytest.approx(before, rel=1e-5)
    assert result.final_mse < 0.5 * before, (before, result.final_mse)
    assert result.loss_history[-1] < result.loss_history[0]


@pytest.mark.slow
def test_a_larger_l1_weight_gives_fewer_active_features():
    x = superposed_activations()
    l0 = [sae.train_course_sae(x, sae.CourseSAEConfig(l1_weight=w)).l0 for w in (0.0, 0.1, 0.3)]
    assert l0[0] > l0[1] > l0[2], l0


def test_same_seed_same_result_and_the_global_rng_is_left_alone():
    x = superposed_activations(tokens=20)
    config = sae.CourseSAEConfig(epochs=50, seed=4)
    rng_before = torch.random.get_rng_state()
    first, second = sae.train_course_sae(x, config), sae.train_course_sae(x, config)
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    np.testing.assert_array_equal(first.encoder_rows, second.encoder_rows)
    np.testing.assert_array_equal(first.feature_acts, second.feature_acts)
    np.testing.assert_array_equal(first.loss_history, second.loss_history)
    other = sae.train_course_sae(x, sae.CourseSAEConfig(epochs=50, seed=5))
    assert not np.array_equal(first.encoder_rows, other.encoder_rows)


def test_initial_weights_are_what_nn_linear_draws_after_manual_seed():
    with torch.random.fork_rng():
        torch.manual_seed(7)
        encoder, decoder = torch.nn.Linear(12, 5), torch.nn.Linear(5, 12)
    model = sae.SparseAutoencoder(12, 5, seed=7)
    for ours, theirs in ((model.encoder, encoder), (model.decoder, decoder)):
        assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)


def test_fast_training_matches_the_course_loop_with_autograd_and_torch_adam():
    x = superposed_activations(tokens=24, d_in=20)
    config = sae.CourseSAEConfig(n_features=8, l1_weight=0.05, learning_rate=3e-3, lr_step_size=40, epochs=120, seed=2)
    result = sae.train_course_sae(x, config)
    model, losses = course_loop(x, config)
    np.testing.assert_allclose(result.loss_history, losses, rtol=1e-5, atol=1e-7)
    for ours, theirs in zip(result.model.parameters(), model.parameters()):
        torch.testing.assert_close(ours, theirs.detach(), rtol=1e-5, atol=1e-6)


def test_result_measures_agree_with_the_trained_model():
    x = superposed_activations(tokens=30)
    result = sae.train_course_sae(x, sae.CourseSAEConfig(epochs=100))
    with torch.no_grad():
        reconstruction, codes = result.model(x)
    assert result.feature_acts.shape == (30, 16)
    np.testing.assert_allclose(result.feature_acts, codes.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(result.mean_activation, codes.numpy().mean(0), rtol=1e-5, atol=1e-7)
    assert result.l0 == pytest.approx(float((codes > 0).sum(1).float().mean()))
    assert result.final_mse == pytest.approx(float(((reconstruction - x) ** 2).mean()), rel=1e-5)
    assert result.encoder_rows.shape == (16, x.shape[1])
    np.testing.assert_array_equal(result.encoder_rows, result.model.encoder.weight.detach().numpy())
    assert result.loss_history.shape == result.mse_history.shape == (100,)
    assert (result.loss_history > result.mse_history).all()  # the L1 term is positive while features fire
    assert result.dead_features == int((codes.max(0).values <= 0).sum())


def test_without_l1_the_loss_is_the_reconstruction_error():
    result = sae.train_course_sae(superposed_activations(tokens=10), sae.CourseSAEConfig(l1_weight=0.0, epochs=20))
    np.testing.assert_array_equal(result.loss_history, result.mse_history)


def test_on_epoch_reports_progress_and_the_loss():
    calls = []
    result = sae.train_course_sae(
        superposed_activations(tokens=10),
        sae.CourseSAEConfig(epochs=25),
        on_epoch=lambda *a: calls.append(a),
        report_every=10,
    )
    assert [(epoch, total) for epoch, total, _ in calls] == [(10, 25), (20, 25), (25, 25)]
    assert [loss for *_, loss in calls] == pytest.approx([result.loss_history[e - 1] for e in (10, 20, 25)], rel=1e-6)


def test_accepts_numpy_and_double_activations():
    x = superposed_activations(tokens=8)
    from_numpy = sae.train_course_sae(x.double().numpy(), sae.CourseSAEConfig(epochs=10))
    from_tensor = sae.train_course_sae(x, sae.CourseSAEConfig(epochs=10))
    np.testing.assert_array_equal(from_numpy.encoder_rows, from_tensor.encoder_rows)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_features": 0}, "n_features"),
        ({"n_features": 4097}, "n_features"),
        ({"n_features": 2.5}, "n_features"),
        ({"n_features": True}, "n_features"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 5001}, "epochs"),
        ({"l1_weight": -0.1}, "l1_weight"),
        ({"l1_weight": float("nan")}, "l1_weight"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": float("inf")}, "learning_rate"),
        ({"lr_step_size": 0}, "lr_step_size"),
        ({"lr_gamma": 0.0}, "lr_gamma"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_validation_names_the_setting(changes, message):
    with pytest.raises(sae.SAEInputError, match=message):
        sae.train_course_sae(superposed_activations(tokens=4), sae.CourseSAEConfig(**changes))


def test_validation_messages_are_for_a_learner():
    with pytest.raises(sae.SAEInputError) as error:
        sae.CourseSAEConfig(n_features=5000).validated()
    assert (
        str(error.value) == "The number of SAE features (n_features) must be a whole number from 1 to 4,096; got 5000."
    )
    assert sae.CourseSAEConfig().validated() == sae.CourseSAEConfig()


@pytest.mark.parametrize(
    "activations, message",
    [
        (torch.zeros(0, 8), "no tokens"),
        (torch.zeros(8), "one row per token"),
        (torch.full((3, 4), float("nan")), "NaN"),
    ],
)
def test_unusable_activations_are_refused(activations, message):
    with pytest.raises(sae.SAEInputError, match=message):
        sae.train_course_sae(activations)
