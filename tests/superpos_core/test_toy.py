import numpy as np
import pytest
import torch

from superpos_core import toy
from tests.contracts import summary_keys


def neighbour_angles(W: np.ndarray) -> np.ndarray:
    angles = np.sort(np.degrees(np.arctan2(W[1], W[0])) % 360)
    return np.diff(np.r_[angles, angles[0] + 360])


def test_dense_features_keep_the_most_important_two():
    result = toy.train(toy.ToyConfig(n_features=5, m_hidden=2, sparsity=0.0, importance_decay=0.9))
    norms = result.feature_norms
    assert (norms[:2] >= 0.9).all(), norms
    assert (norms[2:] <= 0.1).all(), norms
    assert result.features_per_dimension == pytest.approx(1.0, abs=0.15)


def test_sparse_equal_features_form_a_pentagon():
    result = toy.train(toy.ToyConfig(n_features=5, m_hidden=2, sparsity=0.99, importance_decay=1.0))
    assert (result.feature_norms >= 0.9).all(), result.feature_norms
    np.testing.assert_allclose(neighbour_angles(result.W), 72.0, atol=5.0)
    np.testing.assert_allclose(result.dimensionality, 0.4, atol=0.03)


def test_same_seed_same_model():
    config = toy.ToyConfig(n_features=4, m_hidden=2, sparsity=0.5, steps=200, seed=3)
    np.testing.assert_array_equal(toy.train(config).W, toy.train(config).W)


def unit_columns(angles_deg):
    radians = np.radians(angles_deg)
    return np.stack([np.cos(radians), np.sin(radians)])


@pytest.mark.parametrize(
    "W, dimensionality, interference, per_dimension",
    [
        (np.eye(2), [1, 1], [0, 0], 1.0),  # each feature on its own axis
        (np.array([[1.0, -1.0]]), [0.5, 0.5], [1, 1], 2.0),  # an antipodal pair in one dimension
        (unit_columns([0, 72, 144, 216, 288]), [0.4] * 5, [1.5] * 5, 2.5),  # the pentagon
        (np.array([[1.0, 0.0], [0.0, 0.0]]), [1, 0], [0, 0], 0.5),  # a dropped feature
    ],
)
def test_measures_on_hand_made_weights(W, dimensionality, interference, per_dimension):
    np.testing.assert_allclose(toy.feature_dimensionality(W), dimensionality, atol=1e-9)
    np.testing.assert_allclose(toy.interference(W), interference, atol=1e-9)
    assert toy.features_per_dimension(W) == pytest.approx(per_dimension)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_features": 0}, "features n"),
        ({"m_hidden": 0}, "hidden dimensions m"),
        ({"n_features": 65}, "features n"),
        ({"sparsity": 1.0}, "Sparsity"),
        ({"sparsity": float("nan")}, "Sparsity"),
        ({"importance_decay": 0.0}, "Importance decay"),
        ({"steps": 0}, "at least 1"),
    ],
)
def test_out_of_range_controls_say_why(changes, message):
    with pytest.raises(toy.ToyInputError, match=message):
        toy.train(toy.ToyConfig(**changes))


def test_excessive_requests_are_clamped():
    config, notes = toy.ToyConfig(steps=10**9, sparsity=0.9999).checked()
    assert config.steps == toy.MAX_STEPS and config.sparsity == toy.MAX_SPARSITY
    assert len(notes) == 2 and "capped" in notes[1]


def test_more_dimensions_than_features_is_fine():
    result = toy.train(toy.ToyConfig(n_features=3, m_hidden=5, sparsity=0.0, steps=600))
    assert (result.feature_norms >= 0.9).all()
    np.testing.assert_allclose(result.dimensionality, 1.0, atol=0.05)


@pytest.mark.slow
def test_sweep_shows_the_phase_change():
    results = toy.sweep(toy.ToyConfig(n_features=5, m_hidden=2, importance_decay=0.9))
    assert len(results) == 20
    sparsities = [r.config.sparsity for r in results]
    assert sparsities == sorted(sparsities) and sparsities[0] == 0.0
    kept = [toy.represented(r.W) for r in results]
    assert kept[0] == 2  # dense: as many features as dimensions
    assert max(kept[-3:]) == 5 and min(kept[-3:]) >= 4  # sparse: (nearly) all five, in two dimensions
    assert results[-1].features_per_dimension > 2


def test_summary_contract():
    summary = toy.train(toy.ToyConfig(steps=100)).summary()
    assert set(summary) == summary_keys("/toy")
    assert isinstance(summary["represented"], int) and isinstance(summary["superposition"], bool)
    assert len(summary["feature_norms"]) == len(summary["dimensionality"]) == 5
    assert isinstance(summary["loss"], float) and isinstance(summary["m"], int)


def _unit_arrows(angles) -> np.ndarray:
    return np.stack([np.cos(angles), np.sin(angles)])  # (2, n)


def test_a_projection_spread_over_every_feature_is_not_superposition():
    """Dense, equally important features: WᵀW is a rank-2 projection spread over all five features.
    Norms above 0.5 count four or five 'kept', but nothing is packed: 2 dimensions hold 2 features' worth."""
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 2)))[0].T  # (2, 5) orthonormal rows
    np.testing.assert_allclose(np.linalg.eigvalsh(basis.T @ basis), [0, 0, 0, 1, 1], atol=1e-12)
    assert toy.features_per_dimension(basis) == pytest.approx(1.0) and not toy.in_superposition(basis)
    assert toy.in_superposition(_unit_arrows(2 * np.pi * np.arange(5) / 5))  # a pentagon: 2.5 per dimension
    assert not toy.in_superposition(np.eye(2, 5))  # two kept on their own axes, three dropped


@pytest.mark.slow
def test_trained_dense_equal_features_are_not_called_superposition():
    dense = toy.train(toy.ToyConfig(sparsity=0.0, importance_decay=1.0))
    assert toy.represented(dense.W) > dense.config.m_hidden  # the count alone would have said "superposition"
    assert dense.features_per_dimension < 1.05 and dense.summary()["superposition"] is False
    pentagon = toy.train(toy.ToyConfig(sparsity=0.99))
    assert pentagon.summary()["superposition"] is True and pentagon.summary()["represented"] == 5
    assert 3.3 < pentagon.features_per_dimension < 3.45  # not 2.5: kept features grow to norm ~1.16 (docstring)
    assert np.all(pentagon.feature_norms > 1.1)


def reference_train(configs: list[toy.ToyConfig]):
    """The trainer as it was written before its gradients were: autograd, torch.optim.Adam and LambdaLR."""
    first = configs[0]
    batch = toy._init(configs, torch.Generator().manual_seed(first.seed), torch.device("cpu"))
    rng = toy._data_generator(first.seed)
    optimizer = torch.optim.Adam([batch.W, batch.b], lr=first.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / first.steps)
    for _ in range(first.steps):
        loss = toy._per_instance_loss(batch, toy._sample(batch, first.batch_size, rng)).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        final = toy._per_instance_loss(batch, toy._sample(batch, 8 * first.batch_size, rng))
    return batch.W.detach().numpy(), batch.b.detach().numpy(), final.numpy()


def test_the_hand_written_step_trains_as_autograd_and_torch_adam_do():
    # A sweep-like batch: instances with different sparsities and importances, several steps of each.
    base = toy.ToyConfig(n_features=5, m_hidden=2, steps=300, seed=7, batch_size=256, importance_decay=0.9)
    configs = [toy._replace(base, sparsity=s) for s in (0.0, 0.7, 0.99) for _ in range(2)]
    fast = toy.train_instances(configs)
    reference = reference_train(configs)
    for ours, theirs in zip(fast, reference):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
