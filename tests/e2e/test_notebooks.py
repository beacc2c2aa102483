"""The notebooks run top to bottom on a real kernel, each on its own small generated workspace, from a
working directory that is not the notebooks folder, within a minute; and they are stored without outputs.

Parameters are injected papermill-style: a cell after the one tagged `parameters` overrides its values.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the kernel: 2 shared cores

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
CUSTOMERS = 2000
MAX_SECONDS = 60  # each, kernel start included


def test_the_three_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == ["01_explore_data.ipynb", "02_train_and_evaluate.ipynb",
                                           "03_score_and_plan.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs_and_with_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs first"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "workdir = None" in tagged[0].source and "customers =" in tagged[0].source
    # Thin: the notebooks call the package and define nothing of their own.
    lines = [line.lstrip() for c in code for line in c.source.splitlines()]
    assert not any(line.startswith(("def ", "class ", "lambda")) for line in lines)


def _with_parameters(nb: nbformat.NotebookNode, values: dict[str, object]) -> nbformat.NotebookNode:
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(i + 1, cell)
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path):
    elsewhere = tmp_path / "cwd"  # the kernel's working directory: neither the project nor notebooks/
    elsewhere.mkdir()
    nb = _with_parameters(nbformat.read(path, as_version=4),
                          {"workdir": str(tmp_path / "workspace"), "customers": CUSTOMERS, "seed": 7})
    client = NotebookClient(nb, timeout=MAX_SECONDS * 2, kernel_name="python3",
                            resources={"metadata": {"path": str(elsewhere)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and traceback, if any cell fails
    seconds = time.perf_counter() - t0
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert seconds < MAX_SECONDS, f"{path.name} took {seconds:.0f} s"
    # Everything was written under the injected workspace, nothing in the working directory.
    assert (tmp_path / "workspace" / "data" / "customers.parquet").is_file()
    assert not any(elsewhere.iterdir())
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), "plots are rendered"
    if path.stem.startswith("03"):
        html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
        assert any("<html" in h.lower() or "report" in h.lower() for h in html)
        assert list((tmp_path / "workspace" / "outputs").glob("*/report.html"))
