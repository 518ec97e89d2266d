"""What a hostile visitor can reach: files, upload sizes, model names; and how weights are read."""

from __future__ import annotations

import ast
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import app

pytestmark = pytest.mark.slow  # serves the app: not in the quick run (-m "not slow")

ROOT = Path(__file__).resolve().parents[2]
SECRETS = [
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=../../etc/passwd",
    "/gradio_api/file=%2Fetc%2Fpasswd",
    "/gradio_api/file=/proc/self/environ",
    "/gradio_api/file=app.py",  # the app's own source, relative
    f"/gradio_api/file={ROOT / 'app.py'}",  # and absolute
    "/gradio_api/file=assets/resnet_mnist.safetensors",
    "/static/../../app.py",
    "/assets/../../../etc/passwd",
    "/file=/etc/passwd",
]


def status(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=data, headers=headers or {}), timeout=30
        ) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize("path", SECRETS)
def test_no_file_outside_the_apps_own_is_served(server_url, path):
    code, body = status(server_url.rstrip("/") + path)
    assert code in (403, 404), (path, code)
    assert b"root:" not in body and b"import gradio" not in body


def test_an_upload_over_the_size_limit_is_refused(server_url):
    limit = 25 * 2**20
    assert app.MAX_FILE_SIZE == "25mb"
    boundary = "superpos-boundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
    body = head + b"\0" * (limit + 1) + f"\r\n--{boundary}--\r\n".encode()
    code, answer = status(
        server_url.rstrip("/") + "/gradio_api/upload",
        body,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert code == 413 and b"maximum allowed size" in answer


@pytest.mark.parametrize("model", ["/etc", "../../../tmp", "someone/some-model", "https://example.com/model.bin"])
def test_model_names_come_from_the_catalogue_only(server_url, model):
    client = Client(server_url, verbose=False)
    with pytest.raises(AppError) as caught:
        client.predict("It was the best of times.", model, 3, api_name="/lm")
    message = str(caught.value)
    assert "Traceback" not in message and ("not in the list of choices" in message or "Unknown model" in message), (
        message
    )


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and ast.unparse(node.func) == name]


def test_weights_are_read_only_in_safe_formats():
    for path in [ROOT / "app.py", *(ROOT / "demos").glob("*.py"), *(ROOT / "superpos_core").rglob("*.py")]:
        tree = ast.parse(path.read_text())
        for call in calls(tree, "torch.load"):
            keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
            assert keywords.get("weights_only") == "True", (
                f"{path.name}:{call.lineno} torch.load without weights_only=True"
            )
        for name in ("pickle.load", "pickle.loads", "np.load", "numpy.load"):
            for call in calls(tree, name):
                keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
                assert name.endswith("np.load") and keywords.get("allow_pickle", "False") == "False", (
                    f"{path.name}:{call.lineno} {name}"
                )
    bundled = sorted(
        p.suffix for p in (ROOT / "assets").rglob("*") if p.suffix in (".pt", ".pth", ".bin", ".pkl", ".safetensors")
    )
    assert bundled and set(bundled) == {".safetensors"}  # bundled weights: safetensors only
