import json

import gradio as gr
import numpy as np
import pytest

from demos import mnist as mnist_tab
from superpos_core import mnist, mnist_sae
from superpos_core.mnist_explorer import MnistExplorer, bundled_concentration, bundled_reference


def test_activation_note_quotes_the_firing_measured_on_the_test_digits():
    reference = bundled_reference()
    note = mnist_tab.measured_notes(reference)["activations"]
    for hidden, layer, units in (("relu1", "fc1", 128), ("relu2", "fc2", 64)):
        firing = np.median(
            (reference.activations[hidden] > 0).sum(axis=1)
        )  # neurons above zero after the ReLU, per digit -> median
        assert f"{firing:.0f} of {layer}'s {units}" in note and f"({firing / units:.0%})" in note, (hidden, note)
    assert "47 of fc1's 128 neurons (37%)" in note and "33 of fc2's 64 (52%)" in note  # the shipped network, measured
    assert "take part for every digit" not in note


def test_polysemanticity_note_quotes_the_count_and_does_not_call_it_superposition():
    reference = bundled_reference()
    note = mnist_tab.measured_notes(reference)["polysemanticity"]
    means = reference.class_means["relu1"]  # (10, 128)
    with np.errstate(invalid="ignore"):
        share_of_peak = means / means.max(axis=0)  # silent neurons: 0/0, never counted
    multi_class = int(((share_of_peak >= 0.5).sum(axis=0) >= 2).sum())
    assert (
        multi_class == 91
        and f"{multi_class} of fc1's 128 neurons reach half their peak class mean on two or more classes" in note
    )
    assert f"({int((means.max(axis=0) == 0).sum())} never fire on these digits)" in note
    assert "not superposition" in note and "strokes" in note


def test_notes_follow_the_reference_they_are_given():
    relu1 = np.zeros((3, 128))
    relu1[:, :64] = 1.0  # every digit fires half of fc1
    relu2 = np.zeros((3, 64))
    relu2[:, :16] = 1.0  # and a quarter of fc2
    labels = np.array([0, 1, 2])
    reference = mnist.Reference({"relu1": relu1, "relu2": relu2}, labels, {"relu1": relu1, "relu2": relu2})
    notes = mnist_tab.measured_notes(reference)
    assert "64 of fc1's 128 neurons (50%)" in notes["activations"] and "16 of fc2's 64 (25%)" in notes["activations"]
    assert (
        "64 of fc1's 128 neurons reach half" in notes["polysemanticity"]
        and "(64 never fire" in notes["polysemanticity"]
    )


def test_sae_notes_quote_the_provenance_and_what_the_comparison_measured():
    provenance = json.loads(mnist_sae.SAE_PROVENANCE_PATH.read_text())
    measured = bundled_concentration()
    notes = mnist_tab.sae_notes(measured, provenance)
    test = provenance["test"]
    assert f"explains {test['explained_variance']:.0%} of fc1's variance" in notes["sae_features"]
    assert f"with {test['l0']:.1f} features per digit; {test['dead']} of its 512" in notes["sae_features"]
    compared = notes["concentration"]
    assert f"Median: neurons {measured.median('neurons'):.2f}, features {measured.median('features'):.2f}" in compared
    assert f"{measured.chance:.2f} for digits drawn at random" in compared and "stroke" in compared


def test_the_concentration_note_says_what_it_shows_whichever_way_it_goes():
    provenance = json.loads(mnist_sae.SAE_PROVENANCE_PATH.read_text())
    neurons = np.full(128, 0.4)
    for features, verdict in (
        (np.full(512, 0.8), "more often"),
        (np.full(512, 0.2), "less often"),
        (neurons, "about as"),
    ):
        measured = mnist_sae.Concentration(neurons, features, chance=0.26, top=20)
        assert f"features are {verdict}" in mnist_tab.sae_notes(measured, provenance)["concentration"]


@pytest.mark.slow
def test_spectrum_note_says_exactly_what_the_effective_rank_counts():
    note = mnist_tab.measured_notes(bundled_reference())["spectrum"]
    assert "still below 99%" in note and "one fewer than the number needed to reach 99%" in note
    assert "needed before 99%" not in note
    for name, _neurons, effective, _ratio, to_reach, _random in MnistExplorer().rank_table():
        assert to_reach == effective + 1, name  # what "one fewer" promises, on the shipped weights


def png_data_url(pixels: np.ndarray) -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.slow
def test_a_stroke_from_the_pad_fills_every_panel_inline():
    from tests import helpers

    sample = helpers.sample().test
    shown = mnist_tab.show_drawing(png_data_url(helpers.digit_on_paper(sample.images[0])))
    assert tuple(shown) == mnist_tab.LIVE  # by name, the JSON summary first: the /mnist API's order of outputs
    summary, status, label = shown["summary"], shown["status"], shown["label"]
    pictures = [shown[name] for name in mnist_tab.PICTURES]
    assert summary["prediction"] == sample.labels[0] and f"reads **{sample.labels[0]}**" in status
    assert max(label, key=label.get) == str(sample.labels[0])
    assert len(pictures) == 5 and all(p.startswith("data:image/png;base64,") for p in pictures)
    assert "sae_features" in mnist_tab.PICTURES and summary["sae"]["l0"] == len(summary["sae"]["features"]) >= 1


@pytest.mark.slow
def test_the_pad_never_fails_with_a_badge_it_says_why_and_empties_the_panels():
    blank = np.full((280, 280), 255, np.uint8)
    dot = blank.copy()
    dot[138:144, 138:144] = 0
    cases = [
        ("", mnist_tab.NO_DIGIT),
        (png_data_url(blank), mnist_tab.NO_DIGIT),
        (png_data_url(dot), "only a dot"),
        ("data:image/png;base64,aGVsbG8gd29ybGQ=", "could not be read"),  # text named a PNG
        ("/etc/passwd", "not a picture"),  # never opened as a path
        (12, "not a picture"),
    ]
    for value, message in cases:
        shown = mnist_tab.show_drawing(value)
        assert message in shown["status"], (value, shown["status"])
        assert set(shown) == set(mnist_tab.LIVE) and [v for k, v in shown.items() if k != "status"] == [None] * (
            len(mnist_tab.LIVE) - 1
        )


def test_an_upload_is_fitted_onto_the_pad_or_refused_with_a_message(tmp_path):
    from PIL import Image

    from tests import helpers

    sample = helpers.sample().test
    wide = np.full((300, 900), 255, np.uint8)
    wide[:, 300:600] = helpers.digit_on_paper(sample.images[5], scale=300 // 28 + 1)[:300, :300]
    Image.fromarray(wide).save(tmp_path / "wide.png")
    value, status = mnist_tab.upload_to_pad(tmp_path / "wide.png")
    assert value.startswith("data:image/png;base64,") and status == gr.skip()
    assert mnist_tab.show_drawing(value)["summary"]["prediction"] == sample.labels[5]
    (tmp_path / "notes.png").write_text("not a picture")
    Image.new("1", (15000, 15000)).save(tmp_path / "bomb.png")
    for name, message in [("notes.png", "could not be read"), ("bomb.png", "too large")]:
        value, status = mnist_tab.upload_to_pad(tmp_path / name)
        assert value == gr.skip() and message in status, name


def test_only_a_drawing_is_sent_to_the_resnet_tab():
    assert mnist_tab.drawing_to_send("") is None and mnist_tab.drawing_to_send("not a url") is None
    for empty in ("", None):
        with pytest.raises(gr.Error, match="Draw a digit first"):
            mnist_tab.require_drawing(empty)
    mnist_tab.require_drawing(mnist_tab.example_on_pad(0))  # a drawing: on to the next step
    picture = mnist_tab.drawing_to_send(mnist_tab.example_on_pad(mnist_tab.OPENING_EXAMPLE))
    assert picture.size == (mnist_tab.CANVAS, mnist_tab.CANVAS) and picture.mode == "RGB"


@pytest.mark.slow
def test_the_opening_view_is_the_opening_example_analysed():
    view = mnist_tab.kept_opening_view("cpu")
    summary, status = view.live["summary"], view.live["status"]
    digit, label = mnist_tab.bundled_examples(mnist_tab.EXAMPLES)[mnist_tab.OPENING_EXAMPLE]
    assert summary["prediction"] == label and f"a real MNIST test digit, a {label}" in status
    drawn = mnist_tab.show_drawing(mnist_tab.example_on_pad(mnist_tab.OPENING_EXAMPLE))
    assert drawn["status"] in status  # what the pad shows, read the same
    assert all(view.live[name] == drawn[name] for name in ("label", *mnist_tab.PICTURES))
    assert len(view.gallery) == mnist_tab.EXAMPLES and tuple(view.static) == mnist_tab.STATIC


def test_a_drawing_made_before_the_opening_view_arrived_is_read_again():
    assert mnist_tab.redraw_if_drawn(mnist_tab.example_on_pad(mnist_tab.OPENING_EXAMPLE)) == dict.fromkeys(
        mnist_tab.LIVE, gr.skip()
    )  # nothing drawn: keep the opening view
    drawn = mnist_tab.example_on_pad(7)  # the pad holds something else by then
    assert mnist_tab.redraw_if_drawn(drawn) == mnist_tab.show_drawing(drawn)


def test_the_api_sketchpad_hands_files_on_unopened(tmp_path):
    from gradio.components.image_editor import EditorData
    from gradio.data_classes import FileData

    pad = mnist_tab.SafeSketchpad(type="filepath")
    payload = EditorData(background=FileData(path=str(tmp_path / "a.png")), layers=[], composite=None)
    assert pad.preprocess(payload) == {"background": str(tmp_path / "a.png"), "layers": [], "composite": None}


def test_the_notes_kept_on_disk_are_the_notes_measured_now(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path))
    provenance = json.loads(mnist_sae.SAE_PROVENANCE_PATH.read_text())
    measured = mnist_tab.measured_notes(bundled_reference()) | mnist_tab.sae_notes(bundled_concentration(), provenance)
    assert mnist_tab.shipped_notes() == measured  # computed, and kept
    monkeypatch.setattr(mnist_tab, "bundled_reference", lambda: pytest.fail("measured again on a restart"))
    assert mnist_tab.shipped_notes() == measured  # read back from the disk
