"""Faults and bad input: each is rejected with the SDK's exception, stays with the one run it hits, or leaves
nothing behind (no process, no staging folder, no excluded file in a snapshot)."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from azureml.core import ScriptRunConfig
from azureml.core.compute import AmlCompute
from azureml.core.environment import Environment
from azureml.exceptions import (
    ActivityFailedException,
    AzureMLException,
    ComputeTargetException,
    ModelPathNotFoundException,
    SnapshotException,
    UserErrorException,
    WebserviceException,
)
from helpers import alive, eventually, script_config, started_script

import azureml_offline
from azureml_offline.backend import backend_of
from azureml_offline.backend import runs as run_rules
from azureml_offline.compute import ComputeTarget
from azureml_offline.experiment import Experiment
from azureml_offline.model import Model
from azureml_offline.run import Run
from azureml_offline.state import files as store
from azureml_offline.state.files import DamagedFile, DamagedRecordWarning
from azureml_offline.workspace import Workspace

QUICK = "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/model.txt', 'w').write('m')\n"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A workspace with one completed run (module-wide: a run takes a second or two); tests only read it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AZUREML_OFFLINE_DIR", str(tmp_path_factory.mktemp("workspace")))
        workspace = Workspace.from_config()
        run = Experiment(workspace, "done").submit(script_config(tmp_path_factory.mktemp("src"), QUICK))
        run.wait_for_completion()
        yield workspace, run


# Arguments the SDK rejects with its own exceptions


@pytest.mark.parametrize(
    "call, exception",
    [
        (lambda ws, run: Experiment(ws, None), UserErrorException),
        (lambda ws, run: Experiment(ws, "../up"), UserErrorException),
        (lambda ws, run: Model(ws, id="no-version"), WebserviceException),
        (lambda ws, run: Model(ws, id="m:abc"), WebserviceException),
        (lambda ws, run: Model(ws, "m", version=0), WebserviceException),
        (lambda ws, run: Model(ws, 5), WebserviceException),
        (lambda ws, run: Model.register(ws, None, "m"), TypeError),  # from the SDK's own path check
        (lambda ws, run: Model.register(ws, __file__, "m", tags=["a"]), WebserviceException),
        (lambda ws, run: Model.get_model_path("m", version="1", _workspace=ws), WebserviceException),
        (lambda ws, run: run.register_model("m", None), ModelPathNotFoundException),  # the name is the path
        (lambda ws, run: run.register_model(None, "outputs/model.txt"), WebserviceException),
        (lambda ws, run: run.register_model("bad name!", "nothere"), WebserviceException),  # the name first
        (lambda ws, run: run.download_file(None), UserErrorException),
        (lambda ws, run: run.download_file("outputs/model.txt", __file__ + "/under-a-file"), UserErrorException),
        (lambda ws, run: run.download_files(output_directory=__file__), UserErrorException),
        (lambda ws, run: run.upload_file("x.txt", "/no/such/file"), FileNotFoundError),  # the SDK's open()
        (lambda ws, run: run.upload_file("x.txt", None), UserErrorException),
        (lambda ws, run: run.log("a", [1, 2]), UserErrorException),
        (lambda ws, run: run.log("a", range(3)), UserErrorException),
        (lambda ws, run: run.log(None, 1), UserErrorException),
        (lambda ws, run: run.log_list("a", 5), UserErrorException),
        (lambda ws, run: run.log_row("t", a=object()), AzureMLException),  # the SDK's own check's
        (lambda ws, run: run.tag(None, "v"), UserErrorException),
        (
            lambda ws, run: Experiment(ws, "e").submit(
                script_config_at(str(backend_of(run).folder_of(run).snapshot)), tags=["a"]
            ),
            UserErrorException,
        ),
        (lambda ws, run: ComputeTarget(ws, None), ComputeTargetException),
        (lambda ws, run: ComputeTarget.create(ws, "cpu", None), ComputeTargetException),
        (lambda ws, run: Experiment(ws, "e").submit(None), UserErrorException),
        (lambda ws, run: Experiment(ws, "e").submit(script_config_at(__file__)), UserErrorException),
        (lambda ws, run: Experiment(ws, "e").submit(script_config_at(__file__ + "-missing")), UserErrorException),
        (lambda ws, run: Workspace.get(None), UserErrorException),
    ],
)
def test_bad_arguments_raise_the_sdk_s_exceptions(finished, call, exception):
    workspace, run = finished
    with pytest.raises(exception):
        call(workspace, run)
    assert run.get_metrics() == {}  # nothing half-recorded


def script_config_at(source_directory):
    return ScriptRunConfig(source_directory=source_directory, script="train.py")


def test_download_file_creates_the_target_s_folders(finished, tmp_path):
    _, run = finished
    run.download_file("outputs/model.txt", str(tmp_path / "a" / "b" / "model.txt"))
    assert (tmp_path / "a" / "b" / "model.txt").read_text() == "m"


def test_get_model_path_finds_a_registered_version(finished, tmp_path):
    workspace, run = finished
    model = run.register_model("path-model", "outputs/model.txt")
    path = Model.get_model_path("path-model", version=model.version, _workspace=workspace)
    assert os.path.basename(path) == "model.txt" and open(path).read() == "m"
    assert Model.get_model_path("path-model", _workspace=workspace) == path


@pytest.mark.parametrize("place", ["a file", "under a file", "a symlink loop"])
def test_an_unusable_workspace_folder_is_one_clear_error(place, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    path = {"a file": "file", "under a file": "file/ws", "a symlink loop": "loop/ws"}[place]
    monkeypatch.setenv("AZUREML_OFFLINE_DIR", str(tmp_path / path))
    with pytest.raises(UserErrorException, match="AZUREML_OFFLINE_DIR=.* cannot hold the offline workspace"):
        Workspace.from_config()


# Damaged state stays with the run (or model, or target) it is in, and the message names the file


def two_runs(folder):
    """Two completed runs of experiment "exp", recorded as the runner would; returns (first, second)."""
    runs = []
    for n in (1, 2):
        run, lock = folder.new_run(
            "exp",
            {"runId": f"exp_{n}", "target": "local", "runDefinition": {"script": "train.py", "arguments": []}},
            {"n": str(n)},
        )
        os.close(lock)
        run.write_status({"status": "Completed"})
        run.append_metric({"name": "loss", "value": 0.5})
        runs.append(run)
    return runs


@pytest.mark.parametrize(
    "name, content",
    [("status.json", ""), ("status.json", '{"status": "Runn'), ("status.json", "[]"), ("status.json", None)],
)
def test_a_damaged_status_fails_that_run_only_and_names_the_file(name, content, fresh_workspace):
    damaged, healthy = two_runs(backend_of(fresh_workspace).folder)
    if content is None:
        (damaged.path / name).unlink()
    else:
        (damaged.path / name).write_text(content)
    experiment = Experiment(fresh_workspace, "exp")
    runs = {run.id: run for run in experiment.get_runs()}
    assert set(runs) == {"exp_1", "exp_2"}
    assert runs["exp_2"].get_status() == "Completed" and runs["exp_2"].get_metrics() == {"loss": 0.5}
    with pytest.raises(DamagedFile, match=str(damaged.path / name)):
        runs["exp_1"].get_status()
    assert runs["exp_1"].get_metrics() == {"loss": 0.5}


@pytest.mark.parametrize("content", ["", "{not json", '"a string"'])
def test_a_damaged_run_json_leaves_that_run_out_of_the_list_with_a_warning(content, fresh_workspace):
    damaged, _ = two_runs(backend_of(fresh_workspace).folder)
    (damaged.path / "run.json").write_text(content)
    experiment = Experiment(fresh_workspace, "exp")
    with pytest.warns(DamagedRecordWarning, match=str(damaged.path / "run.json")):
        assert [run.id for run in experiment.get_runs()] == ["exp_2"]
    assert Run(experiment, "exp_2").get_status() == "Completed"


def test_a_half_written_metrics_line_followed_by_more_records_loses_only_that_line(fresh_workspace):
    run, _ = two_runs(backend_of(fresh_workspace).folder)
    with open(run.path / "metrics.jsonl", "a") as metrics:
        metrics.write('{"name": "loss", "val')  # a writer that died mid-line ...
    run.append_metric({"name": "loss", "value": 0.25})  # ... then more records
    run.append_metric({"name": "acc", "value": 0.9})
    with open(run.path / "metrics.jsonl", "a") as metrics:
        metrics.write('{"no name": 1}\n[1, 2]\n')
    with pytest.warns(DamagedRecordWarning) as caught:
        metrics = Run(Experiment(fresh_workspace, "exp"), "exp_1").get_metrics()
    assert metrics == {"loss": 0.5, "acc": 0.9}
    messages = [str(warning.message) for warning in caught]
    assert [message.split(": ")[0] for message in messages] == [
        f"{run.path / 'metrics.jsonl'}, line 2",
        f"{run.path / 'metrics.jsonl'}, line 5",
        f"{run.path / 'metrics.jsonl'}",
    ]


def test_damaged_tags_model_and_compute_files_stay_with_their_entry(fresh_workspace, tmp_path):
    run, other = two_runs(backend_of(fresh_workspace).folder)
    (run.path / "tags.jsonl").write_bytes(b"\xff\xfe garbage\n")
    experiment = Experiment(fresh_workspace, "exp")
    with pytest.warns(DamagedRecordWarning, match="tags.jsonl"):
        assert Run(experiment, "exp_1").get_tags() == {}
    assert Run(experiment, "exp_2").get_tags() == {"n": "2"}

    (tmp_path / "weights.bin").write_text("w")
    for _ in range(2):
        Model.register(fresh_workspace, str(tmp_path / "weights.bin"), "m")
    damaged = backend_of(fresh_workspace).root / "models" / "m" / "1" / "model.json"
    damaged.write_text("")
    with pytest.raises(DamagedFile, match=str(damaged)):
        Model(fresh_workspace, "m", version=1)
    assert Model(fresh_workspace, "m").version == 2
    with pytest.warns(DamagedRecordWarning, match=str(damaged)):
        assert [model.id for model in Model.list(fresh_workspace)] == ["m:2"]

    for name in ("cpu", "gpu"):
        ComputeTarget.create(fresh_workspace, name, AmlCompute.provisioning_configuration(max_nodes=1))
    (backend_of(fresh_workspace).root / "computes" / "cpu.json").write_text("{")
    with pytest.warns(DamagedRecordWarning, match="cpu.json"):
        assert list(fresh_workspace.compute_targets) == ["gpu"]

    with azureml_offline.activate():  # the SDK's Environment, with its workspace calls offline
        for name in ("env-a", "env-b"):
            Environment(name).register(fresh_workspace)
    (backend_of(fresh_workspace).root / "environments" / "env-a" / "1.json").write_text("{")
    with pytest.warns(DamagedRecordWarning, match="1.json"):
        assert list(fresh_workspace.environments) == ["env-b"]


SELF_DELETING = """
import os, shutil
from azureml.core import Run
Run.get_context().log("before", 1)
run_dir = os.environ["AZUREML_OFFLINE_RUN_DIR"]
os.remove(os.path.join(run_dir, "files", "logs", "std_log.txt"))
os.remove(os.path.join(run_dir, "metrics.jsonl"))
for entry in os.listdir("."):
    (shutil.rmtree if os.path.isdir(entry) else os.remove)(entry)
raise SystemExit(2)
"""


def test_a_script_that_deletes_its_own_files_fails_alone(fresh_workspace, tmp_path):
    experiment = Experiment(fresh_workspace, "self-deleting")
    run = experiment.submit(script_config(tmp_path / "src", SELF_DELETING))
    with pytest.raises(ActivityFailedException, match="code 2"):
        run.wait_for_completion(show_output=True)
    details = run.get_details_with_logs()
    assert details["status"] == "Failed" and details["logFiles"] == {}
    assert run.get_metrics() == {} and run.get_file_names() == []


# Source folders the SDK refuses to snapshot are refused offline too, before anything is written.


def many_files(src, count):
    for number in range(count):
        (src / f"file{number}.txt").write_text("x")


def sparse_file(src, size):
    with open(src / "big.bin", "wb") as big:
        big.truncate(size)


@pytest.mark.parametrize(
    "fill, message",
    [
        (lambda src: many_files(src, 2001), "exceeds the file limit of 2000"),
        (lambda src: sparse_file(src, 301 * 2**20), "exceeds the limit of 300.0 MB"),
        (lambda src: os.symlink(src / "gone", src / "link"), "link is a link to nothing"),
    ],
)
def test_a_source_folder_the_sdk_would_not_snapshot_is_refused_with_its_exception(
    fresh_workspace, tmp_path, fill, message
):
    config = script_config(tmp_path / "src", QUICK)
    fill(tmp_path / "src")
    experiment = Experiment(fresh_workspace, "too-big")
    with pytest.raises(SnapshotException, match=message):
        experiment.submit(config)
    assert list(experiment.get_runs()) == []


def test_what_the_ignore_file_leaves_out_does_not_count_towards_the_limits(fresh_workspace, tmp_path):
    config = script_config(tmp_path / "src", QUICK)
    (tmp_path / "src" / "data").mkdir()
    many_files(tmp_path / "src" / "data", 2001)
    sparse_file(tmp_path / "src" / "data", 301 * 2**20)
    (tmp_path / "src" / ".amlignore").write_text("data/\n")
    run = Experiment(fresh_workspace, "ignored").submit(config)
    assert run.wait_for_completion()["status"] == "Completed"


@pytest.mark.parametrize("path", [".", "./"])
def test_registering_the_current_folder_registers_it_without_the_workspace_inside_it(tmp_path, monkeypatch, path):
    # The notebook's folder holds the workspace (.azureml-offline) when AZUREML_OFFLINE_DIR is not set.
    project = tmp_path / "project"
    project.mkdir()
    (project / "model.npz").write_text("weights")
    monkeypatch.chdir(project)
    monkeypatch.setenv("AZUREML_OFFLINE_DIR", str(project / ".azureml-offline"))
    workspace = Workspace.from_config()
    Model.register(workspace, "model.npz", "first")  # the workspace is there, with a model in it
    model = Model.register(workspace, path, "here")
    # The folder, without the workspace, holds one file: the SDK returns the files' common path, that file.
    downloaded = Path(model.download(str(tmp_path / "downloaded")))
    assert (model.version, downloaded.parent.name, downloaded.name) == (1, "project", "model.npz")
    assert sorted(p.name for p in downloaded.parent.iterdir()) == ["model.npz"]


# A script that links its outputs elsewhere: what lies there is not the run's, and is neither moved nor copied.
LINKED_OUTPUTS = """
import os, sys
shared = sys.argv[1]
if sys.argv[2] == "whole":  # outputs/ itself is a link to the shared folder, in place of the one made for it
    os.rmdir("outputs")
    os.symlink(shared, "outputs")
else:  # outputs/ is the run's, with a link to the shared folder inside it
    os.symlink(shared, "outputs/shared")
open("outputs/mine.txt", "w").write("the run's")
"""


@pytest.mark.parametrize("how", ["whole", "inside"])
def test_outputs_linked_to_a_shared_folder_leave_its_files_where_they_are(fresh_workspace, tmp_path, how):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "theirs.txt").write_text("someone else's")
    run = Experiment(fresh_workspace, "linked").submit(
        script_config(tmp_path / "src", LINKED_OUTPUTS, [str(shared), how])
    )
    run.wait_for_completion()
    assert run.get_status() == "Completed"
    assert (shared / "theirs.txt").read_text() == "someone else's"
    outputs = [name for name in run.get_file_names() if name.startswith("outputs/")]
    assert outputs == ([] if how == "whole" else ["outputs/mine.txt"])


# Processes: nothing a run started outlives it

GRANDPARENT = """
import os, signal, subprocess, sys, time
# A grandchild in a session of its own (out of reach of the script's process group), that may ignore SIGTERM.
subprocess.Popen([sys.executable, "-c", "import os, signal, time\\n"
                  "if os.environ.get('IGNORE_SIGTERM'): signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
                  "open('gc', 'w').write(str(os.getpid())); os.rename('gc', os.environ['GRANDCHILD_PID_FILE'])\\n"
                  "time.sleep(600)"], start_new_session=True)
open("pid", "w").write(str(os.getpid()))
os.rename("pid", os.environ["PID_FILE"])
if os.environ.get("LEAVE_DAEMON"):
    while not os.path.exists(os.environ["GRANDCHILD_PID_FILE"]):
        time.sleep(0.05)
    sys.exit(0)
time.sleep(600)
"""


@pytest.fixture
def pid_files(tmp_path, monkeypatch):
    monkeypatch.setenv("PID_FILE", str(tmp_path / "script.pid"))
    monkeypatch.setenv("GRANDCHILD_PID_FILE", str(tmp_path / "grandchild.pid"))
    return tmp_path / "script.pid", tmp_path / "grandchild.pid"


def test_cancel_stops_a_grandchild_in_its_own_session_that_ignores_sigterm(
    fresh_workspace, tmp_path, pid_files, monkeypatch
):
    monkeypatch.setenv("IGNORE_SIGTERM", "1")  # stopped by SIGKILL once the runner's grace period is over
    run = Experiment(fresh_workspace, "cancelled").submit(script_config(tmp_path / "src", GRANDPARENT))
    pids = [started_script(pid_file) for pid_file in pid_files]
    run.cancel()
    assert run.get_status() == "Canceled"
    assert not any(alive(pid) for pid in pids)


def test_a_script_that_leaves_a_daemon_behind_completes_and_the_daemon_is_stopped(
    fresh_workspace, tmp_path, pid_files, monkeypatch
):
    monkeypatch.setenv("LEAVE_DAEMON", "1")
    run = Experiment(fresh_workspace, "daemon").submit(script_config(tmp_path / "src", GRANDPARENT))
    assert run.wait_for_completion()["status"] == "Completed"
    assert not alive(started_script(pid_files[1]))


def test_a_killed_kernel_leaves_no_process(fresh_workspace, tmp_path, pid_files):
    kernel = (
        "import sys, time\n"
        "from azureml.core import ScriptRunConfig\n"
        "from azureml_offline.workspace import Workspace; from azureml_offline.experiment import Experiment\n"
        "Experiment(Workspace.from_config(), 'orphaned').submit(ScriptRunConfig(sys.argv[1], 'train.py'))\n"
        "time.sleep(600)\n"
    )
    source = script_config(tmp_path / "src", GRANDPARENT).source_directory
    process = subprocess.Popen([sys.executable, "-c", kernel, source])
    try:
        pids = [started_script(pid_file) for pid_file in pid_files]
    finally:
        process.kill()
        process.wait()
    (run,) = Experiment(fresh_workspace, "orphaned").get_runs()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    assert not any(alive(pid) for pid in pids)


def test_a_killed_runner_leaves_no_process(fresh_workspace, tmp_path, pid_files):
    run = Experiment(fresh_workspace, "runner-killed").submit(script_config(tmp_path / "src", GRANDPARENT))
    pids = [started_script(pid_file) for pid_file in pid_files]
    os.kill(backend_of(run).runner(run.id).pid, signal.SIGKILL)
    reopened = Run(Experiment(fresh_workspace, "runner-killed"), run.id)
    assert reopened.wait_for_completion(raise_on_error=False)["status"] == "Failed"

    def all_gone():
        return not any(alive(pid) for pid in pids)

    eventually(all_gone, seconds=10)


def test_a_runner_that_dies_before_recording_itself_neither_hangs_wait_nor_cancel(
    fresh_workspace, tmp_path, monkeypatch
):
    monkeypatch.setattr(run_rules, "RUNNER", [sys.executable, "-c", "raise SystemExit(3)"])
    experiment = Experiment(fresh_workspace, "runner-dies")
    first = experiment.submit(script_config(tmp_path / "src", QUICK))
    second = experiment.submit(script_config(tmp_path / "src", QUICK))
    with pytest.raises(ActivityFailedException, match="exited with code 3"):
        first.wait_for_completion()
    reopened = Run(experiment, second.id)  # not the submitter's Run: it knows no runner process
    reopened.cancel()
    assert reopened.get_status() == "Failed"
    backend_of(second).runner(second.id).wait()


def test_a_recycled_runner_pid_does_not_keep_a_run_going(fresh_workspace):
    (run, _) = two_runs(backend_of(fresh_workspace).folder)
    # The runner recorded its pid and died; the pid now belongs to a living process (this one).
    run.write_status({"status": "Running", "runnerPid": os.getpid()})
    reopened = Run(Experiment(fresh_workspace, "exp"), "exp_1")
    assert reopened.wait_for_completion(raise_on_error=False)["status"] == "Failed"


# Half-done work


def test_a_submit_killed_while_copying_leaves_no_staging_folder_behind(fresh_workspace, tmp_path):
    root = backend_of(fresh_workspace).root
    killed = (
        "import os, signal, sys\n"
        "from azureml_offline.state import files as store\n"
        "with store.staging_dir(sys.argv[1]) as staged:\n"
        "    (staged / 'half-copied').write_text('x')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", killed, str(root / ".staging")])
    assert len(os.listdir(root / ".staging")) == 1
    with store.staging_dir(root / ".staging") as in_use:  # another process's submit, still copying
        Workspace.from_config()
        assert os.listdir(root / ".staging") == [in_use.name]


# The snapshot honours .amlignore, else .gitignore, as the SDK does


@pytest.mark.parametrize(
    "ignore_files, expected",
    [
        ({}, ["data/big.bin", "secret.txt", "sub/keep.txt", "train.py"]),
        ({".amlignore": "secret.txt\ndata/\n"}, [".amlignore", "sub/keep.txt", "train.py"]),
        ({".gitignore": "secret.txt\n*.bin\n"}, [".gitignore", "sub/keep.txt", "train.py"]),
        (
            {".amlignore": "secret.txt\n", ".gitignore": "sub/\n"},  # never merged: .amlignore wins
            [".amlignore", ".gitignore", "data/big.bin", "sub/keep.txt", "train.py"],
        ),
    ],
)
def test_the_snapshot_leaves_out_what_the_ignore_file_excludes(ignore_files, expected, fresh_workspace, tmp_path):
    source = tmp_path / "src"
    for name, text in {"secret.txt": "key", "data/big.bin": "x", "sub/keep.txt": "k", **ignore_files}.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    run = Experiment(fresh_workspace, "ignored").submit(script_config(source, "print('ran')"))
    assert store.file_names(backend_of(run).folder_of(run).snapshot) == expected
    assert run.wait_for_completion()["status"] == "Completed"


FILL_THE_DISK = """
import json, os, sys
from azureml.core import ScriptRunConfig
import azureml_offline
from azureml_offline.experiment import Experiment
from azureml_offline.workspace import Workspace

with open("source/fill.py", "w") as f:
    f.write("with open('filler', 'wb') as f:\\n    while True:\\n        f.write(bytes(1 << 16))\\n")
run = Experiment(Workspace.from_config(), "full").submit(ScriptRunConfig("source", "fill.py"))
details = run.wait_for_completion(raise_on_error=False)
print(json.dumps({"status": details["status"], "error": details.get("error")}))
"""


def test_a_script_that_fills_the_disk_fails_its_run_with_that_reason(tmp_path):
    # A small file system of its own for the workspace, mounted in a mount namespace of this test's process alone.
    (tmp_path / "workspace").mkdir()
    (tmp_path / "source").mkdir()
    mount = f"mount -t tmpfs -o size=8m tmpfs {tmp_path / 'workspace'}"
    env = dict(os.environ, AZUREML_OFFLINE_DIR=str(tmp_path / "workspace"), PYTHONPATH=str(Path.cwd()))
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", f'{mount} && exec "$0" -c "$1"', sys.executable, FILL_THE_DISK],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    ended = json.loads(done.stdout.splitlines()[-1])  # before: the runner died, its reason lost with its log
    assert ended["status"] == "Failed"
    assert ended["error"]["error"]["code"] == "DiskFull"
    assert "Script exited with code 1" in ended["error"]["error"]["message"]  # the script's own error, kept


READ_ONLY = """
import json, sys
from azureml.core import ScriptRunConfig
from azureml.core.compute import AmlCompute
from azureml.core.environment import Environment
from azureml.exceptions import UserErrorException
import azureml_offline
from azureml_offline.compute import ComputeTarget
from azureml_offline.experiment import Experiment
from azureml_offline.model import Model
from azureml_offline.workspace import Workspace

azureml_offline.activate()
ws = Workspace.from_config()
experiment = ws.experiments["exp"]
run = next(experiment.get_runs())
read = {"status": run.get_status(), "metrics": run.get_metrics(), "models": sorted(ws.models)}
calls = {
    "submit": lambda: experiment.submit(ScriptRunConfig("source", "train.py")),
    "start_logging": lambda: experiment.start_logging(snapshot_directory=None),
    "tag": lambda: run.tag("quality", "good"),
    "register a model": lambda: Model.register(ws, "source/train.py", "another"),
    "tag a model": lambda: Model(ws, "m").add_tags({"a": "b"}),
    "register an environment": lambda: Environment("another").register(ws),
    "create a compute target": lambda: ComputeTarget.create(
        ws, "cpu", AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=1)
    ),
}
refused = {}
for name, call in calls.items():
    try:
        call()
        refused[name] = "no error"
    except UserErrorException as error:
        refused[name] = error.message
    except Exception as error:
        refused[name] = f"{type(error).__name__}: {error}"
print(json.dumps({"read": read, "refused": refused}))
"""


def test_a_read_only_workspace_is_read_and_each_write_is_one_clear_error(fresh_workspace, tmp_path):
    run = Experiment(fresh_workspace, "exp").submit(script_config(tmp_path / "source", "print('hi')"))
    run.wait_for_completion()
    run.log("loss", 0.5)
    Model.register(fresh_workspace, str(tmp_path / "source" / "train.py"), "m")
    workspace = os.environ["AZUREML_OFFLINE_DIR"]
    # The workspace read-only (a read-only bind mount over it) for this test's subprocess alone.
    mount = f"mount --bind {workspace} {workspace} && mount -o remount,bind,ro {workspace}"
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", f'{mount} && exec "$0" -c "$1"', sys.executable, READ_ONLY],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(Path.cwd())),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    ended = json.loads(done.stdout.splitlines()[-1])
    assert ended["read"] == {"status": "Completed", "metrics": {"loss": 0.5}, "models": ["m"]}
    for call, message in ended["refused"].items():  # before: raw PermissionError / OSError, or nothing
        assert re.fullmatch(
            r"AZUREML_OFFLINE_DIR='.*' cannot be written \(Read-only file system: .*\): it must be a folder this user "
            r"can write",
            message,
        ), f"{call}: {message}"
