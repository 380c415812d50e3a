"""Runs one offline run's script and records its status: `python -m azureml_offline.runner <run folder> <parent pid> <lock fd>`.

A process of its own, so that the status is right however the notebook ends: the runner
stops the script when the run is cancelled, when it is terminated, or when the process
that submitted the run (the notebook's kernel) goes away, and then writes the final status.
Whatever the script started is stopped with it (processes.py). The inherited lock fd holds the
run's runner.lock for as long as the runner lives, so readers can tell when it has died.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

from . import processes, store
from .backend import LOG, RUN_DIR_VARIABLE, RunFolder

POLL_SECONDS = 0.2
GRACE_SECONDS = 5  # between SIGTERM and SIGKILL when stopping the script
# Python imports the first sitecustomize on its path at start-up: the one in script_path/ binds Run.get_context()
# to the run, in the script and in every Python process it starts (they inherit PYTHONPATH).
SCRIPT_PATH = Path(__file__).resolve().parent / "script_path"


def main(run, parent_pid):
    # Terminating the runner cancels the run.
    signal.signal(signal.SIGTERM, lambda signum, frame: run.request_cancel())
    processes.become_subreaper()
    status = {"status": "Running", "startTimeUtc": store.utc_now(), "runnerPid": os.getpid()}
    run.write_status(status)
    try:
        script = start_script(run)
        try:
            returncode = watch(script, run, parent_pid)
        finally:
            processes.stop_descendants(script, GRACE_SECONDS)  # the script, if still running, and all it started
            run.collect_outputs()
        if returncode is None:
            status["status"] = "Canceled"
        elif returncode == 0:
            status["status"] = "Completed"
        else:
            status.update(status="Failed", error=script_error(run, returncode))
    except BaseException as error:  # a bug here must still end the run, or waiting for it never ends
        status.update(status="Failed", error={"error": {"code": "SystemError", "message": f"runner: {error!r}"}})
    status["endTimeUtc"] = store.utc_now()
    run.write_status(status)


def start_script(run):
    """Start the script in the snapshot, in its own process group, with its output in the run's log."""
    submitted = run.definition()["runDefinition"]
    env = dict(os.environ, **{RUN_DIR_VARIABLE: str(run.path), "PYTHONUNBUFFERED": "1"})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCRIPT_PATH), os.environ.get("PYTHONPATH")]))
    run.log().parent.mkdir(parents=True, exist_ok=True)
    with open(run.log(), "wb") as out:
        return subprocess.Popen([sys.executable, submitted["script"], *submitted["arguments"]],
                                cwd=run.snapshot, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=processes.die_with_parent)


def watch(script, run, parent_pid):
    """Wait for the script; return its exit code, or None once the run is cancelled or its submitter is gone."""
    while True:
        try:
            return script.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            if run.cancel_requested() or os.getppid() != parent_pid:
                return None


def script_error(run, returncode):
    """The SDK's error shape, with the log's last line (for a Python script, the exception)."""
    try:
        lines = run.log().read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:  # the script deleted it
        lines = [f"(no output: the script removed {LOG})"]
    last = lines[-1] if lines else "(no output)"
    return {"error": {"code": "UserError", "message": f"Script exited with code {returncode}: {last}"}}


if __name__ == "__main__":
    runner_lock = int(sys.argv[3])  # held, never used: it is closed when this process ends
    main(RunFolder(sys.argv[1]), int(sys.argv[2]))
