"""Every notebook in notebooks/ runs top to bottom in a fresh kernel, as a reader runs it (nbclient).

The kernel starts in the repository's root, so ``import superpos_core`` finds the checkout (a reader who
installed the package finds it installed). A cell that raises fails the test with that cell's error.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CELL_LIMIT_S = 300  # a hung cell fails here rather than hanging CI; each notebook takes well under a minute


def run_notebook(path: Path) -> nbformat.NotebookNode:
    """Execute ``path`` in a fresh python3 kernel started in the repository's root; returns the executed notebook."""
    notebook = nbformat.read(path, as_version=4)
    env_before = os.environ.get("OMP_NUM_THREADS")
    client = NotebookClient(
        notebook,
        timeout=CELL_LIMIT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(REPO)}},
    )
    client.execute()
    assert os.environ.get("OMP_NUM_THREADS") == env_before
    return notebook


def test_there_is_a_notebook_per_chapter():
    assert len(NOTEBOOKS) >= 4, [p.name for p in NOTEBOOKS]


def test_notebooks_are_stored_without_outputs():
    """Outputs are made by running, not kept in git: a stored picture would go stale as the code changes."""
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} holds outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_runs(path: Path):
    notebook = run_notebook(path)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count for cell in code)
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert not errors, errors
    # Each figure a cell returns is shown as a picture, not as "<Figure size ...>".
    shown = [out for cell in code for out in cell.outputs if out.output_type in ("display_data", "execute_result")]
    assert not any(
        "<Figure size" in out.get("data", {}).get("text/plain", "") and "image/png" not in out.get("data", {})
        for out in shown
    )
