"""Runs in the offline workspace: real subprocesses, real files, the SDK's shapes and exceptions."""

import inspect
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest
from azureml.core.compute import AmlCompute
from azureml.core.compute import ComputeTarget as SdkComputeTarget
from azureml.exceptions import (
    ActivityFailedException,
    ComputeTargetException,
    ModelPathNotFoundException,
    UserErrorException,
    WebserviceException,
)
from helpers import alive, eventually, script_config, started_script

import azureml_offline
from azureml_offline import compute
from azureml_offline.backend import backend_of
from azureml_offline.compute import ComputeTarget
from azureml_offline.experiment import Experiment
from azureml_offline.model import Model
from azureml_offline.run import Run
from azureml_offline.state import files as store
from azureml_offline.workspace import Workspace

# A classic Azure ML v1 training script: nothing in it knows about the offline workspace.
CLASSIC_SCRIPT = """
import argparse, os
from azureml.core.run import Run

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--output_dir")
args = parser.parse_args()
run = Run.get_context()
run.log("Epochs", args.epochs)
for epoch in range(args.epochs):
    run.log("Accuracy", 0.5 + epoch / 10)
    print("epoch", epoch, flush=True)
run.log_list("Losses", [0.3, 0.2])
run.log_row("Table", epoch=1, loss=0.3)
run.log_row("Table", epoch=2, loss=0.2)
run.log_row("Row", a=1)
run.tag("from-script", "yes")
os.makedirs(args.output_dir, exist_ok=True)
with open(os.path.join(args.output_dir, "model.npz"), "w") as f:
    f.write("weights")
print("MNIST_DIR=" + os.environ.get("MNIST_DIR", ""))
"""


MNIST_DIR_BEFORE = os.environ.get("MNIST_DIR")  # the user's own: the fixtures leave it as it was


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """One workspace for this module's runs (a run takes seconds); each test uses names of its own in it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AZUREML_OFFLINE_DIR", str(tmp_path_factory.mktemp("workspace")))
        yield Workspace.from_config()


@pytest.fixture(scope="module")
def finished_run(workspace, tmp_path_factory):
    target = ComputeTarget.create(
        workspace,
        "gpu-cluster",
        AmlCompute.provisioning_configuration(vm_size="STANDARD_NC4AS_T4_V3", min_nodes=0, max_nodes=4),
    )
    config = script_config(
        tmp_path_factory.mktemp("src"), CLASSIC_SCRIPT, ["--epochs", 3, "--output_dir", "./outputs"], target
    )
    with pytest.MonkeyPatch.context() as patch:  # puts back the user's own MNIST_DIR, if any
        patch.setenv("MNIST_DIR", "inherited")
        run = Experiment(workspace, "classic").submit(config, tags={"kind": "test"})
    run.wait_for_completion()
    return run


def test_workspace_says_it_is_offline(workspace):
    assert (workspace.name, workspace.location, workspace.subscription_id) == ("offline-workspace", "local", "offline")
    with pytest.raises(UserErrorException):
        Workspace.get("someone-elses")


def test_a_classic_script_runs_unchanged(finished_run, capsys):
    details = finished_run.wait_for_completion(show_output=True)
    shown = capsys.readouterr().out
    assert details["status"] == finished_run.get_status() == "Completed"
    assert details["runDefinition"]["arguments"] == ["--epochs", "3", "--output_dir", "./outputs"]
    assert details["target"] == "gpu-cluster" and "submittedBy" in details  # a key of the SDK's, None offline
    assert "epoch 2\n" in shown and "MNIST_DIR=inherited" in shown  # the log, and the parent's environment
    assert os.environ.get("MNIST_DIR") == MNIST_DIR_BEFORE
    assert finished_run.get_file_names() == ["logs/std_log.txt", "outputs/model.npz"]
    assert finished_run.get_tags() == {"kind": "test", "from-script": "yes"}


def test_the_environment_s_and_the_run_configuration_s_variables_reach_the_script(workspace, tmp_path, capsys):
    """As the job sets them on Azure: the environment's, then the run configuration's (which win); and the run
    keeps the environment it was submitted with, as Azure's runDefinition does."""
    names = ["FROM_ENVIRONMENT", "SHARED", "FROM_RUN_CONFIG", "OMP_NUM_THREADS"]
    config = script_config(tmp_path, f"import os\nprint([os.environ[name] for name in {names}])\n")
    config.run_config.environment.environment_variables = {"FROM_ENVIRONMENT": "e", "SHARED": "environment"}
    config.run_config.environment.docker.base_image = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
    config.run_config.environment_variables = {"FROM_RUN_CONFIG": "r", "SHARED": "run config", "OMP_NUM_THREADS": 3}
    run = Experiment(workspace, "variables").submit(config)
    assert run.wait_for_completion(show_output=True)["runDefinition"]["environment"]["name"] == "test-env"
    assert "['e', 'run config', 'r', '3']" in capsys.readouterr().out
    assert run.get_environment().docker.base_image == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"


def test_the_script_finds_its_outputs_folder_made_for_it_as_on_azure(workspace, tmp_path):
    """Microsoft's own Chainer notebook's script saves ./outputs/model.npz without creating the folder."""
    run = Experiment(workspace, "outputs-made").submit(script_config(tmp_path, "open('outputs/m.txt', 'w').write('m')"))
    assert run.wait_for_completion()["status"] == "Completed"
    assert run.get_file_names() == ["logs/std_log.txt", "outputs/m.txt"]


def test_the_script_s_sdk_calls_reach_its_run_s_workspace(tmp_path, monkeypatch):
    """As a job's on Azure: a script that registers a model with run.experiment.workspace (as users' scripts and
    MLOps templates do), or that opens Workspace.from_config(), works in the run's workspace."""
    script = """
        import os
        from azureml.core import Model, Run, Workspace
        run = Run.get_context()
        open("outputs/weights.bin", "w").write("w")
        Model.register(run.experiment.workspace, "outputs/weights.bin", "from-a-script", tags={"run": run.id})
        print("same workspace:", [m.name for m in Model.list(Workspace.from_config(), "from-a-script")])
        print("a Run:", isinstance(run, Run))
        """
    monkeypatch.delenv(
        "AZUREML_OFFLINE_DIR", raising=False
    )  # the workspace is ./.azureml-offline here, not in the run's folder
    monkeypatch.chdir(tmp_path)
    workspace = Workspace.from_config()
    run = Experiment(workspace, "script-sdk").submit(script_config(tmp_path / "src", script))
    assert run.wait_for_completion()["status"] == "Completed", run.get_details()
    assert Model(workspace, "from-a-script").tags == {"run": run.id}
    log = run.get_details_with_logs()["logFiles"]["logs/std_log.txt"]
    assert "same workspace: ['from-a-script']" in log and "a Run: True" in log


def test_a_submitted_run_records_the_source_directory_s_git_state(workspace, tmp_path):
    """As the SDK's ScriptRunConfig submit does (global_tracking_info_registry): branch, commit, dirty."""
    config = script_config(tmp_path, "print('ran')")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    for command in (["init", "-q", "-b", "main"], ["add", "train.py"], ["commit", "-q", "-m", "first"]):
        subprocess.run(git + command, check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    run = Experiment(workspace, "git-state").submit(config)
    properties = run.get_properties()
    assert (properties["azureml.git.branch"], properties["azureml.git.commit"]) == ("main", commit)
    assert properties["azureml.git.dirty"] == "False" and properties["mlflow.source.git.commit"] == commit
    run.wait_for_completion()


def test_the_snapshot_leaves_out_a_workspace_inside_source_directory(tmp_path, monkeypatch):
    source = tmp_path / "src"
    monkeypatch.setenv("AZUREML_OFFLINE_DIR", str(source / "my-workspace"))  # not named .azureml-offline
    run = Experiment(Workspace.from_config(), "nested").submit(script_config(source, "print('ran')"))
    assert sorted(os.listdir(backend_of(run).folder_of(run).snapshot)) == ["train.py"]
    assert run.wait_for_completion()["status"] == "Completed"


def test_metrics_come_back_in_the_sdk_shapes(finished_run):
    assert finished_run.get_metrics() == {
        "Epochs": 3,  # logged once: the value
        "Accuracy": [0.5, 0.6, 0.7],  # logged repeatedly: the list
        "Losses": [0.3, 0.2],
        "Table": {"epoch": [1, 2], "loss": [0.3, 0.2]},  # a table: its columns
        "Row": {"a": 1},  # a one-row table: the row
    }
    assert finished_run.get_metrics("Epochs") == {"Epochs": 3}


def test_files_download_and_stay_inside_the_target(finished_run, tmp_path):
    finished_run.download_file("outputs/model.npz", output_file_path=str(tmp_path))
    assert (tmp_path / "model.npz").read_text() == "weights"
    finished_run.download_files(prefix="outputs", output_directory=str(tmp_path / "all"))
    assert (tmp_path / "all" / "outputs" / "model.npz").exists()
    for crafted in ["../run.json", "/etc/passwd", "outputs/../../status.json", ""]:
        with pytest.raises(UserErrorException):
            finished_run.download_file(crafted, output_file_path=str(tmp_path / "x"))
    with pytest.raises(UserErrorException):
        finished_run.upload_file("../../escaped.txt", str(tmp_path / "model.npz"))
    assert not (tmp_path / "x").exists()


def test_models_are_versioned_and_immutable(finished_run, workspace, tmp_path):
    first = finished_run.register_model(model_name="mnist", model_path="outputs/model.npz", tags={"t": "1"})
    second = finished_run.register_model(model_name="mnist", model_path="outputs", description="folder")
    assert (first.version, second.version, first.id) == (1, 2, "mnist:1")
    assert (Model(workspace, "mnist").version, Model(workspace, "mnist", version=1).tags) == (2, {"t": "1"})
    assert first.run_id == finished_run.id
    assert Model(workspace, "mnist", version=1).download(str(tmp_path)) == str(tmp_path / "model.npz")
    assert (tmp_path / "model.npz").read_text() == "weights"
    with pytest.raises(WebserviceException):
        first.download(str(tmp_path))  # exists: the SDK wants exist_ok=True
    # The folder holds one file: the SDK returns the common path of the files it downloads, that file.
    assert Model(workspace, id="mnist:2").download(str(tmp_path / "d")) == str(tmp_path / "d" / "outputs" / "model.npz")
    assert [m.id for m in Model.list(workspace) if m.name == "mnist"] == ["mnist:2", "mnist:1"]
    assert [m.id for m in Model.list(workspace, "mnist", latest=True)] == ["mnist:2"]
    with pytest.raises(ModelPathNotFoundException, match="outputs/missing.npz"):  # the SDK's, not a Webservice one
        finished_run.register_model(model_name="mnist", model_path="outputs/missing.npz")
    with pytest.raises(WebserviceException):
        Model(workspace, "mnist", version=3)
    # The path normalised, as the SDK does: Microsoft's train-on-local notebook passes './outputs/ridge_0.40.pkl'.
    third = finished_run.register_model(model_name="mnist", model_path="./outputs//model.npz")
    assert (third.version, third.download(str(tmp_path / "3"))) == (3, str(tmp_path / "3" / "model.npz"))


def test_a_failed_registration_leaves_nothing_behind(workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_text("w")
    os.symlink(tmp_path / "gone", tmp_path / "model" / "dangling")
    with pytest.raises(shutil.Error, match="dangling"):  # found while copying, after weights.bin
        Model.register(workspace, "model", "unwritable")
    with pytest.raises(TypeError, match="float32"):  # the SDK's own: JSON cannot write it
        Model.register(workspace, "model/weights.bin", "unwritable", tags={"accuracy": np.float32(0.98)})
    assert list((backend_of(workspace).root / ".staging").iterdir()) == []  # no staged version, no temporary model.json
    assert "unwritable" not in backend_of(workspace).model_names()


def test_written_files_follow_the_umask(tmp_path):
    store.write_json(tmp_path / "a.json", {"a": 1})
    store.append_record(tmp_path / "b.jsonl", {"b": 1})
    umask = os.umask(0o22)
    os.umask(umask)
    expected = 0o666 & ~umask
    assert [stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("a.json", "b.jsonl")] == [expected] * 2


def test_a_half_appended_last_line_is_not_read_yet(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"name": "a", "value": 1}\n{"name": "b", "val')
    assert store.read_records(tmp_path / "m.jsonl") == [{"name": "a", "value": 1}]


def test_the_sdk_s_extra_arguments_are_accepted(finished_run, workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.bin").write_text("w")
    model = Model.register(workspace, "weights.bin", "framed", model_framework="Custom", model_framework_version="1.0")
    assert (Model(workspace, "framed").model_framework, model.model_framework_version) == ("Custom", "1.0")
    model = finished_run.register_model("framed", "outputs/model.npz", None, None, "Chainer", "7.8.1", "d")
    assert (model.model_framework, model.model_framework_version, model.description) == ("Chainer", "7.8.1", "d")
    with pytest.raises(WebserviceException):
        Model.register(workspace, "weights.bin", "framed", model_framework_version="1.0")
    assert finished_run.wait_for_completion(False, True, True)["status"] == "Completed"
    target = ComputeTarget(workspace, "gpu-cluster")
    target.wait_for_completion(
        show_output=False, min_node_count=None, timeout_in_minutes=20
    )  # the 2019 tutorial's call


def test_a_gpu_driver_that_fails_is_no_gpu(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver'\nexit 9\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    compute.describe_gpus.cache_clear()  # read once per process: this test's PATH must be the one read
    try:
        assert compute.describe_gpus() == "no GPU (nvidia-smi failed)"
    finally:
        compute.describe_gpus.cache_clear()


def test_two_processes_registering_at_once_get_distinct_versions(workspace, tmp_path):
    (tmp_path / "weights.bin").write_text("w")
    register = (
        "from azureml_offline.workspace import Workspace; from azureml_offline.model import Model\n"
        "ws = Workspace.from_config()\n"
        "print([Model.register(ws, 'weights.bin', 'raced').version for _ in range(5)])"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", register], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    versions = [json.loads(p.communicate(timeout=60)[0].splitlines()[-1]) for p in processes]  # after "Registering"
    assert sorted(versions[0] + versions[1]) == list(range(1, 11))
    assert all(Model(workspace, "raced", version=v).download(str(tmp_path / str(v))) for v in range(1, 11))


def test_reopening_the_workspace_folder_finds_everything(finished_run):
    for _ in range(2):
        finished_run.register_model(model_name="reopened", model_path="outputs/model.npz")
    reopened = Workspace.from_config()
    experiment = reopened.experiments["classic"]
    (run,) = experiment.get_runs()
    assert (run.id, run.number, run.get_metrics()) == (finished_run.id, 1, finished_run.get_metrics())
    assert Run(experiment, finished_run.id).get_status() == "Completed"
    assert ComputeTarget(reopened, "gpu-cluster").get_status().serialize()["provisioningState"] == "Succeeded"
    assert [m.version for m in Model.list(reopened, "reopened")] == [2, 1]


def test_compute_targets_and_their_errors(workspace, tmp_path):
    with pytest.raises(ComputeTargetException):
        ComputeTarget(workspace=workspace, name="missing")
    with pytest.raises(ComputeTargetException):  # the SDK's own validation of the provisioning configuration
        ComputeTarget.create(workspace, "bad", AmlCompute.provisioning_configuration(max_nodes=-1))
    with pytest.raises(ComputeTargetException):
        ComputeTarget.create(workspace, "../escape", AmlCompute.provisioning_configuration(max_nodes=1))
    with pytest.raises(UserErrorException, match="local is a reserved name"):  # the SDK's own check
        ComputeTarget.create(workspace, "local", AmlCompute.provisioning_configuration(max_nodes=1))
    target = ComputeTarget.create(workspace, "cpu", AmlCompute.provisioning_configuration(max_nodes=2))
    status = target.get_status().serialize()
    assert status["scaleSettings"]["maxNodeCount"] == 2 and "CPU cores" in status["vmSize"]
    with pytest.raises(ComputeTargetException):
        Experiment(workspace, "classic").submit(script_config(tmp_path, "pass", compute_target="nowhere"))
    target.delete()
    assert target.provisioning_state == "Deleting"  # as the SDK sets it
    with pytest.raises(ComputeTargetException):
        ComputeTarget(workspace=workspace, name="cpu")


def test_wait_for_completion_prints_the_sdk_s_lines(workspace, capsys):
    """The SDK reports a provisioning operation's end only after create() or update(), then the nodes'."""
    created = ComputeTarget.create(workspace, "printed", AmlCompute.provisioning_configuration(max_nodes=2))
    created.wait_for_completion(show_output=True)
    ComputeTarget(workspace, "printed").wait_for_completion(show_output=True)
    first, found, _ = capsys.readouterr().out.split("nodes requested have been provisioned\n")
    end = "SucceededAmlCompute wait for completion finished\n\nMinimum number of "
    assert first.endswith('Provisioning operation finished, operation "Succeeded"\n' + end)
    assert "Provisioning operation" not in found and found.endswith(end)


def test_a_target_has_the_sdk_s_attributes(workspace):
    """Those that the SDK's AmlCompute and ComputeTarget set, read from the installed SDK's source; samples print
    provisioning_state, status.serialize() and scale_settings."""
    sdk = {
        name
        for sdk_class in (AmlCompute, SdkComputeTarget)
        for name in re.findall(r"self\.([a-z]\w*) = ", inspect.getsource(sdk_class))
    }
    configuration = AmlCompute.provisioning_configuration(vm_size="STANDARD_NC6", max_nodes=4, description="GPUs")
    target = ComputeTarget.create(workspace, "attributes", configuration)
    assert sorted(name for name in sdk if not hasattr(target, name)) == []
    assert (target.provisioning_state, target.vm_size, target.description) == ("Succeeded", "STANDARD_NC6", "GPUs")
    assert target.status.serialize()["provisioningState"] == "Succeeded"
    target.update(max_nodes=2)
    assert target.scale_settings.maximum_node_count == 2


def test_a_target_updates_lists_its_node_and_its_active_runs_and_says_what_needs_azure(workspace, tmp_path):
    """The calls of Microsoft's train-on-amlcompute notebook: AmlCompute.supported_vmsizes(ws) on the SDK's class,
    list_nodes(), update(); and get_active_runs()."""
    target = ComputeTarget.create(workspace, "cpu-2", AmlCompute.provisioning_configuration(max_nodes=4))
    target.update(min_nodes=1)
    scale = ComputeTarget(workspace, "cpu-2").get_status().scale_settings
    assert (scale.minimum_node_count, scale.maximum_node_count, scale.idle_seconds_before_scaledown) == (1, 4, 1800)
    with pytest.raises(ComputeTargetException, match="max nodes count must be greater"):  # the SDK's own check
        target.update(min_nodes=5)
    assert [node["nodeState"] for node in target.list_nodes()] == ["running"]
    with azureml_offline.activate(), pytest.raises(ComputeTargetException, match="any vm_size is accepted"):
        AmlCompute.supported_vmsizes(workspace=workspace)
    with pytest.raises(ComputeTargetException, match="needs an Azure ML workspace"):
        target.add_identity("SystemAssigned")
    config = script_config(tmp_path, "import time\ntime.sleep(60)", compute_target="cpu-2")
    run = Experiment(workspace, "on-cpu-2").submit(config)
    try:
        assert [active.run_id for active in target.get_active_runs()] == [run.id]
    finally:
        run.cancel()
    assert list(target.get_active_runs()) == []


def test_a_failing_script_fails_the_run(workspace, tmp_path, capsys):
    config = script_config(tmp_path, "print('about to fail')\n1 / 0\n")
    run = Experiment(workspace, "failing").submit(config)
    with pytest.raises(ActivityFailedException, match="ZeroDivisionError"):
        run.wait_for_completion(show_output=True)
    assert "about to fail" in capsys.readouterr().out
    details = run.get_details()
    assert details["status"] == "Failed"
    assert "ZeroDivisionError" in details["error"]["error"]["message"]
    run.download_file("logs/std_log.txt", str(tmp_path / "log.txt"))
    assert "ZeroDivisionError: division by zero" in (tmp_path / "log.txt").read_text()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Failed"


SLEEPER = """
import os, time
with open("pid", "w") as f:
    f.write(str(os.getpid()))
os.rename("pid", os.environ["PID_FILE"])
time.sleep(600)
"""


def test_a_run_whose_runner_dies_fails_instead_of_hanging(workspace, tmp_path, monkeypatch):
    """Killing the runner (not the script) fails the run, seen from its submitter and from a Run reopened from disk."""
    runs, reopened = [], []
    for name in ("a", "b"):
        monkeypatch.setenv("PID_FILE", str(tmp_path / f"{name}.pid"))
        runs.append(Experiment(workspace, "runner-killed").submit(script_config(tmp_path / name, SLEEPER)))
        reopened.append(Run(Experiment(workspace, "runner-killed"), runs[-1].id))
    script_pids = [started_script(tmp_path / f"{name}.pid") for name in ("a", "b")]
    for run in runs:
        os.kill(backend_of(run).runner(run.id).pid, signal.SIGKILL)

    errors = []
    waiting = threading.Thread(
        target=lambda: errors.append(pytest.raises(ActivityFailedException, runs[0].wait_for_completion)), daemon=True
    )
    waiting.start()
    waiting.join(timeout=10)
    assert not waiting.is_alive() and errors, "wait_for_completion still waits for a dead runner"
    assert "SIGKILL" in str(errors[0].value) or "Killed" in str(errors[0].value)
    assert runs[0].get_status() == "Failed"

    def reopened_run_failed():  # its runner is a zombie here, not reaped: as dead as one that is gone
        return reopened[1].get_status() == "Failed"

    eventually(reopened_run_failed, seconds=10)
    assert "runner" in reopened[1].get_details()["error"]["error"]["message"]
    for pid in script_pids:
        eventually(lambda pid=pid: not alive(pid))  # the script dies with its runner


HIDDEN_SITECUSTOMIZE = "import os\nos.environ['HIDDEN_SITECUSTOMIZE'] = 'ran'\n"
REPORTS_ITS_SITE = """
import os, subprocess, sys
from azureml.core import Run
run = Run.get_context()
print("run:", run.id, "| hidden sitecustomize:", os.environ.get("HIDDEN_SITECUSTOMIZE"))
# A Python subprocess of the script is bound to the same run.
subprocess.run([sys.executable, "-c", "from azureml.core import Run; Run.get_context().log('child', 1)"], check=True)
"""


def test_the_run_binding_keeps_a_sitecustomize_it_hides_and_reaches_subprocesses(workspace, tmp_path, monkeypatch):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(HIDDEN_SITECUSTOMIZE)
    # In front of the PYTHONPATH there may be (the package's own folder, where it is not installed).
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path / "site"), os.environ.get("PYTHONPATH")]))
    )
    run = Experiment(workspace, "sitecustomize").submit(script_config(tmp_path / "src", REPORTS_ITS_SITE))
    run.wait_for_completion()
    run.download_file("logs/std_log.txt", str(tmp_path / "log.txt"))
    assert f"run: {run.id} | hidden sitecustomize: ran" in (tmp_path / "log.txt").read_text()
    assert run.get_metrics() == {"child": 1}
