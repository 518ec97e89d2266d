import numpy as np
import pytest
import torch

from superpos_core import toy, toy_sae
from superpos_core.sae import train as sae_train

# The tab's defaults: the pentagon, five features in two dimensions.
PENTAGON = toy.ToyConfig(n_features=5, m_hidden=2, sparsity=0.99, importance_decay=1.0, steps=1000, seed=0)


@pytest.fixture(scope="module", autouse=True)
def one_thread():  # module-wide: the pentagon below trains with it too
    """As the app runs (``--threads 1``): a toy model's steps are all overhead, and a second thread only adds waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pentagon() -> toy.ToyResult:
    return toy.train(PENTAGON)


def test_the_defaults_recover_every_pentagon_feature(pentagon):
    reports = []
    graded = toy_sae.train_toy_sae(pentagon, on_step=lambda done, total: reports.append((done, total)))
    assert graded.config.latents == 10  # 2n by default
    assert graded.recovered == 5 and min(graded.matched_cosine) >= toy_sae.RECOVERED_AT
    assert len(set(graded.partner.tolist())) == 5  # one latent per feature
    assert graded.explained_variance > 0.5 and graded.true_l0 == pytest.approx(0.05, abs=0.01)
    assert reports[-1] == (graded.config.steps, graded.config.steps) and 40 <= len(reports) <= 70
    summary = graded.summary()
    assert summary["recovered"] == 5 and isinstance(summary["recovered"], int) and isinstance(summary["dead"], int)
    assert np.shape(summary["cosines"]) == (5, 10) and len(summary["matched_cosine"]) == 5
    assert all(isinstance(summary[key], float) for key in ("explained_variance", "l0", "true_l0"))


@pytest.mark.slow
def test_most_seeds_recover_the_pentagon(pentagon):
    found = [toy_sae.train_toy_sae(pentagon, toy_sae.ToySAEConfig(seed=seed)).recovered for seed in range(1, 6)]
    assert sum(count == 5 for count in found) >= 4, found


@pytest.mark.slow
def test_twenty_features_in_ten_dimensions():
    model = toy.train(toy.ToyConfig(n_features=20, m_hidden=10, sparsity=0.95, steps=1000, seed=0))
    graded = toy_sae.train_toy_sae(model)
    assert graded.recovered >= 19, graded.matched_cosine


def test_the_signed_matching_refuses_an_antipodal_partner():
    angles = 2 * np.pi * np.arange(5) / 5
    W = np.stack([np.cos(angles), np.sin(angles)])  # (2, 5): a pentagon of unit features
    W_dec = np.concatenate([W.T, np.zeros((3, 2))])  # (8, 2): a latent on each feature, three empty ones
    W_dec[0] *= -1  # latent 0 now points at -W₀
    cosines = toy_sae.cosine_matrix(W, W_dec)
    partner, matched = toy_sae.match_features(cosines)
    assert matched[0] < toy_sae.RECOVERED_AT and toy_sae.recovered(matched) == 4
    assert np.allclose(matched[1:], 1.0) and list(partner[1:]) == [1, 2, 3, 4]
    _, unsigned = toy_sae.match_features(np.abs(cosines))  # with |cos| the antipodal latent would pass
    assert toy_sae.recovered(unsigned) == 5


def test_the_matching_is_one_to_one():
    W = np.eye(2)[:, [0, 0, 1]]  # (2, 3): features 0 and 1 share a direction
    W_dec = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    partner, matched = toy_sae.match_features(toy_sae.cosine_matrix(W, W_dec))
    assert sorted(partner.tolist()) == [0, 1, 2]  # only one of the twins gets latent 0
    assert toy_sae.recovered(matched) == 2


def test_explained_variance_is_zero_for_predicting_the_mean():
    h = toy_sae.hidden_source(np.array([[1.0, 0.3], [0.2, 1.0]]), 0.5, torch.Generator().manual_seed(0))(4096)
    mean = h.mean(0).expand_as(h)  # (N, m): every vector read back as the mean
    assert sae_train.explained_variance(h, mean) == pytest.approx(0.0, abs=1e-9)
    assert sae_train.explained_variance(h, h) == pytest.approx(1.0)
    assert sae_train.explained_variance(h, torch.zeros_like(h)) < 0  # about 0 instead, zeros would score above 0


def test_the_data_is_the_toy_models():
    x = toy_sae.sample_features(8, 0.9, 50_000, torch.Generator().manual_seed(0))  # (N, 8)
    assert x.min() >= 0 and x.max() < 1
    assert (x > 0).float().mean() == pytest.approx(0.1, abs=0.005)  # present with probability 1 - S
    assert x[x > 0].mean() == pytest.approx(0.5, abs=0.01)  # uniform in [0, 1] when present


@pytest.mark.parametrize(
    "config, message",
    [
        (toy_sae.ToySAEConfig(latents=4), "at least one latent per true feature"),
        (toy_sae.ToySAEConfig(latents=toy_sae.MAX_LATENTS + 1), "at most"),
        (toy_sae.ToySAEConfig(penalty=-0.1), "penalty"),
        (toy_sae.ToySAEConfig(penalty=float("nan")), "penalty"),
        (toy_sae.ToySAEConfig(steps=0), "SAE steps"),
        (toy_sae.ToySAEConfig(seed=-1), "SAE seed"),
    ],
)
def test_unusable_settings_are_named(config, message):
    with pytest.raises(toy.ToyInputError, match=message):
        config.checked(5)


def test_the_sweep_trains_one_sae_per_penalty(pentagon):
    reports = []
    swept = toy_sae.penalty_sweep(
        pentagon, toy_sae.ToySAEConfig(steps=200), penalties=(0.01, 0.1), on_step=lambda d, t: reports.append((d, t))
    )
    assert [r.config.penalty for r in swept.results] == [0.01, 0.1]
    assert reports[-1] == (200, 200) and reports == sorted(reports)  # one batched run, one bar
    summary = swept.summary()
    assert summary["penalties"] == [0.01, 0.1] and len(summary["recovered"]) == len(summary["explained_variance"]) == 2


def test_the_sweep_shows_a_better_reconstruction_is_not_the_right_features(pentagon):
    # The course's lesson, on the pentagon: a weak penalty reconstructs almost perfectly with the wrong latents.
    weak, strong = toy_sae.penalty_sweep(pentagon, penalties=(0.01, 0.3)).results
    assert weak.explained_variance > 0.99 > strong.explained_variance
    assert weak.recovered < 5 == strong.recovered
