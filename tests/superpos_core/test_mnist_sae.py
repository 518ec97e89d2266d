"""The SAE on SimpleNet's fc1: its measures, its reading of a digit, the bundled asset and how it is built."""

import json
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from superpos_core import build_assets, mnist, mnist_sae
from superpos_core.sae.train import SAE, SAETrainConfig


@pytest.fixture(scope="module")
def model():
    return mnist.load_simplenet()


@pytest.fixture(scope="module")
def bundled(model):
    return mnist_sae.MnistSAE.load(model, mnist.load_sample().test)


def test_class_concentration_counts_each_units_strongest_digits():
    labels = np.repeat(np.arange(10), 10)  # 100 digits, ten of each class
    activations = np.zeros((100, 3))
    activations[labels == 3, 0] = np.arange(1, 11)  # unit 0: only threes
    activations[:, 1] = np.arange(100, 0, -1)  # unit 1: strongest on the first digits, 0s then 1s
    activations[:4, 2] = 1.0  # unit 2: fires on 4 digits only
    shares = mnist_sae.class_concentration(activations, labels, top=10)
    assert shares[0] == 1.0 and shares[1] == 1.0  # the ten strongest of unit 1 are the ten zeros
    assert np.isnan(shares[2])  # too few to count
    shares = mnist_sae.class_concentration(activations, labels, top=20)
    assert np.isnan(shares[0]) and shares[1] == 0.5  # unit 0 fires on ten only; unit 1: ten 0s and ten 1s


def test_chance_concentration_is_what_random_digits_give():
    assert mnist_sae.chance_concentration(np.full(500, 4), top=20, draws=50) == 1.0
    spread = mnist_sae.chance_concentration(np.repeat(np.arange(10), 200), top=20, draws=500)
    assert 0.2 < spread < 0.35  # the most common of ten equal classes among 20 random digits


def test_explained_variance_is_taken_about_the_given_mean():
    x = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    mean = torch.tensor([2.0, 1.0])
    assert mnist_sae.explained_variance_about(x, mean.expand_as(x), mean) == 0.0  # predicting the mean
    assert mnist_sae.explained_variance_about(x, x, mean) == 1.0
    one = x[:1]
    assert mnist_sae.explained_variance_about(one, one * 0.5 + mean * 0.5, mean) == pytest.approx(0.75)


def test_feature_pictures_average_the_digits_a_feature_fires_on():
    images = np.stack([np.full((28, 28), v, np.uint8) for v in (0, 51, 102, 255)])  # four flat digits
    features = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [2.0, 0.0]])  # feature 1 never fires
    pictures = mnist_sae.feature_pictures(features, images, top=3)
    assert pictures.shape == (2, 28, 28)
    np.testing.assert_allclose(pictures[0], (102 + 255 + 51) / 3 / 255, rtol=1e-6)  # digits 2, 3, 1
    assert (pictures[1] == 0).all()  # blank paper
    pictures = mnist_sae.feature_pictures(features, images, top=4)
    np.testing.assert_allclose(pictures[0], (102 + 255 + 51) / 3 / 255, rtol=1e-6)  # digit 0 fires 0: left out


def test_top_digits_are_the_strongest_digits_themselves_at_half_size():
    images = np.zeros((4, 28, 28), np.uint8)
    for k in range(4):
        images[k, 2 * k : 2 * k + 2, :2] = 255  # digit k: one 2x2 block of ink, in row k of the halved picture
    features = np.array([[0.0, 5.0], [1.0, 0.0], [3.0, 0.0], [2.0, 0.0]])  # feature 1 fires on digit 0 alone
    shown = mnist_sae.top_digits(features, images, count=3)
    assert shown.shape == (2, 3, 14, 14)
    for slot, digit in enumerate((2, 3, 1)):  # feature 0's digits, strongest first
        expected = np.zeros((14, 14))
        expected[digit, 0] = 1.0
        np.testing.assert_allclose(shown[0, slot], expected)
    assert shown[1, 0, 0, 0] == 1.0 and (shown[1, 1:] == 0).all()  # fewer than 3 digits: blank after them


def test_reading_a_digit_lists_its_features_and_what_each_does(bundled, model):
    sample = mnist.load_sample().test
    firing = mnist_sae.fc1_firing(model, mnist.Digits(sample.images[:1], sample.labels[:1]))[0]  # (128,)
    reading = bundled.read(firing)
    values = [value for _index, value in reading.features]
    assert 1 <= reading.l0 <= bundled.slots and values == sorted(values, reverse=True) and min(values) > 0
    assert 0.5 < reading.explained_variance <= 1.0
    assert len(reading.votes_for) == len(reading.without) == reading.l0
    # The first feature's vote, redone by hand: the reconstruction without it, on through fc2 and fc3.
    with torch.no_grad():
        reconstruction, features = bundled.sae(firing[None])
        index, value = reading.features[0]
        assert float(features[0, index]) == pytest.approx(value)
        head = lambda h: model.fc3(torch.relu(model.fc2(h.clamp_min(0))))  # noqa: E731
        full, less = head(reconstruction)[0], head(reconstruction - value * bundled.sae.W_dec[index])[0]
    assert reading.votes_for[0] == int((full - less).argmax()) and reading.without[0] == int(less.argmax())
    summary = reading.summary()
    assert summary["l0"] == float(reading.l0) and summary["features"][0][0] == index
    assert set(summary) == {"l0", "explained_variance", "features"}


def test_the_features_pictures_are_the_test_digits_that_activate_them(bundled):
    sample = mnist.load_sample().test
    assert bundled.pictures.shape == (bundled.sae.config.n_latents, 28, 28)
    assert bundled.digit_features.shape == (len(sample), bundled.sae.config.n_latents)
    busiest = int((bundled.digit_features > 0).sum(0).argmax())
    strongest = np.argsort(-bundled.digit_features[:, busiest], kind="stable")[: mnist_sae.TOP_DIGITS]
    np.testing.assert_allclose(bundled.pictures[busiest], sample.images[strongest].mean(0) / 255, atol=1e-5)


def test_the_bundled_sae_is_what_its_provenance_says():
    provenance = json.loads(mnist_sae.SAE_PROVENANCE_PATH.read_text())
    assert provenance["sha256"] == build_assets.sha256(mnist_sae.SAE_PATH)
    assert provenance["network_sha256"] == build_assets.sha256(mnist.WEIGHTS_PATH)  # it reads the shipped network
    recipe = {name: value for name, value in asdict(mnist_sae.RECIPE).items() if name != "device"}
    assert provenance["recipe"] == recipe and provenance["seed"] == recipe["seed"]  # the recipe of today
    assert provenance["k_chosen_as"] == mnist_sae.K_CHOICE and provenance["data"].endswith(
        mnist.load_sample().provenance["data"].split("; ")[-1]
    )
    for split in ("train", "test"):
        measured = provenance[split]
        assert 0 < measured["explained_variance"] <= 1 and 0 < measured["l0"] <= recipe["k"]
        assert 0 <= measured["dead"] < recipe["n_latents"]
    assert provenance["reproduce"] == "python -m superpos_core.build_assets --mnist-pkl PATH/mnist.pkl.gz --mnist-sae"
    assert mnist_sae.SAE_PATH.stat().st_size < 3_000_000  # a few MB at most


def test_the_bundled_sae_scores_on_the_bundled_training_digits_what_it_scored_on_all_of_them(model, bundled):
    provenance = json.loads(mnist_sae.SAE_PROVENANCE_PATH.read_text())
    firing = mnist_sae.fc1_firing(model, mnist.load_sample().train)  # 10,000 of the 60,000 it was trained on
    measured = mnist_sae.measure(bundled.sae, firing, bundled.train_mean)
    assert measured["explained_variance"] == pytest.approx(provenance["train"]["explained_variance"], abs=0.02)
    assert measured["l0"] == pytest.approx(provenance["train"]["l0"], abs=0.3)
    stored = load_file(str(mnist_sae.SAE_PATH))["train_mean"]
    assert stored.shape == (128,) and float((stored - firing.mean(0)).abs().max()) < 0.1 * float(stored.abs().max())


def numbered_splits(n_train: int, n_test: int) -> mnist.MnistSplits:
    rng = np.random.default_rng(0)

    def digits(n: int) -> mnist.Digits:
        return mnist.Digits(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n, dtype=np.int64) % 10)

    return mnist.MnistSplits(digits(n_train), digits(n_test), source="random pixels")


def test_build_writes_an_sae_that_loads_and_a_provenance_that_names_it(tmp_path, model):
    recipe = replace(mnist_sae.RECIPE, n_latents=32, k=4, steps=30, batch_size=64, resample_every=10, dead_window=5)
    provenance = mnist_sae.build(numbered_splits(600, 200), tmp_path, recipe)
    weights, written = tmp_path / mnist_sae.SAE_PATH.name, tmp_path / mnist_sae.SAE_PROVENANCE_PATH.name
    assert json.loads(written.read_text()) == json.loads(json.dumps(provenance))
    assert provenance["sha256"] == build_assets.sha256(weights) and provenance["recipe"]["n_latents"] == 32
    assert {"explained_variance", "l0", "dead"} <= set(provenance["test"]) and provenance["test"]["l0"] <= 4
    digits = numbered_splits(600, 200).test
    loaded = mnist_sae.MnistSAE.load(model, digits, weights, written)
    assert loaded.pictures.shape == (32, 28, 28) and loaded.slots == 4


def test_an_sae_saved_by_build_reads_as_the_trained_one(tmp_path, model):
    recipe = replace(mnist_sae.RECIPE, n_latents=16, k=3, steps=10, batch_size=32, resample_every=0)
    mnist_sae.build(numbered_splits(300, 100), tmp_path, recipe)
    tensors = load_file(str(tmp_path / mnist_sae.SAE_PATH.name))
    sae = SAE(SAETrainConfig(**asdict(recipe)), torch.Generator().manual_seed(1))
    sae.load_state_dict({name: tensors[name] for name in ("W_enc", "b_enc", "W_dec", "b_dec")})
    digits = numbered_splits(300, 100).test
    loaded = mnist_sae.MnistSAE.load(
        model, digits, tmp_path / mnist_sae.SAE_PATH.name, tmp_path / mnist_sae.SAE_PROVENANCE_PATH.name
    )
    firing = mnist_sae.fc1_firing(model, digits)
    torch.testing.assert_close(loaded.encode(firing), sae.encode(firing))
