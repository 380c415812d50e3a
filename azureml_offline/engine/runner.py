"""Runs one offline run's script and records its status: `python -m azureml_offline.engine.runner <run folder> <parent pid> <lock fd>`.

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

from ..state import files as store
from ..state.layout import RUN_DIR_VARIABLE, RunFolder
from . import mpi, processes

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
    """Start the script in the snapshot, in its own process group, with its output in the run's log:
    for an MPI job, under mpiexec, each rank writing its own log and mpiexec the MPI log."""
    submitted = run.definition()["runDefinition"]
    env = processes.child_environment(**{RUN_DIR_VARIABLE: str(run.path), "PYTHONUNBUFFERED": "1"})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCRIPT_PATH), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, submitted["script"], *submitted["arguments"]]
    log = run.log()
    processes_count = run.process_count()
    if processes_count is not None:
        env, log = mpi.environment(env, processes_count), run.mpi_log
        command = mpi.command(mpi.find_mpiexec(), processes_count, [run.log(rank) for rank in range(processes_count)],
                              [sys.executable, "-m", "mpi4py", *command[1:]], env)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=run.snapshot, env=env, stdin=subprocess.DEVNULL, stdout=out,
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
    """The SDK's error shape, with the last line of the log (for a Python script, the exception); for an MPI
    job, the last line of each rank's log."""
    count = run.process_count()
    if count is None:
        last = last_line(run.log())
    else:
        last = "; ".join(f"rank {rank}: {last_line(run.log(rank))}" for rank in range(count))
    return {"error": {"code": "UserError", "message": f"Script exited with code {returncode}: {last}"}}


def last_line(log):
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:  # the script deleted it
        return f"(no output: the script removed {log.relative_to(log.parents[1]).as_posix()})"
    return lines[-1] if lines else "(no output)"


if __name__ == "__main__":
    runner_lock = int(sys.argv[3])  # held, never used: it is closed when this process ends
    main(RunFolder(sys.argv[1]), int(sys.argv[2]))
