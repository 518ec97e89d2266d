import hashlib
import json
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from superpos_core import mnist, resnets
from tests import helpers


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torchvision cache, and no network: downloads fail as they do offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    helpers.model_cache_for_this_test(monkeypatch, resnets, empty=True)
    monkeypatch.setattr(resnets, "_failed_downloads", {})
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_missing_imagenet_weights_are_reported_not_replaced(torch_home):
    available, message = resnets.status("resnet50")
    assert not available and "Not on this machine yet" in message and "ResNet-50" in message
    with pytest.raises(resnets.ModelUnavailable) as caught:
        resnets.load("resnet50")
    assert "resnet50-11ad3fa6.pth" in str(caught.value) and "torchvision.models.resnet50" in str(caught.value)
    assert resnets.status("resnet50") == (False, str(caught.value))  # remembered: the same sentence, no second attempt
    assert resnets.load("mnist-resnet").entry.key == "mnist-resnet"  # the bundled model still works


def test_the_unavailable_message_is_the_models_own_and_whole(torch_home):
    with pytest.raises(resnets.ModelUnavailable) as caught:
        resnets.load("resnet18")
    message = str(caught.value)
    # urllib says "<urlopen error no network>": a toast reads the brackets as HTML and drops the rest.
    assert "<" not in message and ">" not in message
    assert message.startswith("Unavailable: ResNet-18, ImageNet (torchvision) needs its ImageNet weights")
    assert "(no connection to the download server (no network))" in message and "ResNet-50" not in message
    assert "downloads its ImageNet weights once" not in message  # offline, nothing promises a download
    assert "will not try the download again on its own for 5 min" in message and message.endswith("to retry now.")


def test_a_failed_download_is_remembered_per_model_until_a_retry(torch_home, monkeypatch):
    attempts = []

    def offline(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    for _ in range(3):  # the first picture, then two layer switches
        with pytest.raises(resnets.ModelUnavailable):
            resnets.load("resnet50")
    assert len(attempts) == 1  # the failure is remembered: no new download for each use
    with pytest.raises(resnets.ModelUnavailable):
        resnets.load("resnet18")  # another model has a failure of its own
    assert len(attempts) == 2 and attempts[-1].endswith("resnet18-f37072fd.pth")
    with pytest.raises(resnets.ModelUnavailable):
        resnets.load("resnet50", retry=True)  # an explicit retry tries again
    assert len(attempts) == 3
    monkeypatch.setattr(resnets, "RETRY_AFTER_S", 0.0)  # once the while is over, the next use tries again
    with pytest.raises(resnets.ModelUnavailable, match="The next use tries the download again"):
        resnets.load("resnet50")
    assert len(attempts) == 4


def test_weights_that_arrive_after_a_failure_load_on_retry(torch_home):
    with pytest.raises(resnets.ModelUnavailable):
        resnets.load("resnet18")
    helpers.save_random_torchvision_checkpoint(torch_home, "resnet18")  # copied in, as the message says
    assert resnets.load("resnet18", retry=True).entry.key == "resnet18"
    assert resnets.status("resnet18")[0] and "resnet18" not in resnets._failed_downloads


def test_cached_torchvision_weights_load_through_the_ordinary_path(torch_home):
    random_weights = torch.load(
        helpers.save_random_torchvision_checkpoint(torch_home, "resnet18")
    )  # same format and name as torchvision's file
    assert resnets.status("resnet18")[0]
    loaded = resnets.load("resnet18")
    assert len(loaded.categories) == 1000 and loaded.categories[281] == "tabby"
    torch.testing.assert_close(loaded.model.state_dict()["fc.weight"], random_weights["fc.weight"])
    analysis = resnets.analyse_image(loaded, str(mnist.ASSETS / "photos" / "cat.jpg"))
    assert len(analysis.top5) == 5 and set(analysis.layers) == set(resnets.layer_names("resnet18"))
    assert analysis.display.shape == (224, 224, 3)
    assert loaded.weights_id.startswith(
        "resnet18-f37072fd.pth:"
    )  # the file's own bytes too: a cached table for other weights is not read


def test_corrupt_cached_weights_are_unavailable(torch_home):
    torch_home.mkdir(parents=True)
    (torch_home / "resnet18-f37072fd.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(resnets.ModelUnavailable, match="Unavailable"):
        resnets.load("resnet18")


def test_analysis_of_a_digit():
    loaded = resnets.load("mnist-resnet")
    sample = helpers.sample().test
    analysis = resnets.analyse_image(loaded, helpers.digit_on_paper(sample.images[0]))
    assert analysis.top5[0][0] == str(sample.labels[0])
    view = analysis.layers["layer3.0.conv1"]
    assert view.channels == 64 and view.size == (14, 14) or view.size == (7, 7)
    assert len(view.top_channels) == 16 and view.maps.shape == (16, resnets.MAP_SIDE, resnets.MAP_SIDE)
    means = [float(np.mean(view.maps[i])) for i in range(2)]
    assert view.top_channels[0] != view.top_channels[1] and means[0] >= 0


def make_file(tmp_path, name, image, **save):
    path = tmp_path / name
    image.save(path, **save)
    return str(path)


def test_photo_modes_become_rgb(tmp_path):
    base = Image.open(mnist.ASSETS / "photos" / "coffee.jpg")
    frames = [base.convert("P"), base.rotate(90).convert("P")]
    pictures = {
        "gray": base.convert("L"),
        "rgba": base.convert("RGBA"),
        "cmyk": base.convert("CMYK"),
        "16-bit": Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257),
        "huge": base.resize((8000, 8000)),
        "gif": Image.open(make_file(tmp_path, "a.gif", frames[0], save_all=True, append_images=frames[1:])),
    }
    for name, picture in pictures.items():
        rgb = resnets.photo_rgb(picture)
        assert rgb.mode == "RGB" and max(rgb.size) <= 1024, name


def test_unreadable_pictures_say_why(tmp_path):
    with pytest.raises(resnets.ImageError, match="too small"):
        resnets.photo_rgb(Image.new("RGB", (1, 1)))
    path = tmp_path / "cut.jpg"
    Image.open(mnist.ASSETS / "photos" / "cat.jpg").save(path)
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(resnets.ImageError, match="could not be read"):
        resnets.photo_rgb(str(path))
    with pytest.raises(resnets.ImageError, match="too large to read"):
        resnets.photo_rgb(str(helpers.decompression_bomb_png(tmp_path / "bomb.png")))
    with pytest.raises(resnets.ImageError, match="could not be read"):
        resnets.photo_rgb(str(helpers.text_named_png(tmp_path / "list.png")))
    with pytest.raises(resnets.ImageError, match="fully transparent"):
        resnets.photo_rgb(Image.new("RGBA", (64, 64), (0, 0, 0, 0)))


def test_a_picture_the_digit_model_cannot_read_is_described_as_a_picture():
    loaded = resnets.load("mnist-resnet")
    dot = np.full((280, 280), 255, np.uint8)
    dot[140:146, 140:146] = 0
    pictures = {
        "too small": Image.new("RGB", (1, 1), "black"),
        "fully transparent": Image.new("RGBA", (280, 280), (0, 0, 0, 0)),
        "single flat colour": Image.new("L", (280, 280), 255),
        "only a dot": dot,
    }
    for expected, picture in pictures.items():
        with pytest.raises(resnets.ImageError) as caught:
            resnets.analyse_image(loaded, picture)
        message = str(caught.value)
        assert expected in message, (expected, message)
        assert "canvas" not in message and "brush" not in message and "Clear it" not in message, (
            message
        )  # this tab has neither


def test_a_photo_given_to_the_digit_model_gets_a_caution_and_is_still_analysed():
    loaded = resnets.load("mnist-resnet")
    sample = helpers.sample().test
    for path in sorted((mnist.ASSETS / "photos").glob("*.jpg")):
        for picture in (Image.open(path), Image.open(path).convert("L")):  # colour, and the same photo in grey
            assert resnets.looks_like_photo(resnets.photo_rgb(picture)), path.name
            analysis = resnets.analyse_image(loaded, picture)
            assert analysis.caution == resnets.PHOTO_CAUTION and "only knows the ten digits" in analysis.caution
            assert len(analysis.top5) == 5 and len(analysis.layers) == 20  # a caution, not a refusal
    blue = np.zeros((280, 280, 4), np.uint8)
    blue[..., 2], blue[..., 3] = (
        255,
        255 - helpers.digit_on_paper(sample.images[3]),
    )  # a digit drawn in blue on the canvas
    digits = [helpers.digit_on_paper(sample.images[i], 4) for i in range(10)]
    digits += [
        helpers.as_canvas_rgba(helpers.digit_on_paper(sample.images[5])),
        helpers.off_centre(sample.images[6]),
        Image.fromarray(blue, "RGBA"),
    ]
    for i, digit in enumerate(digits):
        assert not resnets.looks_like_photo(resnets.photo_rgb(digit)), i
        assert resnets.analyse_image(loaded, digit).caution is None, i


def test_the_rank_table_is_in_module_order_like_the_layer_list(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(resnets, "_reference_memo", type(resnets._reference_memo)(8))
    loaded = resnets.load("mnist-resnet")
    names = resnets.layer_names("mnist-resnet")
    assert names.index("layer2.0.downsample.0") > names.index("layer2.0.conv2")  # defined after, though it runs first
    source, rows = resnets.reference_ranks(loaded)
    assert [row.layer for row in rows] == names == loaded.conv_layers
    # A table cached in the order the layers run (as before) is read back in module order.
    path = resnets.rank_cache_path(loaded, source)
    cached = json.loads(path.read_text())
    by_name = {row["layer"]: row for row in cached["rows"]}
    run_order = [
        name
        for block in ("layer2.0", "layer3.0")
        for name in (f"{block}.downsample.0", f"{block}.conv1", f"{block}.conv2")
    ]
    shuffled = [by_name[n] for n in names if n not in run_order] + [by_name[n] for n in run_order]
    path.write_text(json.dumps({"version": cached["version"], "rows": shuffled}))
    resnets._reference_memo.clear()
    assert [row.layer for row in resnets.reference_ranks(loaded)[1]] == names


@pytest.mark.slow
def test_reference_ranks_are_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path))
    loaded = resnets.load("mnist-resnet")
    source, first = resnets.reference_ranks(loaded)
    assert "MNIST" in source and len(first) == 20
    assert first[0].layer == "conv1" and not any(row.sample_bound for row in first)
    files = list((tmp_path / "ranks").glob("*.json"))
    assert len(files) == 1 and not list((tmp_path / "ranks").glob("*.tmp"))

    def must_not_run(*args, **kwargs):
        raise AssertionError("the table should come from the disk cache")

    monkeypatch.setattr(resnets, "rank_table", must_not_run)
    assert resnets.reference_ranks(loaded)[1] == first  # in memory: no recomputation
    resnets._reference_memo.clear()  # as after a restart
    assert resnets.reference_ranks(loaded)[1] == first  # from the disk cache, at once
    files[0].write_text("{ truncated")  # a corrupted cache file is recomputed, not trusted
    resnets._reference_memo.clear()
    monkeypatch.undo()
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path))
    assert resnets.reference_ranks(loaded)[1] == first
    assert json.loads(files[0].read_text())["rows"][0]["layer"] == "conv1"  # and the file is whole again


@pytest.mark.slow
def test_a_cached_table_of_an_older_format_is_recomputed_not_misread(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path))
    loaded = resnets.load("mnist-resnet")
    source = resnets.reference_batches(loaded)[0]
    # Format 1 (before the centred count): a bare list of rows, named by model, weights and set only.
    stale = [
        {"layer": name, "channels": 16, "effective_rank": 1, "ratio": 0.0625, "columns": 10**6, "sample_bound": False}
        for name in resnets.layer_names("mnist-resnet")
    ]
    old_key = hashlib.sha256(f"mnist-resnet|{loaded.weights_id}|{source}".encode()).hexdigest()[:16]
    new_path = resnets.rank_cache_path(loaded, source)
    assert new_path.name != f"mnist-resnet-{old_key}.json"  # the format version is part of the name
    new_path.parent.mkdir(parents=True)
    for path in (new_path.parent / f"mnist-resnet-{old_key}.json", new_path):
        path.write_text(json.dumps(stale))
    table = resnets.reference_ranks(loaded)[1]
    assert all(row.effective_rank > 1 for row in table)  # the stale ranks were not read
    assert all(
        1 <= row.centred_effective_rank <= row.channels and row.rank_to_reach >= row.effective_rank for row in table
    )
    cached = json.loads(new_path.read_text())
    assert (
        cached["version"] == resnets.RANK_CACHE_VERSION == 2
        and cached["rows"][0]["centred_effective_rank"] == table[0].centred_effective_rank
    )
    new_path.write_text(
        json.dumps({"version": 1, "rows": cached["rows"]})
    )  # a format stamp that is not ours: recomputed too
    resnets._reference_memo.clear()
    assert resnets.reference_ranks(loaded)[1] == table and json.loads(new_path.read_text())["version"] == 2


def test_preprocessing_and_register_need_no_download(torch_home):
    """What a benchmark uses to run a catalogue model with its own (random) weights, offline."""
    transform = resnets.preprocessing(resnets.CATALOGUE["resnet50"])
    assert len(transform.mean) == 3 and len(transform.std) == 3
    loaded = resnets.load("mnist-resnet")
    resnets.forget("mnist-resnet")
    assert resnets.register(loaded) is loaded
    assert resnets.load("mnist-resnet") is loaded
