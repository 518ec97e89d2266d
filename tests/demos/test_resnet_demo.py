import gradio as gr
import pytest

from demos import resnet as resnet_tab
from superpos_core import resnets
from superpos_core.conv_rank import TABLE_HEADERS
from tests import helpers


@pytest.fixture(scope="module")
def digit():
    sample = helpers.sample().test
    return helpers.digit_on_paper(sample.images[1]), str(sample.labels[1])


def test_main_event_summary_first(digit):
    picture, label = digit
    summary, status, labels, grid, overlay, ranks, table, card, analysis = resnet_tab.analyse(picture, "mnist-resnet", "layer2.0.conv1")
    assert set(summary) == {"model", "layer", "top5", "channels", "effective_rank", "ratio", "sample_bound", "centred_effective_rank"}
    assert summary["model"] == "mnist-resnet" and summary["layer"] == "layer2.0.conv1" and summary["channels"] == 32
    assert summary["top5"][0][0] == label and len(summary["top5"]) == 5
    assert 0 < summary["effective_rank"] <= 32 and summary["ratio"] == pytest.approx(summary["effective_rank"] / 32, abs=1e-3)
    assert len(table) == 20 and "Conv2d(16, 32" in card
    row = next(r for r in resnets.reference_ranks(resnets.load("mnist-resnet"))[1] if r.layer == "layer2.0.conv1")
    assert type(summary["centred_effective_rank"]) is int and summary["centred_effective_rank"] == row.centred_effective_rank
    assert next(r for r in table if r[0] == "layer2.0.conv1") == [row.layer, 32, row.effective_rank, round(row.ratio, 4), row.centred_effective_rank, round(row.centred_ratio, 4), row.sample_bound]
    assert len(TABLE_HEADERS) == len(table[0]) and TABLE_HEADERS[4] == "centred_effective_rank"
    # The card says what each count is, with the numbers of this layer.
    assert f"effective rank {row.effective_rank}**" in card and f"({row.rank_to_reach} are needed to reach it)" in card
    assert f"centred effective rank {row.centred_effective_rank}**" in card
    assert grid.ndim == overlay.ndim == ranks.ndim == 3


def test_switching_layers_reuses_the_forward_pass(digit):
    *_, analysis = resnet_tab.analyse(digit[0], "mnist-resnet", None)
    model = resnets.load("mnist-resnet").model
    calls = []
    handle = model.register_forward_hook(lambda *args: calls.append(1))
    try:
        first = resnet_tab.switch_layer(analysis, "mnist-resnet", "conv1")
        second = resnet_tab.switch_layer(analysis, "mnist-resnet", "layer4.1.conv2")
    finally:
        handle.remove()
    assert calls == []  # no second forward
    assert first[0]["channels"] == 16 and second[0]["channels"] == 128
    assert (first[1] != second[1]).any()  # the feature-map grid changed


def test_unknown_layer_is_a_clear_error(digit):
    with pytest.raises(gr.Error, match="no conv layer named 'layer9.conv'"):
        resnet_tab.analyse(digit[0], "mnist-resnet", "layer9.conv")


def test_a_drawing_can_be_sent_from_the_mnist_tab(digit):
    composite = helpers.as_canvas_rgba(digit[0])
    picture, model, layer = resnet_tab.receive_drawing({"background": None, "layers": [], "composite": composite})
    assert picture is composite and model["value"] == "mnist-resnet" and layer["value"] == "conv1"
    assert resnet_tab.analyse(picture, "mnist-resnet", "conv1")[0]["top5"][0][0] == digit[1]


def test_model_choice_lists_its_own_layers_and_examples():
    layer, status, gallery, *_rest, card = resnet_tab.choose_model("resnet50")
    assert len(layer["choices"]) == 53
    assert len(gallery) == 4  # the bundled photos, not digits
    assert "resnet50" in status or "ResNet" in status


def test_rank_notes_say_what_the_count_is():
    notes = resnet_tab.NOTES["ranks"] + resnet_tab.READING
    assert "still below 99%" in notes and "one fewer than the number needed to reach 99%" in notes
    assert "before its BatchNorm" in notes and "centred" in notes
    assert "independent" not in notes and "are combinations of the others," not in notes  # not read as linear dependence
