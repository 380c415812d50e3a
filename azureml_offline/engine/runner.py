"""A run's runner: runs the script and records how it ended (its lifecycle is driver.py's).

The script runs in the run's snapshot, its output in the run's log (each rank's, for an MPI job). It is stopped
when the run is cancelled, when the runner is terminated, or when the process that submitted the run (the
notebook's kernel) goes away; whatever the script started is stopped with it (processes.py).
"""

import os
import subprocess
import sys
from pathlib import Path

from ..state.layout import RUN_DIR_VARIABLE, WORKSPACE_DIR_VARIABLE, WorkspaceFolder, run_error
from . import driver, mpi, processes

POLL_SECONDS = 0.2
GRACE_SECONDS = 5  # between SIGTERM and SIGKILL when stopping the script
# Python imports the first sitecustomize on its path at start-up: the one in script_path/ binds the SDK to the run,
# in the script and in every Python process it starts (they inherit PYTHONPATH).
SCRIPT_PATH = Path(__file__).resolve().parent / "script_path"


def run_script(run, stop_requested):
    """Run the script to its end, or until a stop is requested; what the run's final status adds."""
    processes.become_subreaper()
    script = start_script(run)
    try:
        returncode = watch(script, stop_requested)
    finally:
        processes.stop_descendants(script, GRACE_SECONDS)  # the script, if still running, and all it started
        run.collect_outputs()
    if returncode is None:
        return {"status": "Canceled"}
    if returncode == 0:
        return {"status": "Completed"}
    return {"status": "Failed", "error": script_error(run, returncode)}


def start_script(run):
    """Start the script in the snapshot, in its own process group, with its output in the run's log:
    for an MPI job, under mpiexec, each rank writing its own log and mpiexec the MPI log."""
    submitted = run.definition()["runDefinition"]
    env = processes.child_environment(PYTHONUNBUFFERED="1")
    command = [sys.executable, submitted["script"], *submitted["arguments"]]
    log = run.log()
    processes_count = run.process_count()
    if processes_count is not None:
        env, log = mpi.environment(env, processes_count), run.mpi_log
    # The variables the job sets on Azure, the run configuration's last; then what binds the script's SDK to the
    # run and its workspace here (Workspace.from_config() included).
    variables = {**(submitted["environment"]["environmentVariables"] or {}), **submitted["environmentVariables"]}
    env.update({str(name): str(value) for name, value in variables.items()})
    env[RUN_DIR_VARIABLE] = str(run.path)
    env[WORKSPACE_DIR_VARIABLE] = str(WorkspaceFolder.of_run(run.path)[0].root)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCRIPT_PATH), env.get("PYTHONPATH")]))
    if processes_count is not None:
        command = mpi.command(
            mpi.find_mpiexec(),
            processes_count,
            [run.log(rank) for rank in range(processes_count)],
            [sys.executable, "-m", "mpi4py", *command[1:]],
            env,
        )
    log.parent.mkdir(parents=True, exist_ok=True)
    run.make_outputs()
    with open(log, "wb") as out:
        return subprocess.Popen(
            command,
            cwd=run.snapshot,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=processes.die_with_parent,
        )


def watch(script, stop_requested):
    """Wait for the script; return its exit code, or None once a stop is requested."""
    while True:
        try:
            return script.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            if stop_requested():
                return None


def script_error(run, returncode):
    """The SDK's error shape, with the last line of the log (for a Python script, the exception); for an MPI
    job, the last line of each rank's log."""
    count = run.process_count()
    if count is None:
        last = last_line(run.log())
    else:
        last = "; ".join(f"rank {rank}: {last_line(run.log(rank))}" for rank in range(count))
    return run_error("UserError", f"Script exited with code {returncode}: {last}")


def last_line(log):
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:  # the script deleted it
        return f"(no output: the script removed {log.relative_to(log.parents[1]).as_posix()})"
    return lines[-1] if lines else "(no output)"


if __name__ == "__main__":
    driver.main("runner", run_script)
