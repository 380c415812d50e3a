"""The offline stand-in for azureml.core.Experiment: submits a ScriptRunConfig to run on this machine."""
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from azureml._base_sdk_common.common import check_valid_resource_name
from azureml.core.script_run_config import ScriptRunConfig
from azureml.exceptions import UserErrorException

from . import store
from .compute import ComputeTarget
from .run import Run

RUNNER = [sys.executable, "-m", "azureml_offline.runner"]  # + the run folder, this pid, the runner lock's fd


class Experiment:
    """A named group of runs in the workspace folder."""

    def __init__(self, workspace, name):
        if not isinstance(name, str):
            raise UserErrorException(f"Experiment name must be a string, not {type(name).__name__}")
        check_valid_resource_name(name, "Experiment")  # the SDK's own rule; it also keeps the name a plain folder name
        self._workspace = workspace
        self._name = name
        workspace._backend.add_experiment(name)

    @property
    def name(self):
        return self._name

    @property
    def workspace(self):
        return self._workspace

    def submit(self, config, tags=None):
        """Snapshot config.source_directory and start config.script in a runner process; return its Run at once."""
        if not isinstance(config, ScriptRunConfig):
            raise UserErrorException(f"Offline, Experiment.submit takes a ScriptRunConfig, not {type(config).__name__}")
        if tags is not None and not isinstance(tags, dict):
            raise UserErrorException(f"tags must be a dict, not {type(tags).__name__}")
        if config.command or not config.script:
            raise UserErrorException("Offline runs need ScriptRunConfig(script=...); command= is not supported")
        source = Path(config.source_directory)
        if not source.is_dir():
            raise UserErrorException(f"source_directory {config.source_directory!r} is not a folder")
        if not (source / config.script).is_file():
            raise UserErrorException(f"Script {config.script!r} not found in source_directory {config.source_directory!r}")
        target = config.run_config.target
        if target != "local":
            ComputeTarget(self._workspace, target)  # raises ComputeTargetNotFound as Azure's submit does
        folder, lock = self._workspace._backend.new_run(self._name, {
            "runId": f"{self._name}_{int(time.time())}_{uuid.uuid4().hex[:8]}",
            "target": target,
            "submitted": store.utc_now(),
            "runDefinition": {
                "script": config.script,
                # Azure passes every argument as a string; so does the runner.
                "arguments": [str(argument) for argument in config.arguments or []],
                "environment": config.run_config.environment.name,
            },
        }, tags, source=source)
        run = Run._open(self, folder)
        print(f"Offline run {run.id}: this Python runs {config.script}; environment "
              f"{config.run_config.environment.name!r} (its conda file and Docker image) is not built.")
        # A new session: stopping the notebook's process group does not stop the runner before it cleans up.
        try:
            with open(folder.runner_log, "wb") as runner_log:
                run._runner = subprocess.Popen([*RUNNER, str(folder.path), str(os.getpid()), str(lock)],
                                               start_new_session=True, stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL, stderr=runner_log, pass_fds=[lock])
        finally:
            os.close(lock)  # the runner holds it now; if it did not start, the run is seen to have no runner
        return run

    def get_runs(self):
        """This experiment's runs, newest first."""
        return (Run._open(self, folder) for folder in self._workspace._backend.runs(self._name))

    def __eq__(self, other):
        return isinstance(other, Experiment) and (other._workspace, other._name) == (self._workspace, self._name)

    def __repr__(self):
        return f"Experiment(Name: {self._name},\nWorkspace: {self._workspace.name})"
