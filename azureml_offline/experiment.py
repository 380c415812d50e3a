"""The offline stand-in for azureml.core.Experiment: submits a ScriptRunConfig to run on this machine."""
import os
import shutil
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

# Never snapshotted: version control, caches, and offline workspaces (the current one under any name: _snapshot_ignore).
SNAPSHOT_IGNORE = (".git", "__pycache__", ".ipynb_checkpoints", ".azureml-offline")


class Experiment:
    """A named group of runs, kept in <workspace>/experiments/<name>/."""

    def __init__(self, workspace, name):
        check_valid_resource_name(name, "Experiment")  # the SDK's own rule; it also keeps the name a plain folder name
        self._workspace = workspace
        self._name = name
        self._folder = workspace._root / "experiments" / name
        self._folder.mkdir(parents=True, exist_ok=True)

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
        source = Path(config.source_directory)
        if config.command or not config.script:
            raise UserErrorException("Offline runs need ScriptRunConfig(script=...); command= is not supported")
        if not (source / config.script).is_file():
            raise UserErrorException(f"Script {config.script!r} not found in source_directory {config.source_directory!r}")
        target = config.run_config.target
        if target != "local":
            ComputeTarget(self._workspace, target)  # raises ComputeTargetNotFound as Azure's submit does

        with store.staging_dir(self._workspace._root) as staged:
            shutil.copytree(source, staged / "snapshot", ignore=self._snapshot_ignore)
            store.write_json(staged / "run.json", {
                "runId": f"{self._name}_{int(time.time())}_{uuid.uuid4().hex[:8]}",
                "target": target,
                "submitted": store.utc_now(),
                "runDefinition": {
                    "script": config.script,
                    # Azure passes every argument as a string; so does the runner.
                    "arguments": [str(argument) for argument in config.arguments or []],
                    "environment": config.run_config.environment.name,
                },
            })
            store.write_json(staged / "status.json", {"status": "Queued"})
            for key, value in (tags or {}).items():
                store.append_record(staged / "tags.jsonl", {key: value})
            number = store.publish(staged, self._folder / "runs")
        run = Run._open(self, number)
        print(f"Offline run {run.id}: this Python runs {config.script}; environment "
              f"{config.run_config.environment.name!r} (its conda file and Docker image) is not built.")
        # A new session: stopping the notebook's process group does not stop the runner before it cleans up.
        with open(run._folder / "runner.log", "wb") as runner_log:
            run._runner = subprocess.Popen(
                [sys.executable, "-m", "azureml_offline.runner", str(run._folder), str(os.getpid())],
                start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=runner_log)
        return run

    def _snapshot_ignore(self, folder, names):
        """copytree's ignore: SNAPSHOT_IGNORE, and the workspace folder under whatever name it has here."""
        ignored = set(shutil.ignore_patterns(*SNAPSHOT_IGNORE)(folder, names))
        root = self._workspace._root.resolve()
        return ignored | {name for name in names if Path(folder, name).resolve() == root}

    def get_runs(self):
        """This experiment's runs, newest first."""
        return (Run._open(self, number) for number in reversed(store.numbers(self._folder / "runs")))

    def __eq__(self, other):
        return isinstance(other, Experiment) and other._folder == self._folder

    def __repr__(self):
        return f"Experiment(Name: {self._name},\nWorkspace: {self._workspace.name})"
