import gradio as gr
import pytest
import torch
from PIL import Image

from demos import components
from demos import resnet as resnet_tab
from superpos_core import mnist, resnets
from superpos_core.conv_rank import TABLE_HEADERS
from superpos_core.figures import resnet as resnet_figures
from tests import helpers
from tests.contracts import summary_keys


@pytest.fixture(scope="module")
def digit():
    sample = helpers.sample().test
    return helpers.digit_on_paper(sample.images[1]), str(sample.labels[1])


@pytest.mark.slow
def test_main_event_summary_first(digit):
    picture, label = digit
    shown = resnet_tab.analyse(picture, "mnist-resnet", "layer2.0.conv1")
    assert set(shown) == set(resnet_tab.PICTURE_PANELS)  # by name; the wiring lists the JSON summary first
    summary, status, grid, overlay = shown["summary"], shown["status"], shown["grid"], shown["overlay"]
    ranks, table, card = shown["ranks"], shown["table"], shown["card"]
    assert set(summary) == summary_keys("/resnet")
    assert summary["caution"] is None and "only knows" not in status  # a digit: no caution
    assert summary["model"] == "mnist-resnet" and summary["layer"] == "layer2.0.conv1" and summary["channels"] == 32
    assert summary["top5"][0][0] == label and len(summary["top5"]) == 5
    assert 0 < summary["effective_rank"] <= 32 and summary["ratio"] == pytest.approx(
        summary["effective_rank"] / 32, abs=1e-3
    )
    assert len(table) == 20 and "Conv2d(16, 32" in card
    row = next(r for r in resnets.reference_ranks(resnets.load("mnist-resnet"))[1] if r.layer == "layer2.0.conv1")
    assert (
        type(summary["centred_effective_rank"]) is int
        and summary["centred_effective_rank"] == row.centred_effective_rank
    )
    assert next(r for r in table if r[0] == "layer2.0.conv1") == [
        row.layer,
        32,
        row.effective_rank,
        round(row.ratio, 4),
        row.centred_effective_rank,
        round(row.centred_ratio, 4),
        row.sample_bound,
    ]
    assert len(TABLE_HEADERS) == len(table[0]) and TABLE_HEADERS[4] == "centred_effective_rank"
    # The card says what each count is, with the numbers of this layer.
    assert f"effective rank {row.effective_rank}**" in card and f"({row.rank_to_reach} are needed to reach it)" in card
    assert f"centred effective rank {row.centred_effective_rank}**" in card
    assert grid.ndim == overlay.ndim == ranks.ndim == 3


def test_switching_layers_reuses_the_forward_pass(digit):
    analysis = resnet_tab.analyse(digit[0], "mnist-resnet", None)["state"]
    model = resnets.load("mnist-resnet").model
    calls = []
    handle = model.register_forward_hook(lambda *args: calls.append(1))
    try:
        first = resnet_tab.switch_layer(analysis, "mnist-resnet", "conv1")
        second = resnet_tab.switch_layer(analysis, "mnist-resnet", "layer4.1.conv2")
    finally:
        handle.remove()
    assert calls == []  # no second forward
    assert tuple(first) == resnet_tab.SWITCHED
    assert first["summary"]["channels"] == 16 and second["summary"]["channels"] == 128
    assert (first["grid"] != second["grid"]).any()  # the feature-map grid changed


def test_unknown_layer_is_a_clear_error(digit):
    with pytest.raises(gr.Error, match="no conv layer named 'layer9.conv'"):
        resnet_tab.analyse(digit[0], "mnist-resnet", "layer9.conv")


def test_a_drawing_can_be_sent_from_the_mnist_tab(digit):
    composite = helpers.as_canvas_rgba(digit[0])
    received = resnet_tab.receive_drawing({"background": None, "layers": [], "composite": composite})
    assert tuple(received) == resnet_tab.RECEIVED
    picture, model, layer = received["image"], received["model"], received["layer"]
    model_status, gallery, retry = received["model_status"], received["gallery"], received["retry"]
    assert picture is composite and model["value"] == "mnist-resnet" and layer["value"] == "conv1"
    assert (
        "trained on MNIST" in model_status and len(gallery) == 10 and retry["visible"] is False
    )  # nothing left of another model
    assert resnet_tab.analyse(picture, "mnist-resnet", "conv1")["summary"]["top5"][0][0] == digit[1]


@pytest.fixture
def imagenet_here(tmp_path, monkeypatch):
    """ResNet-18 with random weights in an empty torchvision cache (no real weights, no network); ResNet-50 absent."""
    return helpers.imagenet_offline_with_random_resnet18(tmp_path, monkeypatch)


@pytest.mark.slow
def test_switching_models_redraws_every_panel_for_the_new_model(digit, imagenet_here):
    picture = Image.fromarray(digit[0])
    photos = resnet_tab.choose_model(picture, "resnet18", "layer2.0.conv1")
    assert set(photos) == set(resnet_tab.MODEL_PANELS)
    assert (
        photos["summary"]["model"] == "resnet18" and photos["summary"]["layer"] == "layer2.0.conv1"
    )  # the same layer, where the new model has it
    assert photos["state"].model == "resnet18" and len(photos["top5"]) == 5
    assert not set(photos["top5"]) & set("0123456789")  # ImageNet's classes, no digit left from the last model
    assert photos["top5"] == {label: p for label, p in photos["state"].top5} and photos["status"].startswith(
        "The model's answer:"
    )
    assert (
        "Conv2d(64, 128" in photos["card"]
        and photos["grid"].ndim == photos["overlay"].ndim == photos["ranks"].ndim == 3
    )
    assert (
        len(photos["gallery"]) == 4 and "ResNet-18" in photos["model_status"] and len(photos["layer"]["choices"]) == 20
    )
    assert photos["table"][0][1] == 64  # its own table: conv1 has 64 channels
    digits = resnet_tab.choose_model(picture, "mnist-resnet", "layer2.0.conv1")  # and back: the maps are drawn again
    assert digits["summary"]["model"] == "mnist-resnet" and digits["summary"]["top5"][0][0] == digit[1]
    assert (
        digits["grid"] is not None and digits["overlay"] is not None and f"answer: **{digit[1]}**" in digits["status"]
    )
    assert "Conv2d(16, 32" in digits["card"] and len(digits["gallery"]) == 10 and digits["table"][0][1] == 16
    empty = resnet_tab.choose_model(
        None, "resnet18", None
    )  # no picture: nothing from the last one, the model's own rank plot and table
    assert (
        empty["status"] == resnet_tab.NO_IMAGE
        and empty["top5"] is None
        and empty["grid"] is None
        and empty["state"] is None
    )
    assert empty["ranks"] is not None and empty["summary"]["model"] == "resnet18" and empty["summary"]["top5"] == []


def test_an_unavailable_model_empties_every_panel_and_is_not_downloaded_again(digit, imagenet_here):
    unavailable = resnet_tab.choose_model(Image.fromarray(digit[0]), "resnet50", "layer1.0.conv1")
    assert len(imagenet_here) == 1  # choosing it tried the download once
    for name in ("summary", "top5", "grid", "overlay", "ranks", "table", "card", "state"):
        assert unavailable[name] is None, name
    message = str(unavailable["status"])
    assert (
        "ResNet-50" in message
        and "resnet50-11ad3fa6.pth" in message
        and "<" not in message
        and message.endswith("retry now.")
    )
    assert "downloads its ImageNet weights once" not in message and "ResNet-50" in unavailable["model_status"]
    assert unavailable["retry"]["visible"] is True
    assert (
        len(unavailable["layer"]["choices"]) == 53 and len(unavailable["gallery"]) == 4
    )  # its own layers and examples all the same
    switched = resnet_tab.switch_layer(None, "resnet50", "layer1.0.conv2")
    assert len(imagenet_here) == 1  # a layer switch does not try the download again
    assert [switched[name] for name in ("summary", "grid", "overlay", "ranks")] == [None] * 4
    assert "Unavailable: ResNet-50" in switched["card"]
    with pytest.raises(gr.Error, match="Unavailable: ResNet-50"):
        resnet_tab.analyse(Image.fromarray(digit[0]), "resnet50", "conv1")
    assert len(imagenet_here) == 1
    resnet_tab.choose_model(None, "resnet50", None)  # choosing it again soon after: the failure is remembered
    assert len(imagenet_here) == 1
    resnet_tab.choose_model(None, "resnet50", None, retry=True)  # "Try the download again": tried again
    assert len(imagenet_here) == 2


def test_the_layer_list_the_plot_and_the_table_share_module_order():
    view = resnet_tab.choose_model(None, "mnist-resnet", None)
    names = view["layer"]["choices"]
    assert [row[0] for row in view["table"]] == names == resnets.layer_names("mnist-resnet")
    # Read from the plot itself (its rows come from the same list as the table's, so comparing those could not fail):
    # choosing the k-th layer of the list marks the k-th point of its x axis.
    _, rows = resnets.reference_ranks(resnets.load("mnist-resnet"))
    panel = resnet_figures.LayerRankPanel(rows, "order")
    for position in (0, 1, len(names) // 2, len(names) - 1):
        panel.update(names[position])
        assert [marker.get_xdata()[0] for marker in panel.markers] == [position, position], names[position]


def test_a_photo_for_the_digit_model_says_it_only_knows_digits():
    photo = Image.open(mnist.ASSETS / "photos" / "coffee.jpg")
    shown = resnet_tab.analyse(photo, "mnist-resnet", "conv1")
    summary, status, labels, grid = shown["summary"], shown["status"], shown["top5"], shown["grid"]
    assert "only knows the ten digits" in status and summary["caution"] == resnets.PHOTO_CAUTION
    assert len(labels) == 5 and grid is not None  # still analysed


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda path: helpers.decompression_bomb_png(path), "too large to read"),
        (lambda path: helpers.text_named_png(path), "That file is not a picture"),
    ],
)
def test_a_file_that_is_no_readable_picture_gets_a_message_not_an_error_badge(tmp_path, make, expected):
    path = make(tmp_path / "upload.png")
    component = components.SafeImage(type="pil", image_mode=None)
    picture = component.preprocess(gr.FileData(path=str(path), orig_name="upload.png"))
    assert (
        isinstance(picture, resnet_tab.UnreadablePicture) and expected in picture.message
    )  # preprocessing never fails: the failure handler can read it too
    with pytest.raises(gr.Error, match=expected):
        resnet_tab.analyse(picture, "mnist-resnet", "conv1")  # the API caller's message
    outputs = resnet_tab.explain_problem(picture, "mnist-resnet", "conv1")
    assert (
        expected in outputs["status"] and outputs["grid"] is None and outputs["state"] is None
    )  # the message beside the picture, old maps gone
    assert not {"ranks", "table", "card"} & set(outputs)  # what describes the layer stays as it is


@pytest.mark.parametrize(
    "picture, expected",
    [
        (Image.new("RGB", (1, 1), "black"), "too small"),
        (Image.new("RGBA", (280, 280), (0, 0, 0, 0)), "fully transparent"),
    ],
)
def test_an_empty_picture_is_described_as_a_picture(picture, expected):
    with pytest.raises(gr.Error) as caught:
        resnet_tab.analyse(picture, "mnist-resnet", "conv1")
    message = resnet_tab.problem(picture, "mnist-resnet", "conv1")
    for text in (str(caught.value.message), message):
        assert expected in text and "canvas" not in text and "brush" not in text


def test_the_opening_view_is_made_once_per_device_and_kept():
    cpu = torch.device("cpu")
    first = resnet_tab.opening(cpu)
    assert resnet_tab.opening(cpu) is first  # kept: the next visitor gets the same, at once
    assert (
        first["summary"]["model"] == "mnist-resnet"
        and first["grid"] is not None
        and first["overlay"] is not None
        and first["ranks"] is not None
    )
    label = resnet_tab.examples("mnist-resnet")[resnet_tab.OPENING_EXAMPLE][1]
    assert first["status"].startswith(f"The model's answer: **{label}**") and first["state"].model == "mnist-resnet"
    assert resnet_tab._openings.get(resnet_tab._opening_key(cpu)) is first
    other = torch.device("cpu", 0)  # another device (by name): it gets a view of its own, made for it and kept too
    theirs = resnet_tab.opening(other)
    assert theirs is not first and resnet_tab.opening(other) is theirs and resnet_tab.opening(cpu) is first
    assert resnet_tab._openings.get(resnet_tab._opening_key(other)) is theirs and theirs["summary"] == first["summary"]


def test_rank_notes_say_what_the_count_is():
    notes = resnet_tab.NOTES["ranks"] + resnet_tab.READING
    assert "still below 99%" in notes and "one fewer than the number needed to reach 99%" in notes
    assert "before its BatchNorm" in notes and "centred" in notes
    assert (
        "independent" not in notes and "are combinations of the others," not in notes
    )  # not read as linear dependence
