"""The installed package: ``pip install .`` in a fresh venv, then used from another folder, as a teacher or Colab uses it.

A clean copy of the checkout (the files git would commit) is installed into a new virtual environment that sees this
interpreter's packages (so nothing is downloaded: the ranges in pyproject.toml must accept the pinned versions here).
From a folder outside the checkout: the ``superpos`` command answers ``--help``, the science imports with its bundled
assets, nothing generic (``demos``, ``app``) is installed at the top level, and ``superpos.launch`` in a notebook
kernel serves the app and shows it inline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # installs the package into a fresh venv (about half a minute)


def checkout_copy(into: Path) -> Path:
    """The files of a clean checkout: tracked ones and new ones git does not ignore (no caches, no build output)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv with superpos installed from a clean copy; its bin folder, and a folder outside any checkout."""
    root = tmp_path_factory.mktemp("package")
    source = checkout_copy(root / "source")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    done = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "--no-build-isolation", "--no-input", str(source)],
        capture_output=True,
        text=True,
        env=environment(venv),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return venv / "bin", elsewhere


def environment(venv: Path | None = None, bin_folder: Path | None = None) -> dict:
    """This process's environment with nothing that points at the checkout, and the venv's programs first."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    folder = bin_folder or (venv / "bin" if venv else None)
    if folder:
        env["PATH"] = f"{folder}{os.pathsep}{env.get('PATH', '')}"
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    return env


def run_there(installed, *command, timeout=300) -> subprocess.CompletedProcess:
    bin_folder, elsewhere = installed
    done = subprocess.run(
        command, cwd=elsewhere, capture_output=True, text=True, env=environment(bin_folder=bin_folder), timeout=timeout
    )
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_command_takes_the_apps_flags(installed):
    shown = run_there(installed, "superpos", "--help").stdout
    assert shown.startswith("usage: superpos")
    for flag in ("--host", "--port", "--device", "--tab", "--threads", "--allow-any-model"):
        assert flag in shown
    assert run_there(installed, "python", "-m", "superpos", "--help").stdout == shown


def test_the_science_imports_from_anywhere_with_its_assets(installed):
    bin_folder, _ = installed
    venv = bin_folder.parent
    probe = textwrap.dedent(
        """
        import importlib, importlib.util, json
        import superpos, superpos_core
        from superpos_core import mnist, paths
        model = mnist.load_simplenet()
        sample = mnist.load_sample()
        print(json.dumps({
            "core": superpos_core.__file__,
            "app": superpos._app().__file__,
            "assets": str(paths.ASSETS),
            "accuracy": mnist.accuracy(model, sample.test),
            "top_level": {name: importlib.util.find_spec(name) is not None for name in ("demos", "app")},
            "tabs": list(superpos.TABS),
            "lessons": list(importlib.import_module("superpos.demos.lesson_files").load()[0]),
        }))
        """
    )
    found = json.loads(run_there(installed, "python", "-c", probe).stdout.strip().splitlines()[-1])
    for key in ("core", "app", "assets"):
        assert Path(found[key]).resolve().is_relative_to(venv.resolve()), (key, found[key])
    assert Path(found["app"]).parent.name == "superpos" and Path(found["assets"]).parent.name == "superpos_core"
    assert found["top_level"] == {"demos": False, "app": False}  # nothing generic at the top level of site-packages
    assert found["tabs"] == ["toy", "mnist", "resnet", "lm", "lessons"]
    assert found["lessons"] == sorted(path.stem for path in (REPO / "lessons").glob("*.toml"))  # package data
    # the bundled SimpleNet, read from the installed assets, is the one the checkout reads
    from superpos_core import mnist

    assert found["accuracy"] == mnist.accuracy(mnist.load_simplenet(), mnist.load_sample().test) > 0.9


def test_launch_shows_the_app_inline_in_a_notebook_kernel(installed, tmp_path):
    """A notebook cell ``superpos.launch(tab="toy")``: the server answers and the cell's output is the app's frame."""
    import nbformat

    cells = [
        "import superpos\ndemo = superpos.launch(tab='toy')",
        "import urllib.request\nwith urllib.request.urlopen(demo.local_url + 'config') as answer:\n"
        "    config = answer.read().decode()\nprint(answer.status, 'Toy model' in config, 'Language model' in config)",
        "demo = superpos.launch(tab='toy')  # a re-run cell: the first server is closed, a new one shown\ndemo.close()",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "launch.ipynb"
    nbformat.write(notebook, path)
    runner = textwrap.dedent(
        f"""
        import nbformat
        from nbclient import NotebookClient
        notebook = nbformat.read({str(path)!r}, as_version=4)
        NotebookClient(notebook, timeout=240, kernel_name="python3").execute()
        nbformat.write(notebook, {str(path)!r})
        """
    )
    run_there(installed, "python", "-c", runner, timeout=400)
    ran = nbformat.read(path, as_version=4)
    first, second, third = (cell.outputs for cell in ran.cells)
    frames = [o for o in first + third if o.output_type == "display_data" and "text/html" in o.data]
    assert len(frames) == 2 and all('<iframe src="http://127.0.0.1:' in o.data["text/html"] for o in frames)
    printed = "".join(o.get("text", "") for o in second if o.output_type == "stream")
    assert printed.split() == ["200", "True", "False"], printed  # the toy tab alone is served
    assert not [o for cell in ran.cells for o in cell.outputs if o.output_type == "error"]
