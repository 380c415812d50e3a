"""Tracking offline as on Azure: interactive runs (Experiment.start_logging), child runs from a notebook and from a
script, tags and properties, finding runs by the SDK's filters, snapshots and files, experiments' own records."""

import io
import os
import zipfile

import numpy as np
import pytest
from azureml._restclient.exceptions import ServiceException
from azureml.exceptions import SnapshotException, UserErrorException
from helpers import script_config

from azureml_offline.backend import backend_of
from azureml_offline.experiment import Experiment
from azureml_offline.run import Run


@pytest.fixture
def notebook(fresh_workspace, tmp_path, monkeypatch):
    """The notebook's folder (the current one, which start_logging snapshots), with a file in it."""
    folder = tmp_path / "notebook"
    folder.mkdir()
    (folder / "analysis.py").write_text("print('hello')\n")
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def experiment(fresh_workspace, notebook):
    return Experiment(fresh_workspace, "tracking")


def test_an_interactive_run_is_running_at_once_and_gets_its_outputs_copied_when_it_completes(experiment, notebook):
    run = experiment.start_logging(display_name="first", tags={"kind": "notebook"})
    assert run.get_status() == "Running" and run.type is None and run.display_name == "first"
    assert run.name == f"run_{run.id}" and run.get_tags() == {"kind": "notebook"}
    (notebook / "outputs" / "model.txt").write_text("weights")  # start_logging made ./outputs, as the SDK does
    run.complete()
    assert run.get_status() == "Completed" and run.get_file_names() == ["outputs/model.txt"]
    assert (notebook / "outputs" / "model.txt").read_text() == "weights"  # copied, not moved
    run.fail("too late")  # a run that has ended keeps its status
    assert run.get_status() == "Completed" and "error" not in run.get_details()


def test_the_context_manager_completes_the_run_or_fails_it_with_the_exception(experiment, capsys):
    with experiment.start_logging(outputs=False) as completed:
        assert completed.get_status() == "Running"
        print("epoch 1: loss 0.3")
    assert completed.get_status() == "Completed"
    # The block's output: shown, and the run's logs/user_log.txt, as the SDK's RunContextManager keeps it.
    assert capsys.readouterr().out == "epoch 1: loss 0.3\n"
    completed.download_file("logs/user_log.txt", "user_log.txt")
    assert open("user_log.txt").read() == "epoch 1: loss 0.3\n"
    with pytest.raises(ZeroDivisionError):
        with experiment.start_logging(outputs=False) as failed:
            raise ZeroDivisionError("division by zero")
    error = failed.get_details()["error"]["error"]
    assert failed.get_status() == "Failed" and error["message"] == (
        "User program failed with ZeroDivisionError: division by zero"
    )


def test_fail_and_cancel_end_an_interactive_run_as_the_sdk_records_them(experiment):
    failed, canceled = experiment.start_logging(outputs=False), experiment.start_logging(outputs=False)
    failed.fail(error_details="bad data", error_code="DataError")
    canceled.cancel()
    assert failed.get_details()["error"]["error"] == {"code": "DataError", "message": "bad data"}
    assert (failed.get_status(), canceled.get_status()) == ("Failed", "Canceled")


def test_the_notebook_folder_is_snapshotted_and_restored_as_a_zip(experiment, notebook, tmp_path):
    run = experiment.start_logging(outputs=False)
    zipped = run.restore_snapshot(path=str(tmp_path / "restored"))
    assert zipped == str(tmp_path / "restored" / f"{run.get_snapshot_id()}.zip")
    assert zipfile.ZipFile(zipped).read("analysis.py") == b"print('hello')\n"
    with pytest.raises(SnapshotException, match="already has one"):
        run.take_snapshot(str(notebook))
    unsnapshotted = experiment.start_logging(outputs=False, snapshot_directory=None)
    assert unsnapshotted.get_snapshot_id() is None
    snapshot_id = unsnapshotted.take_snapshot(str(notebook / "analysis.py"))
    assert zipfile.ZipFile(unsnapshotted.restore_snapshot(snapshot_id, str(tmp_path))).namelist() == ["analysis.py"]


def test_child_runs_of_a_notebook_run(experiment):
    with experiment.start_logging(outputs=False, snapshot_directory=None) as parent:
        with parent.child_run("part") as child:
            child.log("loss", 0.5)
        batch = parent.create_children(tag_key="fold", tag_values=["a", "b"])
        for run in batch:
            run.complete()
    children = list(parent.get_children())
    assert [child.id for child in children] == [child.id, *(run.id for run in batch)]
    assert child.name == f"run_{parent.id}>part" and child.parent.id == parent.id
    assert [run.get_tags() for run in batch] == [{"fold": "a"}, {"fold": "b"}]
    assert [child.id for child in parent.get_children(tags={"fold": "b"})] == [batch[1].id]
    assert {child.get_status() for child in children} == {"Completed"}
    with pytest.raises(UserErrorException, match="more than 100"):
        parent.create_children(count=101)


def test_child_runs_of_a_script_and_a_child_left_running_fails_when_the_script_ends(experiment, tmp_path):
    source = """
        from azureml.core import Run
        run = Run.get_context()
        done, left = run.create_children(count=2)
        done.complete()
        with run.child_run("part") as part:
            part.tag("step", "prepare")
        run.complete()  # the script's own run: its runner records how it ends
        """
    run = experiment.submit(script_config(tmp_path / "src", source))
    run.wait_for_completion(raise_on_error=True)
    done, left, part = run.get_children()
    assert [child.get_tags() for child in (done, left)] == [
        {"azureml.batch_child_number": "0"},
        {"azureml.batch_child_number": "1"},
    ]
    assert (done.get_status(), part.get_status(), part.name) == ("Completed", "Completed", ">part")
    assert (
        left.get_status() == "Failed" and "ended without completing" in left.get_details()["error"]["error"]["message"]
    )
    assert [found.id for found in experiment.get_runs()] == [run.id]  # the children only with include_children
    assert len(list(experiment.get_runs(include_children=True))) == 4


def test_runs_are_found_by_the_sdks_filters(experiment, fresh_workspace):
    first = experiment.start_logging(outputs=False, snapshot_directory=None, tags={"quality": "great"})
    first.add_properties({"author": "azureml-user"})
    first.complete()
    second = experiment.start_logging(outputs=False, snapshot_directory=None)
    second.tag("worth another look")

    def ids(runs):
        return [run.id for run in runs]

    assert ids(experiment.get_runs()) == [second.id, first.id]  # newest first
    assert ids(experiment.get_runs(properties={"author": "azureml-user"}, tags={"quality": "great"})) == [first.id]
    assert ids(experiment.get_runs(tags="worth another look")) == [second.id]
    assert ids(experiment.get_runs(properties="author", tags="worth another look")) == []
    assert ids(Run.list(experiment, status="Completed")) == [first.id]
    assert ids(Run.list(experiment, type="azureml.scriptrun")) == []
    assert Run.get(fresh_workspace, first.id).id == first.id
    with pytest.raises(UserErrorException):
        list(experiment.get_runs(tags=["quality"]))


def test_properties_can_be_added_but_never_changed(experiment):
    run = experiment.start_logging(outputs=False, snapshot_directory=None)
    run.add_properties({"author": "azureml-user", "epochs": 10})
    run.add_properties({"author": "azureml-user"})  # the same value again: nothing changes
    with pytest.raises(ServiceException, match="'author' is 'azureml-user', not 'different-user'") as raised:
        run.add_properties({"author": "different-user", "new": "x"})
    assert raised.value.status_code == 400
    assert {key: run.get_properties()[key] for key in ("author", "epochs")} == {
        "author": "azureml-user",
        "epochs": "10",
    }
    assert "new" not in run.get_properties()  # nothing of a refused change is kept


def test_tags_are_set_changed_and_removed(experiment):
    run = experiment.start_logging(outputs=False, snapshot_directory=None)
    run.tag("quality", "great run")
    run.set_tags({"quality": "fantastic run", "epochs": 3})
    run.tag("worth another look")
    run.set_tags({"seed": np.int64(1), "layers": [64, 32]})  # strings, as the SDK's _sanitize_tags sends them
    run.remove_tags(["quality", "never set"])
    assert run.get_tags() == {"epochs": "3", "worth another look": None, "seed": "1", "layers": "[64, 32]"}
    assert Run(experiment, run.id).tags == run.get_tags()  # recorded, as another process reads them
    with pytest.raises(UserErrorException):
        run.remove_tags("epochs")  # a list of names, not one


def test_status_is_as_last_read_as_the_sdk_keeps_its_run_record(experiment):
    """A loop on run.status never ends on Azure, where it is the cached run record's; get_status() reads again."""
    run = experiment.start_logging(outputs=False, snapshot_directory=None)
    other = Run(experiment, run.id)
    assert other.status == "Running"
    run.complete()
    assert other.status == "Running"
    assert other.get_status() == "Completed" and other.status == "Completed"


def test_display_name_and_description_can_be_changed(experiment):
    run = experiment.start_logging(outputs=False, snapshot_directory=None, description="first try")
    assert (run.display_name, run.description) == (run.id, "first try")
    run.display_name, run.description = "baseline", "the baseline"
    reopened = Run(experiment, run.id)
    assert (reopened.display_name, reopened.description) == ("baseline", "the baseline")


def test_upload_folder_follows_no_link_out_of_the_folder(experiment, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not the run's")
    folder = tmp_path / "results"
    (folder / "plots").mkdir(parents=True)
    (folder / "plots" / "loss.txt").write_text("0.5")
    os.symlink(secret, folder / "leak.txt")
    os.symlink(folder / "plots" / "loss.txt", folder / "same.txt")
    run = experiment.start_logging(outputs=False, snapshot_directory=None)
    run.upload_folder("results", str(folder))
    assert run.get_file_names() == ["results/plots/loss.txt", "results/same.txt"]
    run.upload_files(["a.txt", "b.txt"], [str(secret), str(secret)])
    assert {"a.txt", "b.txt"} <= set(run.get_file_names())
    with pytest.raises(TypeError):
        run.upload_files(["a.txt"], [])


def test_files_go_up_and_down_as_the_sdk_s_artifacts_client_takes_them(experiment, notebook):
    """upload_file takes a path as a str or a stream, nothing else; download_files' prefix is a folder, and
    append_prefix=False takes it off under an output_directory (the SDK's artifacts_client.py)."""
    run = experiment.start_logging(outputs=False, snapshot_directory=None)
    run.upload_file("outputs/model.npz", "analysis.py")
    run.upload_file("outputs_old/model.npz", io.BytesIO(b"old"))
    run.upload_file("outputs.json", io.StringIO("{}"))
    with pytest.raises(UserErrorException, match="UnsupportedType"):
        run.upload_file("p.txt", notebook / "analysis.py")
    with pytest.raises(FileNotFoundError):
        run.upload_file("m.txt", "missing.txt")
    run.download_files(prefix="outputs", output_directory="all")
    run.download_files(prefix="outputs", output_directory="bare", append_prefix=False)
    run.download_files(prefix="outputs_old", output_paths=["old.npz"])
    downloaded = sorted(str(path.relative_to(notebook)) for path in notebook.rglob("*") if path.is_file())
    assert downloaded == ["all/outputs/model.npz", "analysis.py", "bare/model.npz", "old.npz"]
    assert (notebook / "old.npz").read_bytes() == b"old"


def test_get_all_logs_writes_each_log_and_returns_the_paths(experiment, tmp_path):
    run = experiment.start_logging(outputs=False, snapshot_directory=None)
    run.upload_file("logs/user_log.txt", str(tmp_path / "notebook" / "analysis.py"))
    assert run.get_all_logs(str(tmp_path / "logs")) == [str(tmp_path / "logs" / "logs" / "user_log.txt")]
    assert (tmp_path / "logs" / "logs" / "user_log.txt").read_text() == "print('hello')\n"


def test_an_experiment_keeps_its_id_tags_and_archived_state(fresh_workspace, notebook):
    experiment = Experiment(fresh_workspace, "kept")
    other = Experiment(fresh_workspace, "other")
    assert experiment.id == Experiment(fresh_workspace, "kept").id != other.id
    experiment.set_tags({"team": "vision", "stage": "dev"})
    experiment.remove_tags(["stage"])
    assert Experiment(fresh_workspace, "kept").tags == {"team": "vision"}
    experiment.archive()
    assert experiment.archived_time is not None
    assert [found.name for found in Experiment.list(fresh_workspace)] == ["other"]
    assert list(fresh_workspace.experiments) == ["other"]  # the SDK's: Experiment.list's active ones
    assert [found.name for found in Experiment.list(fresh_workspace, view_type="ArchivedOnly", tags="team")] == ["kept"]
    experiment.reactivate()
    assert len(Experiment.list(fresh_workspace)) == 2
    Experiment.delete(fresh_workspace, other.id)
    assert backend_of(fresh_workspace).experiment_names() == ["kept"]


def test_what_needs_azure_says_so(experiment):
    run = experiment.start_logging(outputs=False, snapshot_directory=None)
    for call in (run.get_portal_url, lambda: run.get_secret("key"), experiment.get_portal_url):
        with pytest.raises(UserErrorException, match="needs an Azure ML workspace"):
            call()
    assert Run.get_docs_url().startswith("https://docs.microsoft.com/")
