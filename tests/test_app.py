"""The app shell: flags, lazy loading, and the package boundary."""

import json
import subprocess
import sys
from pathlib import Path

import gradio as gr
import pytest
import torch

import app
import superpos_core
from superpos_core import serving
from superpos_core.devices import resolve_device
from superpos_core.mnist_explorer import MnistExplorer
from superpos_core.serving import Kept
from tests.contracts import ENDPOINTS


@pytest.mark.slow
def test_build_loads_no_model(monkeypatch):
    """(How long a build takes is measured by ``benchmarks/bench_startup.py``, not judged here.)"""
    monkeypatch.setattr(MnistExplorer, "_shared", Kept())
    blocks = app.build_app("cpu")
    assert MnistExplorer._shared.keys() == []  # models load on first use, not at start-up
    api = {fn.api_name: fn for fn in blocks.fns.values() if fn.api_name}
    for name in ("mnist", "toy", "toy_sweep", "toy_sae", "toy_sae_sweep", "lm", "lm_sae", "lm_concepts"):
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


# Every module of the science package, found as the interpreter finds them (a new module is covered
# without editing this test), imported in a fresh interpreter that has not imported gradio yet.
IMPORT_EVERY_CORE_MODULE = """
import importlib, json, pkgutil, sys
import superpos_core
names = sorted(m.name for m in pkgutil.walk_packages(superpos_core.__path__, "superpos_core."))
for name in names:
    importlib.import_module(name)
    assert "gradio" not in sys.modules, f"importing {name} imported gradio"
print(json.dumps(names))
"""


@pytest.mark.slow
def test_science_package_never_imports_gradio():
    done = subprocess.run([sys.executable, "-c", IMPORT_EVERY_CORE_MODULE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    imported = json.loads(done.stdout.splitlines()[-1])
    package = Path(superpos_core.__file__).parent
    on_disk = {  # every module, in subpackages too (superpos_core/figures/lm.py -> superpos_core.figures.lm)
        ".".join(("superpos_core", *path.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
        for path in package.rglob("*.py")
        if path != package / "__init__.py"
    }
    assert on_disk <= set(imported) and "superpos_core.figures.mnist" in imported  # every file, not just a few


def api_names(blocks: gr.Blocks) -> set[str]:
    return {fn.api_name for fn in blocks.fns.values() if fn.api_name and fn.api_visibility != "private"}


@pytest.mark.slow
def test_one_tab_alone_serves_only_its_own_endpoints():
    everything = api_names(app.build_app("cpu"))
    assert {"toy", "mnist", "resnet", "lm"} <= everything
    alone = {tab: api_names(app.build_app("cpu", tab=tab)) for tab in app.TABS}
    assert "toy" in alone["toy"] and "mnist" not in alone["toy"] and "lm" not in alone["toy"]
    assert "mnist" in alone["mnist"] and "resnet" not in alone["mnist"]
    assert "resnet" in alone["resnet"] and "lm" in alone["lm"] and "toy" not in alone["lm"]
    assert set().union(*alone.values()) == everything  # every endpoint lives in exactly one demo
    mnist_alone = app.build_app("cpu", tab="mnist")
    send = [b for b in mnist_alone.blocks.values() if getattr(b, "elem_id", None) == "mnist-send"]
    assert send and not send[0].visible  # nowhere to send a drawing when the ResNet tab is not there


def test_tab_flag_is_checked():
    with pytest.raises(ValueError, match="unknown tab"):
        app.build_app("cpu", tab="cifar")
    with pytest.raises(SystemExit):
        app.main(["--tab", "cifar"])


def test_unknown_tab_in_the_address_gets_a_warning(monkeypatch):
    warnings = []
    monkeypatch.setattr(gr, "Warning", warnings.append)

    class Request:  # what gradio passes: the page's query parameters
        def __init__(self, query):
            self.query_params = query

    app.unknown_tab_warning(Request({"tab": "resnet"}))
    app.unknown_tab_warning(Request({}))
    assert warnings == []
    app.unknown_tab_warning(Request({"tab": "<script>" * 20}))
    assert len(warnings) == 1 and "?tab=toy" in warnings[0] and len(warnings[0]) < 200


@pytest.mark.slow
def test_a_space_tells_the_app_where_to_serve(monkeypatch):
    seen = {}
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **options: seen.update(options))
    app.main([])
    assert (
        seen["server_name"] == "0.0.0.0" and seen["server_port"] == 7861 and seen["max_file_size"] == app.MAX_FILE_SIZE
    )


@pytest.fixture(scope="module")
def blocks():
    """The whole app, built once for the tests that read its wiring (a build starts the tabs' opening views)."""
    return app.build_app("cpu")


@pytest.mark.slow
def test_every_queued_event_has_a_chosen_concurrency_limit(blocks):
    # The defaults would let any number of one model's requests run at once; each event is given a limit,
    # and events that run the same model share one (their concurrency_id).
    queued = [fn for fn in blocks.fns.values() if fn.fn is not None and fn.queue]
    unlimited = [fn.name for fn in queued if fn.concurrency_limit == "default"]
    assert queued and unlimited == []
    by_model = {
        fn.api_name: fn.concurrency_id
        for fn in queued
        if fn.api_name in ("mnist", "resnet", "lm", "lm_concepts", "toy")
    }
    assert by_model["lm"] == by_model["lm_concepts"] == "lm"
    assert blocks._queue.max_size == 64  # a full queue says "busy, try again" instead of growing without bound


@pytest.mark.slow
def test_every_queued_event_reads_its_line_in_the_one_queue_table(blocks):
    """Concurrency ids and limits live in ``serving.QUEUES``: no event names a line of its own or changes a limit."""
    queued = [fn for fn in blocks.fns.values() if fn.queue]
    assert queued and all(fn.concurrency_id in serving.QUEUES for fn in queued), [
        fn.concurrency_id for fn in queued if fn.concurrency_id not in serving.QUEUES
    ]
    assert all(fn.concurrency_limit == serving.QUEUES[fn.concurrency_id].limit for fn in queued)
    assert {fn.concurrency_id for fn in queued} == set(serving.QUEUES)  # and no line is left unused


@pytest.mark.slow
def test_the_public_api_is_the_contract_table(blocks):
    """Every named endpoint, its inputs by name and in order, and a JSON summary first, as ``tests/contracts.py`` says."""
    info = blocks.get_api_info()["named_endpoints"]
    assert set(info) == set(ENDPOINTS)
    for name, endpoint in info.items():
        assert tuple(p["parameter_name"] for p in endpoint["parameters"]) == ENDPOINTS[name].inputs, name
        first = endpoint["returns"][0]["component"]
        assert (first == "Json") is (ENDPOINTS[name].summary is not None), (name, first)


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


@pytest.mark.slow
def test_a_started_server_reads_its_first_text_alongside_and_ends_the_reader_once_its_own_model_is_ready(tmp_path):
    """``python app.py`` forks the early reader (superpos_core.lm.early_reader) as it starts, and it is gone once the
    server's own copy of the model has loaded: no process is left behind."""
    import os
    import time
    import urllib.request

    from benchmarks.load import connect, free_port
    from tests import helpers

    hub = helpers.tiny_gpt2_in_hub_cache(tmp_path / "hub", words=["best", "times"])
    port = free_port()
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen(
        [sys.executable, "app.py", "--tab", "lm", "--port", str(port)],
        cwd=Path(app.__file__).parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, readers = time.monotonic() + 60, set()
        while not readers and time.monotonic() < deadline and server.poll() is None:
            readers = _children(server.pid)
            time.sleep(0.05)
        assert readers, "no reader was started alongside the server"
        while time.monotonic() < deadline and server.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        client = connect(f"http://127.0.0.1:{port}/")
        asked = ("It was the best of times.", "gpt2", 1, "most variable 64 dimensions")
        summary = client.predict(*asked, api_name="/lm")[0]
        assert summary["model"] == "gpt2" and summary["tokens"]
        while _children(server.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _children(server.pid), "the reader outlived the server's own load"
        assert client.predict(*asked, api_name="/lm")[0] == summary  # the server's own copy: the same numbers
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    assert "Traceback" not in errors, errors[-3000:]
