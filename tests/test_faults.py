"""Faults a server meets sooner or later: a download cut off midway, a damaged cache file, a full disk.

Each must end in a clear message, leave no half-written file behind, and leave the rest of the app working.
"""

from __future__ import annotations

import errno
import http.server
import json
import tempfile
import threading
import urllib.request

import pytest
import torch

from superpos_core import lm, resnets
from superpos_core.serving import Recent
from tests import helpers


class CutOffMidway(http.server.BaseHTTPRequestHandler):
    """Promises a 1 MB file, sends a quarter of it, and hangs up."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(2**20))
        self.end_headers()
        self.wfile.write(b"\0" * 2**18)
        self.wfile.flush()
        self.connection.close()

    def log_message(self, *args):
        pass


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    helpers.model_cache_for_this_test(monkeypatch, resnets.loading, empty=True)
    monkeypatch.setattr(resnets.loading, "_failed_downloads", {})
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_a_weights_download_cut_off_midway(torch_home, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CutOffMidway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    local = f"http://127.0.0.1:{server.server_address[1]}/resnet18.pth"
    asked = []

    def to_the_local_server(request, *args, **kwargs):  # torch.hub's own download code, pointed at loopback
        asked.append(request.full_url)
        return urllib.request.urlopen(local, timeout=10)

    monkeypatch.setattr(torch.hub, "urlopen", to_the_local_server)
    try:
        with pytest.raises(resnets.ModelUnavailable) as caught:
            resnets.load("resnet18")
    finally:
        server.shutdown()
    assert asked and asked[0].endswith("resnet18-f37072fd.pth")  # the real download was attempted
    message = str(caught.value)
    assert (
        message.startswith("Unavailable: ResNet-18, ImageNet (torchvision) needs its ImageNet weights")
        and "could not be downloaded or read" in message
        and "torchvision.models.resnet18" in message
    )
    assert (
        not torch_home.exists() or list(torch_home.iterdir()) == []
    )  # no partial or truncated checkpoint left to trip the next start
    assert resnets.status("resnet18") == (False, message)
    assert resnets.load("mnist-resnet").entry.key == "mnist-resnet"  # the bundled model is untouched


def test_a_damaged_language_model_in_the_hub_cache(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    helpers.model_cache_for_this_test(monkeypatch, lm.loading, empty=True)
    monkeypatch.setattr(lm.loading, "_failed_loads", {})
    monkeypatch.setattr(lm.catalogue, "_hub_reachable", lambda timeout=3.0: pytest.fail("the network was consulted"))
    folder = helpers.save_tiny_gpt2(tmp_path / "tiny")
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    snapshot = hub / "models--openai-community--gpt2" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        data = file.read_bytes()
        (snapshot / file.name).write_bytes(
            data[: len(data) // 3] if file.name == "model.safetensors" else data
        )  # a download cut short
    (hub / "models--openai-community--gpt2" / "refs").mkdir()
    (hub / "models--openai-community--gpt2" / "refs" / "main").write_text(commit)
    with pytest.raises(lm.ModelUnavailable) as caught:
        lm.load("gpt2")
    message = str(caught.value)
    assert "could not be loaded" in message or "switched off" in message, message
    assert "from_pretrained('openai-community/gpt2')" in message  # how to get it again
    assert "Traceback" not in message and len(message) < 1000
    assert lm.status("gpt2") == (False, message)


class FullDisk:
    """A file whose disk fills up after ``room`` bytes: the write that overflows raises ENOSPC."""

    def __init__(self, handle, room: int):
        self.handle, self.room = handle, room

    def write(self, text):
        if len(text) > self.room:
            self.handle.write(text[: self.room])
            self.handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(text)
        return self.handle.write(text)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.handle.__exit__(*exc)


@pytest.mark.slow
def test_a_full_disk_under_the_rank_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(resnets.reference, "_reference_memo", Recent(8))
    real = tempfile.NamedTemporaryFile
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", lambda *a, **k: FullDisk(real(*a, **k), room=100))
    source, table = resnets.reference_ranks(resnets.load("mnist-resnet"))
    assert len(table) == 20 and table[0].effective_rank > 0  # the table is still shown
    assert list((tmp_path / "ranks").iterdir()) == []  # neither a truncated table nor a temporary file is left
    monkeypatch.undo()
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(resnets.reference, "_reference_memo", Recent(8))
    assert resnets.reference_ranks(resnets.load("mnist-resnet"))[1] == table  # room again: computed and cached whole
    (cached,) = (tmp_path / "ranks").iterdir()
    written = json.loads(cached.read_text())
    assert written["version"] == resnets.RANK_CACHE_VERSION and len(written["rows"]) == 20
