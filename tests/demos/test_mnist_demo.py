import numpy as np

from demos import mnist as mnist_tab
from superpos_core import mnist
from superpos_core.mnist_explorer import MnistExplorer, bundled_reference


def test_activation_note_quotes_the_firing_measured_on_the_test_digits():
    reference = bundled_reference()
    note = mnist_tab.measured_notes(reference)["activations"]
    for hidden, layer, units in (("relu1", "fc1", 128), ("relu2", "fc2", 64)):
        firing = np.median((reference.activations[hidden] > 0).sum(axis=1))  # neurons above zero after the ReLU, per digit -> median
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
    assert multi_class == 91 and f"{multi_class} of fc1's 128 neurons reach half their peak class mean on two or more classes" in note
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
    assert "64 of fc1's 128 neurons reach half" in notes["polysemanticity"] and "(64 never fire" in notes["polysemanticity"]


def test_spectrum_note_says_exactly_what_the_effective_rank_counts():
    note = mnist_tab.measured_notes(bundled_reference())["spectrum"]
    assert "still below 99%" in note and "one fewer than the number needed to reach 99%" in note
    assert "needed before 99%" not in note
    for name, neurons, effective, ratio, to_reach, _random in MnistExplorer().rank_table():
        assert to_reach == effective + 1, name  # what "one fewer" promises, on the shipped weights
