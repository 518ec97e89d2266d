import gzip
import hashlib
import json
import pickle

import numpy as np
import pytest
import torch

from superpos_core import mnist
from tests import helpers


def test_shipped_model_accuracy_on_bundled_test_digits():
    model = mnist.load_simplenet()
    assert mnist.accuracy(model, helpers.sample().test) >= 0.97


def test_provenance_matches_the_shipped_files():
    provenance = json.loads(mnist.PROVENANCE_PATH.read_text())
    assert provenance["sha256"] == hashlib.sha256(mnist.WEIGHTS_PATH.read_bytes()).hexdigest()
    assert provenance["sample_sha256"] == hashlib.sha256(mnist.SAMPLE_PATH.read_bytes()).hexdigest()
    assert provenance["test_accuracy"] >= 0.975  # on all 10,000 test digits
    assert provenance["recipe"]["batch_size"] == 64 and provenance["recipe"]["epochs"] == 5
    assert provenance["recipe"]["normalisation"] == {"mean": 0.1307, "std": 0.3081}
    assert "seed" in provenance and "reproduce" in provenance


def test_assets_stay_small():
    total = sum(p.stat().st_size for p in mnist.ASSETS.iterdir())
    assert total < 10 * 1024 * 1024


def test_bundled_sample_is_real_mnist_shaped():
    sample = helpers.sample()
    assert sample.train.images.shape == (10_000, 28, 28) and sample.test.images.shape == (2_000, 28, 28)
    assert sample.train.images.dtype == np.uint8
    assert set(np.unique(sample.test.labels)) == set(range(10))
    assert "MNIST" in sample.provenance["data"]


def test_pickle_loader_reads_the_classic_format(tmp_path):
    # The classic mnist.pkl.gz layout: three (x, y) pairs, x float32 bytes/256, latin1 pickle.
    rng = np.random.default_rng(0)
    parts = []
    for n in (6, 4, 3):
        raw = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
        parts.append((raw.astype(np.float32) / 256, rng.integers(0, 10, n)))
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as handle:
        pickle.dump(tuple(parts), handle, protocol=2)
    splits = mnist.load_mnist_pickle(path)
    assert len(splits.train) == 10 and len(splits.test) == 3  # train + validation = training digits
    np.testing.assert_array_equal(splits.train.images[:6].reshape(6, 784), np.round(parts[0][0] * 256))
    np.testing.assert_array_equal(splits.test.labels, parts[2][1])


class RunsCode:
    """A pickle that would call a function while being read: os.getcwd stands in for anything worse."""

    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_pickle_loader_refuses_anything_but_arrays(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as handle:
        pickle.dump(((RunsCode(), None), None, None), handle, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="posix.getcwd is not allowed|os.getcwd is not allowed"):
        mnist.load_mnist_pickle(path)


def test_fresh_simplenet_is_pytorch_default_init():
    torch.manual_seed(3)
    reference = mnist.SimpleNet()
    ours = mnist.fresh_simplenet(3)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value)


def test_save_and_load_round_trip(tmp_path):
    model = mnist.fresh_simplenet(1)
    mnist.save_simplenet(model, tmp_path / "w.safetensors")
    loaded = mnist.load_simplenet(tmp_path / "w.safetensors")
    x = torch.randn(4, 784)
    torch.testing.assert_close(loaded(x), model(x))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_training_learns_and_is_reproducible():
    sample = helpers.sample()
    train = mnist.Digits(sample.train.images[:2000], sample.train.labels[:2000])
    test = mnist.Digits(sample.test.images[:500], sample.test.labels[:500])
    recipe = mnist.TrainingRecipe(epochs=2, seed=5)
    runs = [[report for _model, report in mnist.train_epochs(train, test, recipe)] for _ in range(2)]
    assert runs[0] == runs[1]  # same seed, same numbers
    first, last = runs[0]
    assert last.loss < first.loss
    assert last.test_accuracy > 0.8
    assert 0 < last.effective_rank["fc1"] <= 128 and 0 < last.effective_rank["fc2"] <= 64


def test_missing_full_mnist_is_none(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERPOS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SUPERPOS_MNIST_PKL", raising=False)
    assert mnist.find_full_mnist() is None


def test_reference_class_means():
    model = mnist.load_simplenet()
    digits = helpers.sample().test
    ref = mnist.reference_activations(model, digits)
    assert ref.activations["fc1"].shape == (2000, 128)
    assert ref.class_means["relu1"].shape == (10, 128)
    assert (ref.activations["relu1"] >= 0).all()
    np.testing.assert_allclose(
        ref.class_means["relu2"][4], ref.activations["relu2"][digits.labels == 4].mean(0), rtol=1e-5
    )


def synthetic_reference() -> mnist.Reference:
    """Four digits of two classes and three neurons, with firing counted by hand."""
    relu1 = np.array(
        [[1.0, 0.0, 0.0], [2.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.6, 3.0, 0.0]]
    )  # (4 digits, 3 neurons); neuron 2 never fires
    labels = np.array([0, 0, 1, 1])
    means = np.stack([relu1[labels == c].mean(0) for c in range(2)])  # [[1.5, .25, 0], [.3, 2, 0]]
    return mnist.Reference({"relu1": relu1}, labels, {"relu1": means})


def test_reference_counts_firing_silent_and_multi_class_neurons():
    reference = synthetic_reference()
    assert reference.typical_firing("relu1") == 1.5  # the digits fire 1, 2, 1, 2 neurons: median 1.5
    assert reference.silent_neurons("relu1") == 1
    # Neuron 0 peaks at 1.5 (class 0); class 1 reaches 0.3 = 20% of it. Neuron 1 peaks at 2; class 0 gives 12.5%.
    assert reference.multi_class_neurons("relu1") == 0
    assert (
        reference.multi_class_neurons("relu1", level=0.15) == 1
    )  # neuron 0 now counts on both classes; the silent one never does
    assert reference.multi_class_neurons("relu1", level=0.1) == 2


def test_training_reports_every_batch():
    sample = helpers.sample()
    train = mnist.Digits(sample.train.images[:300], sample.train.labels[:300])  # 5 batches of 64, the last of 44
    test = mnist.Digits(sample.test.images[:100], sample.test.labels[:100])
    calls = []
    reports = list(
        mnist.train_epochs(train, test, mnist.TrainingRecipe(epochs=2), on_batch=lambda *call: calls.append(call))
    )
    assert calls == [(epoch, done, 5) for epoch in (1, 2) for done in range(1, 6)]
    assert len(reports) == 2
