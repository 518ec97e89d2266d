"""The app shell: flags, lazy loading, and the package boundary."""
import subprocess
import sys
import time

import gradio as gr
import pytest
import torch

import app
from superpos_core.devices import resolve_device
from superpos_core.mnist_explorer import MnistExplorer


def test_build_is_fast_and_loads_no_model(monkeypatch):
    monkeypatch.setattr(MnistExplorer, "_shared", {})
    started = time.perf_counter()
    blocks = app.build_app("cpu")
    assert time.perf_counter() - started < 5
    assert MnistExplorer._shared == {}  # models load on first use, not at start-up
    api = {fn.api_name: fn for fn in blocks.fns.values() if fn.api_name}
    for name in ("mnist", "toy", "toy_sweep"):
        assert isinstance(api[name].outputs[0], gr.JSON), name  # the contract: JSON summary first
    assert "mnist_train" in api


def test_device_flags():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError):
        resolve_device("tpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")
        with pytest.raises(SystemExit):
            app.main(["--device", "cuda"])


def test_unknown_flag_is_refused():
    with pytest.raises(SystemExit):
        app.main(["--colour", "blue"])


def test_science_package_never_imports_gradio():
    code = "import sys, superpos_core.mnist_explorer, superpos_core.build_assets; assert 'gradio' not in sys.modules, 'gradio imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
