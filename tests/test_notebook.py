"""Lessons 1 and 2, run cell by cell against the offline workspace.

nbval re-executes the committed notebooks in strict mode, in their order and in one workspace as `make tutorial`
does, and compares each cell's output with the committed one (real MNIST there, the tests' small data set here):
tests/nbval_sanitize.cfg masks only what truly varies.
"""

import os
import re

import nbformat
import pytest
from helpers import REPO, assert_nbval_passed, code_cell, layout, nbval, offline_env
from nbclient import NotebookClient

from azureml_offline.state.layout import WorkspaceFolder

NOTEBOOK = REPO / "notebooks" / "01-train-and-register.ipynb"
# Lesson 2 tunes what lesson 1 set up, in the same workspace, as make tutorial runs them. Lessons 3 and 4 have
# tests of their own (test_notebook_deploy.py, test_notebook_distributed.py) that lay out what each needs.
LESSONS = [NOTEBOOK, REPO / "notebooks" / "02-tune-hyperparameters.ipynb"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, lesson_mnist_dir):
    folder = tmp_path_factory.mktemp("tutorial")
    env = offline_env(folder / "workspace", lesson_mnist_dir)
    paths = layout(folder, *((path.name, nbformat.read(path, as_version=4)) for path in LESSONS))
    return paths[0], env, nbval(paths, env)


def test_committed_notebooks_pass_nbval_strict_in_order_in_one_workspace(first_run):
    _, _, result = first_run
    assert_nbval_passed(result)


def test_clean_rerun_finds_the_cluster_and_registers_the_next_version(first_run):
    path, env, _ = first_run
    # Lesson 1's model and the best of lesson 2's sweep, at least, are registered already.
    registered = len(WorkspaceFolder(env["AZUREML_OFFLINE_DIR"]).model_versions("chainer-dnn-mnist"))
    assert registered >= 2
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, resources={"metadata": {"path": str(path.parent)}}).execute(env=env)

    def text(containing):
        return "".join(o.get("text", "") for o in notebook.cells[code_cell(notebook, containing)].outputs)

    assert "Found the existing cluster gpu-cluster" in text("from azureml.core.compute import")
    assert f"Registered chainer-dnn-mnist version {registered + 1}" in text("model = run.register_model(")
    # The first run's evaluation imported the script from the project folder: it left no bytecode there.
    assert text("shutil.copy(") == "['chainer_mnist.py']\n"
    assert sorted(os.listdir(path.parent / "chainer-mnist")) == ["chainer_mnist.py"]


def test_nbval_fails_when_an_output_changes_shape_or_a_cell_raises(tmp_path, lesson_mnist_dir):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    table = code_cell(notebook, "metrics = run.get_metrics()")
    lines = notebook.cells[table].outputs[0]["text"].splitlines(keepends=True)
    notebook.cells[table].outputs[0]["text"] = "".join(lines[:-1])  # one epoch fewer than the run prints
    raising = code_cell(notebook, "model = run.register_model(")
    notebook.cells[raising].source = notebook.cells[raising].source.replace("outputs/model.npz", "outputs/missing.npz")
    del notebook.cells[raising + 1 :]  # the lesson's end, which the tests above run, adds nothing here

    result = nbval(layout(tmp_path, (NOTEBOOK.name, notebook)), offline_env(tmp_path / "workspace", lesson_mnist_dir))

    failed = {int(n) for n in re.findall(r"^FAILED .*::Cell (\d+)", result.stdout, re.MULTILINE)}
    code_cells = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    assert failed == {code_cells.index(table), code_cells.index(raising)}, result.stdout
