"""What several test modules share: the repository's path, waiting for processes and files, running the lessons
under nbval, a sweep of a stand-in script, and runs recorded without running."""

import contextlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import psutil
from azureml.core import Environment, ScriptRunConfig
from azureml.train.hyperdrive import GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal

from azureml_offline.backend import backend_of
from azureml_offline.engine.processes import THREAD_VARIABLES, alive  # noqa: F401 (alive: for the tests)
from azureml_offline.experiment import Experiment
from azureml_offline.run import Run

REPO = Path(__file__).resolve().parent.parent


def eventually(condition, seconds=30):
    """Wait until condition() holds; fail (rather than hang) after `seconds`."""
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"still not {condition.__name__} after {seconds} s"
        time.sleep(0.1)


def started_script(pid_file):
    """The pid that a test script wrote to pid_file, once it has."""
    eventually(pid_file.exists)
    return int(pid_file.read_text())


def script_config(folder, source, arguments=(), compute_target=None, distributed_job_config=None):
    """A ScriptRunConfig for train.py with `source`, written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(textwrap.dedent(source))
    return ScriptRunConfig(
        source_directory=str(folder),
        script="train.py",
        arguments=list(arguments),
        compute_target=compute_target,
        environment=Environment(name="test-env"),
        distributed_job_config=distributed_job_config,
    )


def processes_with(text):
    """Pids of this user's living processes whose command line contains `text`."""
    pids = []
    for process in psutil.process_iter():
        try:
            if text in " ".join(process.cmdline()) and alive(process.pid):
                pids.append(process.pid)
        except psutil.Error:  # ended meanwhile, or another user's
            continue
    return pids


# The lessons

SANITIZE = REPO / "tests" / "nbval_sanitize.cfg"


def layout(folder, *notebooks):
    """The notebooks ((name, content) pairs) and the repository files they read (../chainer_mnist.py,
    ../job-environment.yml); the paths of the notebooks."""
    for name in ("chainer_mnist.py", "job-environment.yml"):
        shutil.copy(REPO / name, folder / name)
    (folder / "notebooks").mkdir()
    for name, notebook in notebooks:
        nbformat.write(notebook, folder / "notebooks" / name)
    return [folder / "notebooks" / name for name, _ in notebooks]


def offline_env(workspace, mnist_dir):
    return dict(os.environ, AZUREML_OFFLINE="1", AZUREML_OFFLINE_DIR=str(workspace), MNIST_DIR=str(mnist_dir))


def nbval(paths, env):
    """nbval on the notebooks, in this order, each in a kernel of its own."""
    # --option=path in one word: pytest takes a bare path argument as a place to look for its configuration, and
    # this repository's (parallel workers, its own test paths) is not the notebooks'.
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval",
        *(path.name for path in paths),
        "--nbval-current-env",
        f"--nbval-sanitize-with={SANITIZE}",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rf",
        "--color=no",
    ]
    return subprocess.run(command, cwd=paths[0].parent, env=env, capture_output=True, text=True, timeout=600)


def assert_nbval_passed(result):
    """nbval (a finished subprocess) ran cells and none failed."""
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b\d+ passed\b", result.stdout) and "failed" not in result.stdout


def code_cell(notebook, containing):
    return next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and containing in c.source)


# Sweeps

# Logs --values (comma-separated) as the primary metric, --seconds apart, then exits with --exit. It writes its
# pid to $PID_DIR/<pid> if PID_DIR is set, and prints its thread settings and OpenBLAS kernel. Only the offline
# backend is imported (not the SDK, which takes seconds), to keep each child quick.
STAND_IN = """
import argparse, os, sys, time
from azureml_offline.state.layout import RUN_DIR_VARIABLE, RunFolder

parser = argparse.ArgumentParser()
parser.add_argument("--values", default="")
parser.add_argument("--seconds", type=float, default=0.0)
parser.add_argument("--exit", type=int, default=0)
parser.add_argument("--metric", default="Accuracy")
args = parser.parse_args()
if os.environ.get("PID_DIR"):
    open(os.path.join(os.environ["PID_DIR"], str(os.getpid())), "w").close()
print(" ".join(f"{name}={os.environ.get(name)}" for name in THREADS), flush=True)
run = RunFolder(os.environ[RUN_DIR_VARIABLE])
for value in filter(None, args.values.split(",")):
    time.sleep(args.seconds)
    run.append_metric({"name": args.metric, "value": float(value)})
sys.exit(args.exit)
""".replace("THREADS", repr((*THREAD_VARIABLES, "OPENBLAS_CORETYPE")))


def sweep_config(
    tmp_path, space, sampling=GridParameterSampling, target="cpu-cluster", arguments=(), variables=None, **settings
):
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "train.py").write_text(STAND_IN)
    src = ScriptRunConfig(str(tmp_path / "src"), "train.py", arguments=list(arguments))
    src.run_config.target = target
    src.run_config.environment_variables = variables or {}
    settings = {
        "primary_metric_name": "Accuracy",
        "primary_metric_goal": PrimaryMetricGoal.MAXIMIZE,
        "max_total_runs": 4,
        **settings,
    }
    return HyperDriveConfig(run_config=src, hyperparameter_sampling=sampling(space), **settings)


# Runs recorded as submit records them, with nothing started: for quick tests of what a run records and shows


def recorded_run(workspace, run_id, parent_id=None, run_type=None):
    """A Completed run of experiment "exp", recorded through the workspace's Backend; its Run stand-in."""
    with running_run(workspace, run_id, parent_id, run_type) as run:
        return run


@contextlib.contextmanager
def running_run(workspace, run_id, parent_id=None, run_type=None):
    """A run of experiment "exp" that is Running for as long as the block lasts (holding its runner's lock, as
    a runner would), then Completed."""
    definition = {"runId": run_id, "target": "local", "runDefinition": {"script": "train.py", "arguments": []}}
    definition.update({"parentRunId": parent_id} if parent_id else {})
    definition.update({"runType": run_type} if run_type else {})
    folder, lock = backend_of(workspace).folder.new_run("exp", definition, {})
    try:
        folder.write_status({"status": "Running"})
        yield Run(Experiment(workspace, "exp"), run_id)
        folder.write_status({"status": "Completed"})
    finally:
        os.close(lock)
