"""Runs one offline run's script and records its status: `python -m azureml_offline.runner <run folder> <parent pid>`.

A process of its own, so that the status is right however the notebook ends: the runner
stops the script when the run is cancelled, when it is terminated, or when the process
that submitted the run (the notebook's kernel) goes away, and then writes the final status.
"""
import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

from . import store
from .store import LOG, RUN_DIR_VARIABLE

POLL_SECONDS = 0.2
GRACE_SECONDS = 5  # between SIGTERM and SIGKILL when stopping the script
# Python runs the first sitecustomize on its path at start-up: this one binds Run.get_context() to the run.
SITECUSTOMIZE = "import azureml_offline.child_context\nazureml_offline.child_context.bind_run_context()\n"


def main(folder, parent_pid):
    folder = Path(folder)
    # Terminating the runner cancels the run.
    signal.signal(signal.SIGTERM, lambda signum, frame: (folder / "cancel").touch())
    # The pid lets a Run reopened from disk see that the runner died without ending the run.
    status = {"status": "Running", "startTimeUtc": store.utc_now(), "runnerPid": os.getpid()}
    store.write_json(folder / "status.json", status)
    try:
        script = start_script(folder)
        try:
            returncode = watch(script, folder, parent_pid)
        finally:
            if script.poll() is None:
                stop(script)
            collect_outputs(folder)
        if returncode is None:
            status["status"] = "Canceled"
        elif returncode == 0:
            status["status"] = "Completed"
        else:
            status.update(status="Failed", error=script_error(folder, returncode))
    except BaseException as error:  # a bug here must still end the run, or waiting for it never ends
        status.update(status="Failed", error={"error": {"code": "SystemError", "message": f"runner: {error!r}"}})
    status["endTimeUtc"] = store.utc_now()
    store.write_json(folder / "status.json", status)


def start_script(folder):
    """Start the script in the snapshot, in its own process group, with its output in the run's log."""
    submitted = store.read_json(folder / "run.json")["runDefinition"]
    context = folder / "context"
    context.mkdir()
    (context / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ, **{RUN_DIR_VARIABLE: str(folder), "PYTHONUNBUFFERED": "1"})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(context), os.environ.get("PYTHONPATH")]))
    log = folder / "files" / LOG
    log.parent.mkdir(parents=True)
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, submitted["script"], *submitted["arguments"]],
                                cwd=folder / "snapshot", env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)


def die_with_parent():
    """Linux: the script is killed if the runner is (SIGKILL gives the runner no chance to stop it)."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def watch(script, folder, parent_pid):
    """Wait for the script; return its exit code, or None once the run is cancelled or its submitter is gone."""
    while True:
        try:
            return script.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            if (folder / "cancel").exists() or os.getppid() != parent_pid:
                return None


def stop(script):
    """Stop the script's whole process group: politely, then for sure."""
    os.killpg(script.pid, signal.SIGTERM)
    try:
        script.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(script.pid, signal.SIGKILL)  # also what the script left behind in its group
    except ProcessLookupError:
        pass
    script.wait()


def collect_outputs(folder):
    """Move the script's ./outputs into the run's files, as Azure uploads them when a run ends."""
    outputs = folder / "snapshot" / "outputs"
    for name in store.file_names(outputs):
        target = folder / "files" / "outputs" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(outputs / name, target)


def script_error(folder, returncode):
    """The SDK's error shape, with the log's last line (for a Python script, the exception)."""
    lines = (folder / "files" / LOG).read_text(errors="replace").strip().splitlines()
    last = lines[-1] if lines else "(no output)"
    return {"error": {"code": "UserError", "message": f"Script exited with code {returncode}: {last}"}}


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
