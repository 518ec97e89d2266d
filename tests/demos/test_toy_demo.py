import gradio as gr
import pytest

from demos import toy as toy_tab


def test_main_event_returns_the_summary_first():
    summary, status, *images, arrows, hint = toy_tab.train_toy(5, 2, 0.99, 1.0, 300, 0, progress=lambda *a, **k: None)
    assert summary["n_features"] == 5 and summary["m"] == 2
    assert "features" in status
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
    assert len(summary["sparsity"]) == len(summary["represented"]) == len(summary["features_per_dimension"]) == 20
    assert image.ndim == 3

