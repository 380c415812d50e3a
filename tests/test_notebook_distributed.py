"""Lesson 4, the MPI job, run cell by cell against the offline workspace: its 2 ranks really run under mpiexec."""

import nbformat
from helpers import REPO, assert_nbval_passed, code_cell, layout, nbval, offline_env

NOTEBOOK = REPO / "notebooks" / "04-distributed-training.ipynb"


def test_committed_distributed_lesson_passes_nbval_strict(tmp_path, lesson_mnist_dir):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    result = nbval(layout(tmp_path, (NOTEBOOK.name, notebook)), offline_env(tmp_path / "workspace", lesson_mnist_dir))
    assert_nbval_passed(result)


def test_the_committed_run_is_two_ranks_of_rank_0_s_log():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    streamed = "".join(
        o.get("text", "") for o in notebook.cells[code_cell(notebook, "run.wait_for_completion(")].outputs
    )
    assert "Streaming logs/std_log_process_0.txt" in streamed
    assert "Device: CPU (NumPy); 2 MPI ranks, ChainerMN's naive communicator" in streamed
    assert "Status: Completed" in streamed
