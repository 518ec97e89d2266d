import gradio as gr
import pytest

from demos import toy as toy_tab


def test_main_event_returns_the_summary_first():
    summary, status, *images, arrows, hint = toy_tab.train_toy(5, 2, 0.99, 1.0, 300, 0, progress=lambda *a, **k: None)
    assert summary["n_features"] == 5 and summary["m"] == 2
    assert "features" in status and summary["superposition"] is ("**Superposition**" in status)
    assert all(image.ndim == 3 for image in images)
    assert arrows["visible"] is True and hint["visible"] is False


def test_arrows_only_for_two_dimensions():
    *_, arrows, hint = toy_tab.train_toy(4, 3, 0.5, 1.0, 100, 0, progress=lambda *a, **k: None)
    assert arrows["visible"] is False and hint["visible"] is True


@pytest.mark.parametrize("args", [(0, 2, 0.5, 1, 100, 0), (5, 0, 0.5, 1, 100, 0), (5, 2, 1.0, 1, 100, 0), (5.5, 2, 0.5, 1, 100, 0), (5, 2, "x", 1, 100, 0)])
def test_bad_controls_are_clear_errors(args):
    with pytest.raises(gr.Error):
        toy_tab.train_toy(*args, progress=lambda *a, **k: None)


def test_log_sparsity_slider():
    assert toy_tab._log_sparsity(0) == 0.0
    assert toy_tab._log_sparsity(2) == 0.99
    assert toy_tab._log_sparsity(3) == 0.999


def test_sweep_summary():
    summary, image = toy_tab.sweep_toy(5, 2, 0.9, 300, 0, progress=lambda *a, **k: None)
    assert len(summary["sparsity"]) == len(summary["represented"]) == len(summary["features_per_dimension"]) == len(summary["superposition"]) == 20
    assert summary["superposition"] == [v > 1.1 for v in summary["features_per_dimension"]]
    assert image.ndim == 3



def test_dense_equal_features_are_not_called_superposition():
    summary, status, *_ = toy_tab.train_toy(5, 2, 0.0, 1.0, 1000, 0, progress=lambda *a, **k: None)
    assert summary["represented"] > 2 and summary["superposition"] is False
    assert status.startswith("**No superposition**") and "only partly stored" in status and "that is superposition" not in status
    summary, status, *_ = toy_tab.train_toy(5, 2, 0.99, 1.0, 1000, 0, progress=lambda *a, **k: None)
    assert summary["superposition"] is True and status.startswith("**Superposition**") and "5 of 5 features" in status


def test_the_arrows_note_says_when_two_arrows_stand_at_right_angles():
    assert "r < 1" in toy_tab.NOTES["arrows"] and "r = 1" in toy_tab.NOTES["arrows"]
    assert "3.4" in toy_tab.NOTES["dimensionality"] and "2.5" in toy_tab.NOTES["dimensionality"]
