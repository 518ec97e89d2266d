import hashlib
import json
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from superpos_core import mnist, mnist_resnet, resnets
from tests import helpers


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torchvision cache, and no network: downloads fail as they do offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setattr(resnets, "_loaded", {})
    monkeypatch.setattr(resnets, "_failed_downloads", {})
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_bundled_model_accuracy_and_provenance():
    model = mnist_resnet.load()
    assert mnist_resnet.accuracy(model, helpers.sample().test) >= 0.99
    provenance = json.loads(mnist_resnet.PROVENANCE_PATH.read_text())
    assert provenance["sha256"] == hashlib.sha256(mnist_resnet.WEIGHTS_PATH.read_bytes()).hexdigest()
    assert provenance["test_accuracy"] >= 0.99 and "reproduce" in provenance


def test_missing_imagenet_weights_are_reported_not_replaced(torch_home):
    available, message = resnets.status("resnet50")
    assert not available and "Not downloaded yet" in message
    with pytest.raises(resnets.ModelUnavailable) as caught:
        resnets.load("resnet50")
    assert "resnet50-11ad3fa6.pth" in str(caught.value) and "torchvision.models.resnet50" in str(caught.value)
    assert resnets.status("resnet50") == (False, str(caught.value))  # remembered: no second download attempt
    assert resnets.load("mnist-resnet").entry.key == "mnist-resnet"  # the bundled model still works


def test_cached_torchvision_weights_load_through_the_ordinary_path(torch_home):
    torch_home.mkdir(parents=True)
    random_weights = resnets.build("resnet18").state_dict()  # same format and name as torchvision's file
    torch.save(random_weights, torch_home / "resnet18-f37072fd.pth")
    assert resnets.status("resnet18")[0]
    loaded = resnets.load("resnet18")
    assert len(loaded.categories) == 1000 and loaded.categories[281] == "tabby"
    torch.testing.assert_close(loaded.model.state_dict()["fc.weight"], random_weights["fc.weight"])
    analysis = resnets.analyse_image(loaded, str(mnist.ASSETS / "photos" / "cat.jpg"))
    assert len(analysis.top5) == 5 and set(analysis.layers) == set(resnets.layer_names("resnet18"))
    assert analysis.display.shape == (224, 224, 3)


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


def test_a_cached_table_of_an_older_format_is_recomputed_not_misread(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path))
    loaded = resnets.load("mnist-resnet")
    source = resnets.reference_batches(loaded)[0]
    # Format 1 (before the centred count): a bare list of rows, named by model, weights and set only.
    stale = [{"layer": name, "channels": 16, "effective_rank": 1, "ratio": 0.0625, "columns": 10**6, "sample_bound": False} for name in resnets.layer_names("mnist-resnet")]
    old_key = hashlib.sha256(f"mnist-resnet|{loaded.weights_id}|{source}".encode()).hexdigest()[:16]
    new_path = resnets.rank_cache_path(loaded, source)
    assert new_path.name != f"mnist-resnet-{old_key}.json"  # the format version is part of the name
    new_path.parent.mkdir(parents=True)
    for path in (new_path.parent / f"mnist-resnet-{old_key}.json", new_path):
        path.write_text(json.dumps(stale))
    table = resnets.reference_ranks(loaded)[1]
    assert all(row.effective_rank > 1 for row in table)  # the stale ranks were not read
    assert all(1 <= row.centred_effective_rank <= row.channels and row.rank_to_reach >= row.effective_rank for row in table)
    cached = json.loads(new_path.read_text())
    assert cached["version"] == resnets.RANK_CACHE_VERSION == 2 and cached["rows"][0]["centred_effective_rank"] == table[0].centred_effective_rank
    new_path.write_text(json.dumps({"version": 1, "rows": cached["rows"]}))  # a format stamp that is not ours: recomputed too
    resnets._reference_memo.clear()
    assert resnets.reference_ranks(loaded)[1] == table and json.loads(new_path.read_text())["version"] == 2


def test_bundled_architecture_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = mnist_resnet.MnistResNet().eval()  # random weights: for this test only
    mnist_resnet.save(model, tmp_path / "r.safetensors")
    loaded = mnist_resnet.load(tmp_path / "r.safetensors")
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x), atol=5e-2, rtol=5e-2)  # stored in fp16
    assert [n for n, m in loaded.named_modules() if isinstance(m, torch.nn.Conv2d)] == resnets.layer_names("resnet18")
