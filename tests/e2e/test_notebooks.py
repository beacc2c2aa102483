"""The notebooks run top to bottom on a real kernel, each in its own workspace holding the session's demo data
and MLflow store (so they neither generate nor, for scoring, train again), from a working directory that is
not the notebooks folder; and they are stored without outputs. How long they take is measured by
benchmarks, not here.

The notebooks get the demo's own settings (tests/demo.yaml: one candidate where configs/default.yaml searches six;
the full search is trained in tests/model/test_train_mlflow.py). Parameters are injected papermill-style: a cell after the one tagged `parameters` overrides its values.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the kernel: 2 shared cores

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
TIMEOUT_SECONDS = 300  # a hung cell fails the test instead of the run


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
def test_notebook_runs_top_to_bottom(path, tmp_path, demo_workspace):
    elsewhere = tmp_path / "cwd"  # the kernel's working directory: neither the project nor notebooks/
    elsewhere.mkdir()
    workspace = demo_workspace.notebook_workspace(tmp_path / "workspace")
    nb = _with_parameters(nbformat.read(path, as_version=4),
                          {"workdir": str(workspace), "customers": demo_workspace.customers,
                           "seed": demo_workspace.seed, "config_path": str(demo_workspace.config)})
    client = NotebookClient(nb, timeout=TIMEOUT_SECONDS, kernel_name="python3",
                            resources={"metadata": {"path": str(elsewhere)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, if any cell fails
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # Everything was written under the injected workspace, nothing in the working directory.
    assert (tmp_path / "workspace" / "data" / "customers.parquet").is_file()
    assert not any(elsewhere.iterdir())
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), "plots are rendered"
    if path.stem.startswith("03"):
        html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
        assert any("<html" in h.lower() or "report" in h.lower() for h in html)
        assert list((tmp_path / "workspace" / "outputs").glob("*/report.html"))
