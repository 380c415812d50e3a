"""Starting a run's process: the runner of a script's run, or the driver of a sweep."""

import os
import subprocess
from pathlib import Path

from azureml.core.script_run_config import ScriptRunConfig
from azureml.exceptions import UserErrorException

from .processes import child_environment


def check_script_run_config(config):
    """A clear error for what an offline run cannot start (before anything is recorded)."""
    if not isinstance(config, ScriptRunConfig):
        raise UserErrorException(
            "Offline, Experiment.submit takes a ScriptRunConfig, an estimator or a "
            f"HyperDriveConfig, not {type(config).__name__}"
        )
    if config.command or not config.script:
        raise UserErrorException("Offline runs need ScriptRunConfig(script=...); command= is not supported")
    source = Path(config.source_directory)
    if not source.is_dir():
        raise UserErrorException(f"source_directory {config.source_directory!r} is not a folder")
    if not (source / config.script).is_file():
        raise UserErrorException(f"Script {config.script!r} not found in source_directory {config.source_directory!r}")


def start(folder, lock, command):
    """Start `command` (the runner's or a sweep driver's) for the new run in `folder`, handing it the run's folder,
    this process's pid and the run's lock; return the process, which the backend keeps."""
    # A new session: stopping the notebook's process group does not stop the runner before it cleans up.
    try:
        with open(folder.runner_log, "wb") as runner_log:
            return subprocess.Popen(
                [*command, str(folder.path), str(os.getpid()), str(lock)],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=runner_log,
                pass_fds=[lock],
                env=child_environment(),
            )
    finally:
        os.close(lock)  # the process holds it now; if it did not start, the run is seen to have no runner
