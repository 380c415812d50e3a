"""state.layout.WorkspaceFolder: the layout that sweeps (child runs), web services and MPI jobs (per-rank logs)
build on."""

import os

import pytest
from azureml.exceptions import UserErrorException

from azureml_offline.experiment import Experiment
from azureml_offline.run import Run
from azureml_offline.state.layout import WorkspaceFolder
from azureml_offline.workspace import workspace_at


def new_run(folder, experiment, run_id, status="Completed", parent=None, tags=None):
    """A run with no runner, as a sweep records its parent and children."""
    definition = {"runId": run_id, "target": "local", "runDefinition": {"script": "train.py", "arguments": []}}
    if parent:
        definition["parentRunId"] = parent
    run, lock = folder.new_run(experiment, definition, tags)
    os.close(lock)
    run.write_status({"status": status})
    return run


def test_child_runs_know_their_parent_and_are_listed_under_it(tmp_path):
    folder = WorkspaceFolder.open(tmp_path)
    new_run(folder, "sweep", "HD_1")
    for n in range(3):
        new_run(
            folder, "sweep", f"HD_1_{n}", parent="HD_1", status="Failed" if n == 1 else "Completed", tags={"n": str(n)}
        )
    new_run(folder, "sweep", "HD_1_0_0", parent="HD_1_0")
    new_run(folder, "sweep", "other")
    assert [run.run_id for run in folder.children("sweep", "HD_1")] == ["HD_1_0", "HD_1_1", "HD_1_2"]

    experiment = Experiment(workspace_at(folder.root), "sweep")
    parent = Run(experiment, "HD_1")
    assert [child.id for child in parent.get_children()] == ["HD_1_0", "HD_1_1", "HD_1_2"]
    assert [child.id for child in parent.get_children(recursive=True)] == ["HD_1_0", "HD_1_0_0", "HD_1_1", "HD_1_2"]
    assert [child.id for child in parent.get_children(status="Failed")] == ["HD_1_1"]
    assert [child.id for child in parent.get_children(tags={"n": "2"})] == ["HD_1_2"]
    assert Run(experiment, "HD_1_2").parent.id == "HD_1" and parent.parent is None
    assert list(parent.get_children(type="hyperdrive")) == [] and len(list(parent.get_children(type=None))) == 3


def test_a_service_is_published_whole_listed_and_removed_aside(tmp_path):
    folder = WorkspaceFolder.open(tmp_path)
    assert folder.service_names() == [] and not folder.service("svc").definition.exists()

    def fill(service):
        service.app.mkdir()
        service.definition.write_text("{}")
        return "filled"

    assert folder.new_service("svc", fill) == "filled"
    assert folder.service_names() == ["svc"] and folder.service("svc").app.is_dir()
    with pytest.raises(FileExistsError):
        folder.new_service("svc", fill)
    with pytest.raises(ZeroDivisionError):  # a failed fill leaves nothing behind
        folder.new_service("other", lambda service: (service.app.mkdir(), 1 / 0))
    aside = folder.remove_service("svc")
    assert folder.service_names() == [] and aside.definition.exists() and folder.remove_service("svc") is None
    aside.discard()
    assert not aside.path.exists() and set(os.listdir(tmp_path / ".staging")) == set()


def test_names_cannot_leave_their_folder(tmp_path):
    folder = WorkspaceFolder.open(tmp_path)
    for name in ("", ".", "..", "../x", "a/b", None, 3):
        for call in (folder.service, folder.read_compute, folder.model_versions, folder.add_experiment):
            with pytest.raises(UserErrorException):
                call(name)
    assert set(os.listdir(tmp_path)) <= {".staging", "workspace.json"} and not (tmp_path.parent / "x").exists()


def test_a_run_folder_knows_its_workspace_experiment_number_and_rank_logs(tmp_path):
    folder = WorkspaceFolder.open(tmp_path)
    run = new_run(folder, "mpi", "mpi_1")
    found, experiment, number = WorkspaceFolder.of_run(run.path)
    assert (found, experiment, number) == (folder, "mpi", 1)
    assert run.log().relative_to(run.files).as_posix() == "logs/std_log.txt"
    assert run.log(rank=1).relative_to(run.files).as_posix() == "logs/std_log_process_1.txt"
