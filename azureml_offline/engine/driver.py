"""The lifecycle that a run's runner and a sweep's driver share:
`python -m azureml_offline.engine.<runner|sweep> <run folder> <submitter pid> <lock fd>`.

Each is a process of its own, so that the run's status is right however the notebook ends. It records the run
Running, does its work until the work ends or a stop is requested (the run cancelled, the driver terminated, or
the process that submitted the run gone), and records how the run ended; any exception of its own ends the run
Failed with the SDK's error, or waiting for the run would never end. The inherited lock fd holds the run's
runner.lock for as long as the process lives, so readers can tell when it has died.
"""

import os
import shutil
import signal
import sys

from ..state import files
from ..state.layout import RESERVE_BYTES, WORKSPACE_DIR_VARIABLE, RunFolder, run_error, shown


def main(name, work):
    """Drive the run whose folder, submitter pid and lock fd are on the command line: `work(folder,
    stop_requested)` returns what the final status record adds ({"status": ..., "error": ...})."""
    folder, submitter_pid = RunFolder(sys.argv[1]), int(sys.argv[2])
    # sys.argv[3], the lock's fd, is held and never used: it is closed when this process ends.
    signal.signal(signal.SIGTERM, lambda signum, frame: folder.request_cancel())  # terminating it cancels the run
    status = {"status": "Running", "startTimeUtc": files.utc_now(), "runnerPid": os.getpid()}
    folder.write_status(status)
    folder.reserve_space()

    def stop_requested():
        return folder.cancel_requested() or os.getppid() != submitter_pid

    try:
        status.update(work(folder, stop_requested))
    except BaseException as error:
        status.update(status="Failed", error=run_error("SystemError", f"{name}: {error!r}"))
    free = shutil.disk_usage(folder.path).free  # what the run left, before the reserve goes
    folder.release_space()
    if free < RESERVE_BYTES and status["status"] != "Canceled":
        status.update(status="Failed", error=run_error("DiskFull", disk_full(folder, free, status.get("error"))))
    status["endTimeUtc"] = files.utc_now()
    folder.write_status(status)


def disk_full(folder, free, error):
    """The message of a run that ended with the workspace's disk full, and the error it had already, if any."""
    message = (
        f"The disk of the offline workspace was full when the run ended ({free} bytes free at {shown(folder.path)}): "
        f"its logs and outputs may be cut short. Free space there, or set {WORKSPACE_DIR_VARIABLE} to a folder on "
        f"another disk, and submit again."
    )
    return message + (f" The run's own error: {error['error']['message']}" if error else "")
