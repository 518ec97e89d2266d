"""The MNIST asset builder: the shipped sample and provenance are what its recipe makes (no retraining here)."""

import gzip
import hashlib
import json
import pickle
from dataclasses import replace

import numpy as np
import pytest

from superpos_core import build_assets, mnist


def test_sha256_is_the_files_hex_digest(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"superposition")
    assert build_assets.sha256(path) == hashlib.sha256(b"superposition").hexdigest()


def test_the_shipped_sample_is_the_seeded_draw_the_builder_makes():
    # write_sample's selection, redone on MNIST's sizes: the positions shipped are the ones drawn.
    rng = np.random.default_rng(build_assets.SEED)
    train_idx = np.sort(rng.choice(60_000, build_assets.SAMPLE_TRAIN, replace=False))
    test_idx = np.sort(rng.choice(10_000, build_assets.SAMPLE_TEST, replace=False))
    with np.load(mnist.SAMPLE_PATH) as shipped:
        np.testing.assert_array_equal(shipped["train_index"], train_idx)
        np.testing.assert_array_equal(shipped["test_index"], test_idx)
        assert f"default_rng({build_assets.SEED})" in json.loads(str(shipped["provenance"]))["selection"]


def test_the_shipped_provenance_names_the_files_and_the_recipe_of_today():
    provenance = json.loads(mnist.PROVENANCE_PATH.read_text())
    assert provenance["sha256"] == build_assets.sha256(mnist.WEIGHTS_PATH)
    assert provenance["sample_sha256"] == build_assets.sha256(mnist.SAMPLE_PATH)
    recipe = mnist.TrainingRecipe(seed=provenance["seed"])  # what the builder would train with now
    assert (
        provenance["recipe"]["learning_rate"] == recipe.learning_rate
        and provenance["recipe"]["batch_size"] == recipe.batch_size
    )
    assert provenance["recipe"]["epochs"] == recipe.epochs == len(provenance["history"])
    assert provenance["test_accuracy"] == provenance["history"][-1]["test_accuracy"]
    assert provenance["reproduce"].startswith("python -m superpos_core.build_assets")


def numbered_splits(n_train: int, n_test: int) -> mnist.MnistSplits:
    """Digits whose first two pixels spell their own position, so a drawn sample can be traced back."""

    def digits(n: int) -> mnist.Digits:
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0], images[:, 0, 1] = np.arange(n) // 256, np.arange(n) % 256
        return mnist.Digits(images, np.arange(n, dtype=np.int64) % 10)

    return mnist.MnistSplits(digits(n_train), digits(n_test), source="numbered digits")


def test_write_sample_stores_the_drawn_digits_with_their_positions(tmp_path):
    data = numbered_splits(12_000, 2_500)
    provenance = build_assets.write_sample(data, tmp_path / "sample.npz", seed=3)
    sample = mnist.load_sample(tmp_path / "sample.npz")
    assert sample.provenance == provenance and provenance["data"].endswith("numbered digits")
    assert (len(sample.train), len(sample.test)) == (build_assets.SAMPLE_TRAIN, build_assets.SAMPLE_TEST)
    with np.load(tmp_path / "sample.npz") as stored:
        train_idx, test_idx = stored["train_index"], stored["test_index"]
        assert stored["train_labels"].dtype == np.uint8 and train_idx.dtype == np.uint16
    assert (np.diff(train_idx.astype(int)) > 0).all() and (
        np.diff(test_idx.astype(int)) > 0
    ).all()  # sorted, no repeats
    traced = sample.train.images[:, 0, 0].astype(int) * 256 + sample.train.images[:, 0, 1]
    np.testing.assert_array_equal(traced, train_idx)  # each image is the digit at its stored position
    np.testing.assert_array_equal(sample.test.labels, test_idx % 10)
    again = build_assets.write_sample(data, tmp_path / "again.npz", seed=3)
    assert again == provenance and build_assets.sha256(tmp_path / "again.npz") == build_assets.sha256(
        tmp_path / "sample.npz"
    )  # reproducible


def test_main_needs_a_source_and_refuses_a_pickle_of_the_wrong_size(tmp_path, capsys):
    with pytest.raises(SystemExit):
        build_assets.main(["--out", str(tmp_path)])
    assert "--mnist-pkl" in capsys.readouterr().err
    path = tmp_path / "mnist.pkl.gz"
    parts = tuple(
        (np.zeros((n, 784), np.float32), np.zeros(n, np.int64)) for n in (5, 1, 2)
    )  # the classic layout, too few digits
    with gzip.open(path, "wb") as handle:
        pickle.dump(parts, handle, protocol=2)
    with pytest.raises(SystemExit, match="expected 60,000 \\+ 10,000 digits, got 6 \\+ 2"):
        build_assets.main(["--mnist-pkl", str(path), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()  # nothing written before the data was checked


def test_main_with_mnist_sae_builds_the_sae_alone(tmp_path, monkeypatch):
    from superpos_core import mnist_sae

    built = []
    monkeypatch.setattr(mnist, "load_mnist_pickle", lambda path: numbered_splits(60_000, 10_000))
    monkeypatch.setattr(mnist_sae, "build", lambda data, out, recipe: built.append((len(data.train), out, recipe)))
    build_assets.main(
        ["--mnist-pkl", str(tmp_path / "mnist.pkl.gz"), "--out", str(tmp_path), "--mnist-sae", "--seed", "4"]
    )
    assert built == [(60_000, tmp_path, replace(mnist_sae.RECIPE, seed=4))]
    assert not (tmp_path / mnist.WEIGHTS_PATH.name).exists()  # the network is left as it is
