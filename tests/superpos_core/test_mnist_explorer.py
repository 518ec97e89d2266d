from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from superpos_core import drawing
from superpos_core.mnist_explorer import LIVE_FIGURES, MnistExplorer, train_live
from tests import helpers


@pytest.fixture(scope="module")
def explorer():
    return MnistExplorer.shared("cpu")


def test_summary_contract(explorer):
    digits = explorer.sample.test
    result = explorer.analyse(helpers.digit_on_paper(digits.images[0]))
    summary = result.summary
    assert set(summary) == {"prediction", "probabilities", "activations", "effective_rank", "sae"}
    assert summary["prediction"] == digits.labels[0]
    assert len(summary["probabilities"]) == 10 and abs(sum(summary["probabilities"]) - 1) < 1e-4
    assert {k: len(v) for k, v in summary["activations"].items()} == {"fc1": 128, "fc2": 64, "fc3": 10}
    assert summary["effective_rank"] == {"fc1": 112, "fc2": 55}  # the shipped weights' ranks
    assert int(np.argmax(summary["activations"]["fc3"])) == summary["prediction"]
    sae = summary["sae"]
    assert 1 <= sae["l0"] == len(sae["features"]) <= explorer.sae.slots and 0.5 < sae["explained_variance"] <= 1
    strengths = [value for _index, value in sae["features"]]
    assert strengths == sorted(strengths, reverse=True) and all(isinstance(i, int) for i, _ in sae["features"])
    assert tuple(result.pictures) == tuple(LIVE_FIGURES)  # every live figure, in the table's order
    for image in result.pictures.values():
        assert image.dtype == np.uint8 and image.ndim == 3


@pytest.mark.slow
def test_reads_real_digits_drawn_as_pictures(explorer):
    digits = explorer.sample.test
    hits = sum(
        explorer.analyse(helpers.digit_on_paper(digits.images[i])).summary["prediction"] == digits.labels[i]
        for i in range(100)
    )
    assert hits >= 93


def test_sketchpad_value(explorer):
    gray = helpers.digit_on_paper(explorer.sample.test.images[7])
    value = {"background": None, "layers": [], "composite": helpers.as_canvas_rgba(gray)}
    assert explorer.analyse(value).summary["prediction"] == explorer.sample.test.labels[7]


@pytest.mark.slow
def test_threads_do_not_disturb_each_other(explorer):
    pictures = [helpers.digit_on_paper(explorer.sample.test.images[i]) for i in range(24)]
    alone = [explorer.analyse(p) for p in pictures]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(explorer.analyse, pictures))
    for a, b in zip(alone, together):
        assert a.summary == b.summary
        for name in LIVE_FIGURES:  # each thread drew on figures of its own
            np.testing.assert_array_equal(a.pictures[name], b.pictures[name], err_msg=name)


def test_bad_drawing_raises_drawing_error(explorer):
    with pytest.raises(drawing.DrawingError):
        explorer.analyse({"background": None, "layers": [], "composite": None})


def test_static_figures_and_table(explorer):
    assert set(explorer.static_figures) == {"weights", "neuron_weights", "spectrum", "concentration"}
    table = explorer.rank_table()
    assert [row[0] for row in table] == ["fc1", "fc2"]
    for _name, neurons, eff, ratio, reach, random_init in table:
        assert reach == eff + 1 and ratio == pytest.approx(eff / neurons, abs=1e-3)
        assert eff < random_init  # training concentrates the spectrum
    assert [label for _image, label in explorer.example_digits(10)] == list(range(10))


@pytest.mark.slow
def test_live_training_leaves_the_shipped_model_alone(explorer):
    before = {k: v.clone() for k, v in explorer.model.state_dict().items()}
    runs = list(train_live(epochs=1, seed=0))
    assert len(runs) == 1 and runs[0].train_size == 10_000
    assert runs[0].report.test_accuracy > 0.85
    for k, v in explorer.model.state_dict().items():
        assert (v == before[k]).all()


@pytest.mark.slow
def test_concurrent_training_runs_are_independent():
    solo = [run.report for run in train_live(epochs=1, seed=3)]
    with ThreadPoolExecutor(2) as pool:
        pair = list(pool.map(lambda seed: [run.report for run in train_live(epochs=1, seed=seed)], [3, 4]))
    assert pair[0] == solo  # a second user training at the same time changed nothing
    assert pair[1] != solo  # and a different seed really is a different run


def test_sae_feature_panels_are_lent_one_per_drawing_from_threads(explorer):
    pictures = [helpers.digit_on_paper(explorer.sample.test.images[i]) for i in range(12)]
    alone = [explorer.analyse(p).pictures["sae_features"] for p in pictures]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda p: explorer.analyse(p).pictures["sae_features"], pictures))
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)
    assert explorer._panels.count() <= 1 + 3  # the set built ahead, and at most one more per thread
    assert len({a.tobytes() for a in alone}) > 6  # the panel really follows each digit


def test_neurons_against_features_counts_every_unit(explorer):
    measured = explorer.concentration
    assert measured.neurons.shape == (128,) and measured.features.shape == (explorer.sae.sae.config.n_latents,)
    for which in ("neurons", "features"):
        assert 0 < measured.counted(which) and measured.chance < measured.median(which) <= 1
