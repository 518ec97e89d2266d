import gradio as gr
import numpy as np
import pytest
import torch

from demos import toy as toy_tab
from demos import toy_sae as toy_sae_tab
from superpos_core import toy
from tests.contracts import summary_keys


@pytest.mark.slow
def test_main_event_returns_the_summary_first():
    shown = toy_tab.train_toy(5, 2, 0.99, 1.0, 300, 0, progress=lambda *a, **k: None)
    assert tuple(shown) == toy_tab.TRAINED  # by name, the JSON summary first: the /toy API's order of outputs
    summary, status, arrows, hint = shown["summary"], shown["status"], shown["arrows"], shown["arrows_hint"]
    images = [shown["gram"], shown["bars"], shown["dimensionality"]]
    assert summary["n_features"] == 5 and summary["m"] == 2
    assert "features" in status and summary["superposition"] is ("**Superposition**" in status)
    assert all(image.ndim == 3 for image in images)
    assert arrows["visible"] is True and hint["visible"] is False


def test_arrows_only_for_two_dimensions():
    shown = toy_tab.train_toy(4, 3, 0.5, 1.0, 100, 0, progress=lambda *a, **k: None)
    assert shown["arrows"]["visible"] is False and shown["arrows_hint"]["visible"] is True


@pytest.mark.parametrize(
    "args",
    [
        (0, 2, 0.5, 1, 100, 0),
        (5, 0, 0.5, 1, 100, 0),
        (5, 2, 1.0, 1, 100, 0),
        (5.5, 2, 0.5, 1, 100, 0),
        (5, 2, "x", 1, 100, 0),
    ],
)
def test_bad_controls_are_clear_errors(args):
    with pytest.raises(gr.Error):
        toy_tab.train_toy(*args, progress=lambda *a, **k: None)


def test_log_sparsity_slider():
    assert toy_tab._log_sparsity(0) == 0.0
    assert toy_tab._log_sparsity(2) == 0.99
    assert toy_tab._log_sparsity(3) == 0.999


@pytest.mark.slow
def test_sweep_summary():
    swept = toy_tab.sweep_toy(5, 2, 0.9, 300, 0, progress=lambda *a, **k: None)
    assert tuple(swept) == toy_tab.SWEPT
    summary, image = swept["sweep_summary"], swept["sweep_plot"]
    assert (
        len(summary["sparsity"])
        == len(summary["represented"])
        == len(summary["features_per_dimension"])
        == len(summary["superposition"])
        == 20
    )
    assert summary["superposition"] == [v > 1.1 for v in summary["features_per_dimension"]]
    assert image.ndim == 3


@pytest.mark.slow
def test_dense_equal_features_are_not_called_superposition():
    shown = toy_tab.train_toy(5, 2, 0.0, 1.0, 1000, 0, progress=lambda *a, **k: None)
    summary, status = shown["summary"], shown["status"]
    assert summary["represented"] > 2 and summary["superposition"] is False
    assert (
        status.startswith("**No superposition**")
        and "only partly stored" in status
        and "that is superposition" not in status
    )
    shown = toy_tab.train_toy(5, 2, 0.99, 1.0, 1000, 0, progress=lambda *a, **k: None)
    summary, status = shown["summary"], shown["status"]
    assert summary["superposition"] is True and status.startswith("**Superposition**") and "5 of 5 features" in status


def test_the_arrows_note_says_when_two_arrows_stand_at_right_angles():
    assert "r < 1" in toy_tab.NOTES["arrows"] and "r = 1" in toy_tab.NOTES["arrows"]
    assert "3.4" in toy_tab.NOTES["dimensionality"] and "2.5" in toy_tab.NOTES["dimensionality"]


def test_the_s_box_moves_the_slider_and_back():
    for level in (0, 0.5, 1, 2, 2.5, 3):
        assert toy_tab.sparsity_to_level(toy_tab._log_sparsity(level)) == pytest.approx(level, abs=1e-3)
    assert toy_tab.sparsity_to_level(0.995) == pytest.approx(2.301, abs=1e-3)
    assert toy_tab.sparsity_to_level(0.99999) == 3.0  # sparser than the slider reaches: it stops at its end
    for unusable in ("", "0.9.", None, 1.0, 1.5, -0.1, float("nan")):
        assert isinstance(toy_tab.sparsity_to_level(unusable), type(gr.skip()))  # the slider stays where it is


def test_an_error_line_names_the_control():
    assert toy_tab.error_line(5, 2, 1.5, 1.0, 100, 0).startswith("⚠️ **Not trained**: Sparsity")
    assert "Features n" in toy_tab.error_line("x", 2, 0.5, 1.0, 100, 0)
    assert "hidden dimensions m" in toy_tab.error_line(5, 0, 0.5, 1.0, 100, 0)
    assert toy_tab.error_line(5, 2, 0.0, 2.0, 100, 0, what="The sweep did not run").startswith(
        "⚠️ **The sweep did not run**: Importance decay"
    )


@pytest.mark.slow
def test_the_opening_model_is_kept_per_device_and_copied_out():
    toy_tab.start_opening(torch.device("cpu"))
    seen = []
    opened = toy_tab.opening_result(torch.device("cpu"), progress=lambda fraction, desc: seen.append((fraction, desc)))
    summary, status, arrows = opened["summary"], opened["status"], opened["arrows"]
    assert all(
        desc.startswith(("Training", "Step", "Drawing")) for _, desc in seen
    )  # a visitor who waited saw the training's own progress
    assert summary["superposition"] is True and "5 of 5 features" in status and arrows["visible"] is True
    arrows["visible"] = False  # gradio may change what it is handed
    again = toy_tab.opening_result(torch.device("cpu"))
    assert again["arrows"]["visible"] is True and again["summary"] == summary
    assert (summary["n_features"], summary["m"], summary["sparsity"]) == (
        toy_tab.DEFAULTS["n"],
        toy_tab.DEFAULTS["m"],
        toy_tab.DEFAULTS["sparsity"],
    )


def test_training_reports_about_fifty_times_and_at_the_end():
    calls = []
    toy.train(toy.ToyConfig(steps=130), on_step=lambda done, total: calls.append(done))
    assert calls[-1] == 130 and 40 <= len(calls) <= 70 and calls == sorted(calls)


def test_the_network_view_follows_n_and_m():
    page = toy_tab.network_html(6, 3)
    assert "(1, 3)" in page and "24 parameters" in page and "◀ shown" in page
    assert "Features n" in toy_tab.network_html(0, 3)


def quiet(*args, **kwargs):
    return None


@pytest.fixture
def one_thread():
    """As the app runs (``--threads 1``): the SAE's steps are all overhead, and a second thread only adds waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_the_sae_event_returns_its_summary_first():
    seen = []
    shown = toy_sae_tab.train_toy_sae(
        toy_tab.read_controls,
        5,
        2,
        0.99,
        1.0,
        300,
        0,
        None,
        0.1,
        500,
        0,
        progress=lambda f, desc: seen.append((f, desc)),
    )
    assert tuple(shown) == toy_sae_tab.TRAINED  # by name, the JSON summary first: the /toy_sae API's order of outputs
    summary, status = shown["sae_summary"], shown["sae_status"]
    assert set(summary) == summary_keys("/toy_sae") and summary["latents"] == 10  # empty latents: 2n
    assert f"Recovered {summary['recovered']} of 5 features" in status and "explained variance" in status
    assert shown["sae_cosines"].ndim == 3 and shown["sae_directions"]["visible"] is True
    assert shown["sae_directions_hint"]["visible"] is False
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # one bar, toy model then SAE, never going back
    assert any(desc.startswith("Toy model: step") for _, desc in seen) and any(
        desc.startswith("SAE: step") for _, desc in seen
    )


@pytest.mark.usefixtures("one_thread")
def test_the_sae_directions_only_for_two_dimensions():
    shown = toy_sae_tab.train_toy_sae(toy_tab.read_controls, 4, 3, 0.9, 1.0, 100, 0, 8, 0.1, 100, 0, progress=quiet)
    assert shown["sae_directions"]["visible"] is False and shown["sae_directions_hint"]["visible"] is True
    assert np.shape(shown["sae_summary"]["cosines"]) == (4, 8)


@pytest.mark.parametrize(
    "sae_controls, message",
    [
        ((4, 0.1, 500, 0), "at least one latent per true feature"),
        ((2.5, 0.1, 500, 0), "SAE latents"),
        ((10, -1, 500, 0), "penalty"),
        ((10, "x", 500, 0), "Sparsity penalty"),
        ((10, 0.1, 0, 0), "SAE steps"),
        ((10, 0.1, 500, -1), "SAE seed"),
    ],
)
def test_bad_sae_controls_are_clear_errors(sae_controls, message):
    with pytest.raises(gr.Error, match=message):
        toy_sae_tab.train_toy_sae(toy_tab.read_controls, 5, 2, 0.99, 1.0, 100, 0, *sae_controls, progress=quiet)
    line = toy_sae_tab.error_line(toy_tab.read_controls, 5, 2, 0.99, 1.0, 100, 0, *sae_controls)
    assert line.startswith("⚠️ **No SAE trained**") and message in line


def test_a_bad_toy_control_stops_the_sae_with_the_toy_tabs_message():
    with pytest.raises(gr.Error, match="Sparsity"):
        toy_sae_tab.train_toy_sae(toy_tab.read_controls, 5, 2, 1.5, 1.0, 100, 0, 10, 0.1, 500, 0, progress=quiet)
    sweep_line = toy_sae_tab.error_line(
        toy_tab.read_controls, 0, 2, 0.99, 1.0, 100, 0, 10, 500, 0, what="The sweep did not run"
    )
    assert sweep_line.startswith("⚠️ **The sweep did not run**") and "features n" in sweep_line


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_the_penalty_sweep_summary():
    swept = toy_sae_tab.sweep_toy_sae(toy_tab.read_controls, 5, 2, 0.99, 1.0, 300, 0, None, 300, 0, progress=quiet)
    assert tuple(swept) == toy_sae_tab.SWEPT
    summary = swept["sae_sweep_summary"]
    assert set(summary) == summary_keys("/toy_sae_sweep")
    assert len(summary["penalties"]) == len(summary["recovered"]) == len(summary["explained_variance"]) == 10
    assert swept["sae_sweep_plot"].ndim == 3


def test_moving_n_sets_the_latents_to_twice_n():
    assert toy_sae_tab.twice(7) == 14 and toy_sae_tab.DEFAULTS["latents"] == 2 * toy_tab.DEFAULTS["n"]
    assert isinstance(toy_sae_tab.twice("x"), type(gr.skip()))  # the box stays as it is
