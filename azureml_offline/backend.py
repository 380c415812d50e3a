"""The offline workspace's backend, in moto's sense: one object per workspace folder that holds its state and its
rules. The SDK stand-ins (Workspace, Experiment, Run, HyperDriveRun, Model, ComputeTarget, Webservice) translate
the SDK's calls into calls of a Backend and never touch its parts; the engine's processes (engine/) run what it
starts; the folder it keeps is state/layout.py's.

    backend = open_backend(root)     # the Backend of a workspace folder (one per folder in a process)
    backend = backend_of(run)        # ... of a stand-in: a Workspace, Experiment, Run, Model or Webservice

What it does: submit a run, a sweep or an MPI job (submit_run, submit_sweep); reconcile a run's status with its
runner (reconcile_status: a run whose runner died is marked Failed, and what it left is killed); cancel a run;
register a model (register_model); deploy, update, reconcile and delete a web service. What it answers: the
runs, children, models and services it keeps, as state.layout's folders (RunFolder, ServiceFolder), and the
runner processes this process started (runner).
"""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import requests
from azureml._model_management._util import model_name_validation, populate_model_not_found_details
from azureml._restclient import models as rest_models
from azureml._restclient.exceptions import ServiceException
from azureml._restclient.models.error_response import ErrorResponseException
from azureml._run_impl.run_history_facade import PropertyKeys
from azureml.exceptions import ComputeTargetException, SnapshotException, UserErrorException, WebserviceException
from msrest import Deserializer

from .engine import launch, mpi, processes, server
from .state import files
from .state.layout import (
    HYPERDRIVE_RUN_TYPE,
    RUN_DIR_VARIABLE,
    TERMINAL_STATES,
    ServiceFolder,
    WorkspaceFolder,
    run_error,
)

__all__ = ["Backend", "backend_of", "copy_app", "open_backend", "open_run_folder", "run_definition"]

RUNNER = [sys.executable, "-m", "azureml_offline.engine.runner"]  # + the run folder, this pid, the lock's fd
SWEEP_DRIVER = [sys.executable, "-m", "azureml_offline.engine.sweep"]
RUNNER_LOG_TAIL_LINES = 10  # of runner.log, in the error of a run whose runner died
RUNNER_EXIT_SECONDS = 5  # for a runner that has released its lock to finish exiting
POLL_SECONDS = 0.5
# Azure's rule for compute names; it also keeps the name a plain file name.
COMPUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,15}")
ACI, LOCAL = "ACI", "Local"  # the SDK's computeType values of services
START_SECONDS = 60  # a service whose server was never started (its deployer died first) is Failed after this
PROBE_SECONDS = 2  # liveness probe timeout
SNAPSHOT_ID = PropertyKeys.SNAPSHOT_ID  # the property that names a run's snapshot
EXPERIMENT_IDS = uuid.UUID("6f1f4d4e-0ff1-4e0b-9b9e-0a5e3e7f1a11")  # the namespace of experiments' uuid5 ids
CURATED_PREFIXES = ("AzureML", "Microsoft")  # of curated environments' names (the SDK's Environment docstring)
VERSIONING = ("name", "version", "assetId")  # what registering sets in a serialized Environment

_backends = {}  # workspace folder -> its Backend, one per folder in this process


def open_backend(root=None):
    """The Backend of the workspace folder `root` (default: state.layout.workspace_dir()), created if need be."""
    folder = WorkspaceFolder.open(root)
    return _backends.setdefault(folder.root, Backend(folder))


def backend_of(thing):
    """The Backend behind a stand-in: a Workspace (its `backend` attribute, offline only), or what has a
    `workspace` (Experiment, Model, Webservice) or an `experiment` (Run)."""
    while not isinstance(thing, Backend):
        owner = next((name for name in ("backend", "workspace", "experiment") if hasattr(thing, name)), None)
        if owner is None:
            raise TypeError(f"{thing!r} belongs to no offline workspace")
        thing = getattr(thing, owner)
    return thing


def open_run_folder(run_dir):
    """(Backend, experiment name, RunFolder) of the run folder `run_dir` (a script's RUN_DIR_VARIABLE)."""
    folder, experiment, number = WorkspaceFolder.of_run(run_dir)
    backend = _backends.setdefault(folder.root, Backend(folder))
    return backend, experiment, folder.run(experiment, number)


def is_valid_compute_name(name):
    return isinstance(name, str) and COMPUTE_NAME.fullmatch(name) is not None


def compute_not_found(name):
    return ComputeTargetException(
        f"ComputeTargetNotFound: Compute Target with name {name} not found in provided workspace"
    )


def distribution(run_config):
    """What the run definition says of an MPI job, as Azure records it; {} for a one-process run.

    ScriptRunConfig(distributed_job_config=MpiConfiguration(...)) sets the communicator, node_count and mpi.
    """
    if run_config.communicator in (None, "None"):
        return {}
    if run_config.communicator not in ("IntelMpi", "OpenMpi"):
        raise UserErrorException(
            f"Offline runs support MpiConfiguration, not the {run_config.communicator} "
            f"communicator of {run_config.framework}"
        )
    counts = {"node_count": run_config.node_count, "process_count_per_node": run_config.mpi.process_count_per_node}
    for name, count in counts.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise UserErrorException(f"MpiConfiguration {name} must be a positive integer, not {count!r}")
    return {
        "framework": run_config.framework,
        "communicator": run_config.communicator,
        "nodeCount": counts["node_count"],
        "mpi": {"processCountPerNode": counts["process_count_per_node"]},
    }


def run_definition(config, arguments=(), distributed=True):
    """The runDefinition recorded for ScriptRunConfig `config`: its script, its arguments and then `arguments`
    (strings, as Azure passes them), its environment's name, and (if `distributed`) its MPI job."""
    return {
        "script": config.script,
        "arguments": [str(argument) for argument in [*(config.arguments or []), *arguments]],
        "environment": config.run_config.environment.name,
        **(distribution(config.run_config) if distributed else {}),
    }


class Backend:
    """One offline workspace: its folder (a state.layout.WorkspaceFolder, `folder`) and the rules that change it."""

    def __init__(self, folder):
        self.folder = folder
        self._runners = {}  # run id -> Popen of the runner (or sweep driver) this process started for it
        self._runs = {}  # (experiment, run id) -> RunFolder, filled as runs are looked up

    @property
    def root(self):
        return self.folder.root

    def created_time(self):
        """When the workspace folder was created (workspace.json's record)."""
        return self.folder.created_time()

    # Compute targets

    def compute_names(self):
        return self.folder.compute_names()

    def compute(self, name):
        """The definition of compute target `name`; ComputeTargetNotFound, as Azure's, if there is none."""
        definition = self.folder.read_compute(name) if is_valid_compute_name(name) else None
        if definition is None:
            raise compute_not_found(name)
        return definition

    def create_compute(self, name, definition):
        """Record compute target `name` (replacing one of that name, as Azure's create does)."""
        if not is_valid_compute_name(name):
            raise ComputeTargetException(
                f"Invalid compute name {name!r}: 2 to 16 letters, digits or hyphens, starting with a letter"
            )
        self.folder.write_compute(name, definition)

    def delete_compute(self, name):
        if not self.folder.delete_compute(name):
            raise compute_not_found(name)

    # Experiments and runs

    def experiment_names(self):
        return self.folder.experiment_names()

    def add_experiment(self, name):
        self.folder.add_experiment(name)

    def experiment_id(self, name):
        """Experiment `name`'s id: the same in every process and session, as an Azure experiment's."""
        return str(uuid.uuid5(EXPERIMENT_IDS, name))

    def experiment(self, name):
        """What was set on experiment `name`: its tags, and archivedTime (None while it is active)."""
        record = self.folder.read_experiment(name)
        return {"tags": record.get("tags", {}), "archivedTime": record.get("archivedTime")}

    def set_experiment_tags(self, name, tags):
        record = self.folder.read_experiment(name)
        record["tags"] = {**record.get("tags", {}), **tag_values(tags, "tags")}
        self.folder.write_experiment(name, record)

    def remove_experiment_tags(self, name, keys):
        record = self.folder.read_experiment(name)
        removed = tag_names(keys)
        record["tags"] = {key: value for key, value in record.get("tags", {}).items() if key not in removed}
        self.folder.write_experiment(name, record)

    def archive_experiment(self, name, archived=True):
        """Archive experiment `name` (Experiment.list leaves it out by default), or reactivate it."""
        record = self.folder.read_experiment(name)
        record["archivedTime"] = files.utc_now() if archived else None
        self.folder.write_experiment(name, record)

    def select_experiments(self, name=None, view_type="ActiveOnly", tags=None):
        """The names of the experiments that Experiment.list's filters select: `name`; view_type "ActiveOnly",
        "ArchivedOnly" or "All"; `tags`, a tag name or {name: value} pairs."""
        if view_type not in ("ActiveOnly", "ArchivedOnly", "All"):
            raise UserErrorException(f"view_type is ActiveOnly, ArchivedOnly or All, not {view_type!r}")
        selected = []
        for candidate in self.experiment_names():
            recorded = self.experiment(candidate)
            archived = recorded["archivedTime"] is not None
            if (
                name in (None, candidate)
                and view_type in ("All", "ArchivedOnly" if archived else "ActiveOnly")
                and (tags is None or matches(tags, recorded["tags"], "tags"))
            ):
                selected.append(candidate)
        return selected

    def delete_experiment(self, experiment_id):
        """Delete the experiment with id `experiment_id` and all its runs, which must have ended."""
        name = next((name for name in self.experiment_names() if self.experiment_id(name) == experiment_id), None)
        if name is None:
            raise UserErrorException(f"No experiment with id {experiment_id!r} in the offline workspace")
        active = [run.run_id for run in self.runs(name) if self.reconcile_status(run)["status"] not in TERMINAL_STATES]
        if active:
            raise UserErrorException(
                f"Experiment {name!r} cannot be deleted while its runs {active} have not ended: cancel them first"
            )
        self.folder.remove_experiment(name)
        self._runs = {key: run for key, run in self._runs.items() if key[0] != name}

    def runs(self, experiment):
        """The experiment's runs (RunFolder), newest first."""
        for run in self.folder.runs(experiment):
            self._runs.setdefault((experiment, run.run_id), run)
            yield run

    def run(self, experiment, run_id):
        """The RunFolder of run `run_id` of `experiment`, or None."""
        known = self._runs.get((experiment, run_id))
        if known is None or not known.path.exists():  # runs never move, unless the workspace was removed
            self._runs.pop((experiment, run_id), None)
            for _ in self.runs(experiment):  # one pass indexes them all
                pass
        return self._runs.get((experiment, run_id))

    def all_runs(self):
        """(experiment name, RunFolder) of every run of the workspace."""
        for name in self.experiment_names():
            for run in self.runs(name):
                yield name, run

    def find_run(self, run_id):
        """(experiment name, RunFolder) of run `run_id`, whichever its experiment, or None."""
        return next(((name, run) for name, run in self.all_runs() if run.run_id == run_id), None)

    def select_runs(self, runs, type=None, tags=None, properties=None, status=None, include_children=True):
        """Those of `runs` (RunFolders) that the SDK's filters select: `type`, the run type; `tags` and
        `properties`, a name that must be set or {name: value} pairs; `status`; `include_children`."""
        selected = []
        for run in runs:
            if (
                (include_children or run.definition().get("parentRunId") is None)
                and type in (None, run.run_type)
                and (tags is None or matches(tags, run.tags(), "tags"))
                and (properties is None or matches(properties, run.properties(), "properties"))
                and (status is None or self.reconcile_status(run)["status"] == status)
            ):
                selected.append(run)
        return selected

    def folder_of(self, run):
        """The RunFolder of `run`, a Run stand-in (by its experiment's name and its id)."""
        return self.run(run.experiment.name, run.id)

    def children(self, experiment, parent_id):
        """The runs of `experiment` whose parent is run `parent_id`, oldest first."""
        return [
            run for run in reversed(list(self.runs(experiment))) if run.definition().get("parentRunId") == parent_id
        ]

    def runner(self, run_id):
        """The runner (or sweep driver) process, a Popen, that this process started for run `run_id`, or None."""
        return self._runners.get(run_id)

    def submit_run(self, experiment, config, tags=None, run_id=None, parent_id=None, arguments=()):
        """Snapshot ScriptRunConfig `config`'s source directory and start its script in a runner process; return
        the new run's RunFolder. A sweep's child has run_id and parent_id, and its hyperparameters as more
        `arguments`."""
        launch.check_script_run_config(config)
        definition = run_definition(config, arguments)
        if "mpi" in definition:
            mpi.find_mpiexec()  # a clear error now, rather than a failed run
        target = config.run_config.target
        if target != "local":
            nodes = self.compute(target)["scaleSettings"]["maxNodeCount"]  # ComputeTargetNotFound, as on Azure
            if config.run_config.node_count > nodes:
                raise UserErrorException(
                    f"node_count {config.run_config.node_count} is more than the "
                    f"{nodes} nodes of compute target {target!r}"
                )
        record = {
            "runId": run_id or f"{experiment}_{int(time.time())}_{uuid.uuid4().hex[:8]}",
            "target": target,
            "submitted": files.utc_now(),
            "runDefinition": definition,
        }
        if parent_id:
            record["parentRunId"] = parent_id
        return self._start(experiment, record, tags, config.source_directory, RUNNER)

    def submit_sweep(self, experiment, run_id, config, settings, tags, properties):
        """Record a sweep's parent run (what each child runs, ScriptRunConfig `config`, and the sweep's
        `settings`) and start its driver; return the parent's RunFolder."""
        self.compute(config.run_config.target)  # ComputeTargetNotFound, as Azure's submit
        record = {
            "runId": run_id,
            "runType": HYPERDRIVE_RUN_TYPE,
            "target": config.run_config.target,
            "submitted": files.utc_now(),
            # What each child runs, before its hyperparameters are added to the arguments.
            "runDefinition": run_definition(config, distributed=False),
            "hyperdrive": settings,
        }
        return self._start(experiment, record, tags, config.source_directory, SWEEP_DRIVER, properties)

    def _start(self, experiment, record, tags, source, command, properties=None):
        properties = {**(properties or {}), SNAPSHOT_ID: str(uuid.uuid4())}
        folder, lock = self.folder.new_run(
            experiment, record, tag_values(tags or {}, "tags"), source=Path(source), properties=properties
        )
        self._runs[(experiment, folder.run_id)] = folder
        self._runners[folder.run_id] = launch.start(folder, lock, command)
        return folder

    def start_run(
        self,
        experiment,
        run_id=None,
        name=None,
        parent=None,
        outputs=None,
        snapshot=None,
        tags=None,
        properties=None,
        display_name=None,
        description=None,
    ):
        """Record an interactive run of `experiment` (Experiment.start_logging, Run.child_run, create_children),
        Running at once in this process, which ends it (complete_run, fail_run, cancel_run): should this process
        end first, reconcile_status marks it Failed. `parent`: the parent's RunFolder; `outputs`: a folder
        (created if need be, as the SDK does) copied into the run's files when it ends; `snapshot`: a file or
        folder to snapshot now. A run with no parent is named run_<id> unless it has a name, as the SDK names it.
        Return its RunFolder."""
        if run_id is not None and self.find_run(run_id) is not None:
            raise UserErrorException(f"A run with id {run_id!r} exists already in the offline workspace")
        run_id = run_id or str(uuid.uuid4())  # the SDK's ids of such runs
        record = {
            "runId": run_id,
            "runType": None,  # the SDK gives an interactive run no run type
            "name": f"run_{run_id}" if name is None and parent is None else name,
            "target": parent.definition()["target"] if parent else "local",
            "submitted": files.utc_now(),
            "runDefinition": {},
            "owner": {"pid": os.getpid(), "startTime": processes.start_time(os.getpid())},
        }
        if parent is not None:
            record["parentRunId"] = parent.run_id
        if outputs is not None:
            Path(outputs).mkdir(parents=True, exist_ok=True)
            record["outputs"] = {"path": str(Path(outputs).resolve()), "name": outputs_name(outputs)}
        folder, _ = self.folder.new_run(
            experiment,
            record,
            tag_values(tags or {}, "tags"),
            source=snapshot,
            properties={
                **tag_values(properties or {}, "properties"),
                **({SNAPSHOT_ID: str(uuid.uuid4())} if snapshot is not None else {}),
            },
            status={"status": "Running", "startTimeUtc": files.utc_now()},
        )
        self._runs[(experiment, run_id)] = folder
        if display_name is not None or description is not None:
            self.set_run_display(folder, displayName=display_name, description=description)
        return folder

    def is_interactive(self, run):
        """Whether RunFolder `run` is an interactive run (start_run's), which no runner runs."""
        return "owner" in run.definition()

    def complete_run(self, run):
        """Mark interactive run `run` Completed, its outputs copied in. A runner's run is left to its runner,
        which records how the script ended; a run that has ended keeps its status."""
        if self.is_interactive(run):
            self._end(run, "Completed")

    def fail_run(self, run, error):
        """Mark run `run` Failed with `error` (the SDK's error record). A runner's run has its script stopped
        first; a run that has ended keeps its status."""
        if self.is_interactive(run):
            self._end(run, "Failed", error)
            return
        if self.reconcile_status(run)["status"] in TERMINAL_STATES:
            return
        self.cancel_run(run)
        status = run.read_status()
        if status["status"] == "Canceled":  # stopped here, not ended by the script meanwhile
            status.update(status="Failed", error=error)
            run.write_status(status)

    def _end(self, run, state, error=None):
        """End interactive run `run` in `state` (with `error`), once: its outputs folder is copied in first."""
        status = self.reconcile_status(run)
        if status["status"] in TERMINAL_STATES:
            return
        outputs = run.definition().get("outputs")
        if outputs and Path(outputs["path"]).is_dir():
            run.copy_in(outputs["path"], outputs["name"])
        status.update(status=state, endTimeUtc=files.utc_now())
        if error is not None:
            status["error"] = error
        run.write_status(status)

    def set_run_tags(self, run, tags):
        for key, value in tag_values(tags, "tags").items():
            run.append_tag(key, value)

    def remove_run_tags(self, run, keys):
        run.remove_tags(tag_names(keys))

    def add_run_properties(self, run, properties):
        """Add properties to RunFolder `run`. As on Azure, a property that is set can be added again with the
        same value but never changed: the service answers 400, the SDK raises ServiceException."""
        properties = tag_values(properties, "properties")
        recorded = run.properties()
        changed = sorted(key for key, value in properties.items() if key in recorded and recorded[key] != value)
        if changed:
            raise service_error(
                f"Run {run.run_id}: properties cannot be changed once set; "
                + ", ".join(f"{key!r} is {recorded[key]!r}, not {properties[key]!r}" for key in changed)
            )
        for key, value in properties.items():
            run.add_property(key, value)

    def run_display(self, run):
        """The run's displayName (by default its id, where Azure generates one) and description."""
        return {"displayName": run.run_id, "description": None, **run.read_display()}

    def set_run_display(self, run, **changes):
        """Set the run's displayName and/or description (None: left as it is)."""
        run.write_display({**run.read_display(), **{key: value for key, value in changes.items() if value is not None}})

    def take_snapshot(self, run, source):
        """Snapshot the file or folder `source` into RunFolder `run`, which must have none (the SDK's
        SnapshotException if it has); the snapshot's id."""
        existing = run.properties().get(SNAPSHOT_ID)
        if existing is not None:
            raise SnapshotException(f"Cannot take snapshot as the run already has one: {existing}")
        self.folder.add_snapshot(run, source)
        snapshot_id = str(uuid.uuid4())
        run.add_property(SNAPSHOT_ID, snapshot_id)
        return snapshot_id

    def restore_snapshot(self, snapshot_id, path=None):
        """Write snapshot `snapshot_id` as the zip file <path>/<snapshot_id>.zip (path: the temporary folder by
        default, as the SDK's); its absolute path."""
        found = next((run for _, run in self.all_runs() if run.properties().get(SNAPSHOT_ID) == snapshot_id), None)
        if found is None:
            raise SnapshotException(f"No snapshot {snapshot_id!r} in the offline workspace")
        folder = Path(path or tempfile.gettempdir())
        folder.mkdir(parents=True, exist_ok=True)
        target = (folder / f"{snapshot_id}.zip").absolute()
        found.zip_snapshot(target)
        return str(target)

    def reconcile_status(self, run):
        """The status record of RunFolder `run`. A run whose runner is gone without ending it is marked Failed
        (else it would never end), and what its script started is killed; so is an interactive run whose
        process is gone without ending it."""
        status = run.read_status()
        if self.is_interactive(run):
            return self._fail_if_owner_gone(run, status)
        if status["status"] in TERMINAL_STATES or run.runner_alive():
            return self._reaped(run, status)
        status = run.read_status()  # it may have ended the run just before exiting
        if status["status"] in TERMINAL_STATES:
            return self._reaped(run, status)
        # What the script started may have outlived the runner (a script in a session of its own): stop it.
        processes.kill_marked(RUN_DIR_VARIABLE, str(run.path))
        how = "died"
        runner = self._runners.get(run.run_id)
        if runner is not None:
            try:  # its lock is released: it is exiting, if it has not yet
                runner.wait(timeout=RUNNER_EXIT_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        if runner and runner.poll() is not None:
            code = runner.returncode
            how = (
                f"was killed by signal {-code} ({signal.strsignal(-code)})" if code < 0 else f"exited with code {code}"
            )
        log = run.runner_log.read_text(errors="replace").strip().splitlines() if run.runner_log.exists() else []
        message = f"The offline runner process {how} before it recorded the end of the run"
        if log:
            message += "; runner.log ends:\n" + "\n".join(log[-RUNNER_LOG_TAIL_LINES:])
        status.update(status="Failed", endTimeUtc=files.utc_now(), error=run_error("SystemError", message))
        run.write_status(status)
        return status

    def _fail_if_owner_gone(self, run, status):
        """`status` of interactive run `run`; Failed if the process that owns it ended without ending it."""
        owner = run.definition()["owner"]
        if status["status"] in TERMINAL_STATES or processes.start_time(owner["pid"]) == owner["startTime"]:
            return status
        status = run.read_status()  # it may have ended the run just before exiting
        if status["status"] in TERMINAL_STATES:
            return status
        message = (
            f"The process (pid {owner['pid']}) that started interactive run {run.run_id} ended without "
            "completing, failing or canceling it"
        )
        status.update(status="Failed", endTimeUtc=files.utc_now(), error=run_error("SystemError", message))
        run.write_status(status)
        return status

    def _reaped(self, run, status):
        """`status`; once it is final, the runner this process started has written it and is exiting: reap it."""
        runner = self._runners.get(run.run_id)
        if runner is not None and status["status"] in TERMINAL_STATES:
            runner.wait()
        return status

    def cancel_run(self, run):
        """Ask the runner of RunFolder `run` to stop its script and wait until the run has ended (Canceled); an
        interactive run is Canceled at once."""
        if self.is_interactive(run):
            self._end(run, "Canceled")
            return
        if self.reconcile_status(run)["status"] in TERMINAL_STATES:
            return
        run.request_cancel()  # the runner watches for this, as Azure's local runs do
        while self.reconcile_status(run)["status"] not in TERMINAL_STATES:
            time.sleep(POLL_SECONDS)

    # Models

    def model_names(self):
        return self.folder.model_names()

    def model_versions(self, name):
        return self.folder.model_versions(name)

    def model(self, name, version):
        """What was recorded of version `version` of model `name` (model.json), or None."""
        return self.folder.read_model(name, version)

    def model_entry(self, name, version):
        """The registered file or folder of the model version."""
        return self.folder.model_entry(name, version)

    def register_model(
        self,
        name,
        source,
        tags=None,
        properties=None,
        description=None,
        framework=None,
        framework_version=None,
        run_id=None,
        experiment=None,
    ):
        """Copy the file or folder `source` into the next version of model `name`; return the version."""
        if not isinstance(name, str):
            raise WebserviceException(f"Error, model name must be a string, not {type(name).__name__}")
        model_name_validation(name)  # the SDK's rule; it also keeps the name a plain folder name
        if framework is None and framework_version is not None:
            raise WebserviceException("Model framework version cannot be provided without a valid framework")
        for what, value in (("tags", tags), ("properties", properties)):
            if value is not None and not isinstance(value, dict):
                raise WebserviceException(f"Error, {what} must be a dict, not {type(value).__name__}")
        return self.folder.new_model_version(
            name,
            source,
            {
                "tags": dict(tags or {}),
                "properties": dict(properties or {}),
                "description": description,
                "framework": framework,
                "frameworkVersion": framework_version,
                "createdTime": files.utc_now(),
                "runId": run_id,
                "experimentName": experiment,
            },
        )

    def models(self, name=None, tags=None, properties=None, run_id=None, latest=False, framework=None, dataset_id=None):
        """(name, version, definition) of the registered versions that match, by name and newest first, as Azure's
        model query answers: `tags` and `properties` are lists of keys or [key, value] pairs, all of which must
        match; `latest`, only the newest match of each name. A damaged version is left out with a warning, so
        that it hides no other. No model has data sets offline, so none matches a `dataset_id`."""
        for what, wanted in (("tags", tags), ("properties", properties)):
            check_filter(what, wanted)
        found = []
        for each in [name] if name else self.model_names():
            for version in self.model_versions(each)[::-1]:
                try:
                    definition = self.model(each, version)
                except files.DamagedFile as error:
                    warnings.warn(str(error), files.DamagedRecordWarning, stacklevel=2)
                    continue
                if (
                    definition is not None
                    and has_all(definition.get("tags", {}), tags)
                    and has_all(definition.get("properties", {}), properties)
                    and run_id in (None, definition.get("runId"))
                    and framework in (None, definition.get("framework"))
                    and dataset_id is None
                ):
                    found.append((each, version, definition))
                    if latest:
                        break
        return found

    def update_model(
        self, name, version, tags=None, description=None, add_tags=None, remove_tags=None, add_properties=None
    ):
        """Change a model version's tags, properties and description as the SDK's update() (`tags` replace them
        all, `description` replaces it) and update_tags_properties() (the others) do; its new definition.
        Properties can be added, never changed, as on Azure."""
        for what, value in (("tags", tags), ("add_tags", add_tags), ("add_properties", add_properties)):
            if value is not None and not isinstance(value, dict):
                raise WebserviceException(f"Error, {what} must be a dict, not {type(value).__name__}")
        removed = [remove_tags] if remove_tags is not None and not isinstance(remove_tags, list) else remove_tags

        def change(definition):
            recorded = definition.get("properties", {})  # .get: as versions registered before it was recorded
            taken = [key for key in add_properties or {} if key in recorded]
            if taken:  # the SDK's check_duplicate_properties, against what is recorded
                raise WebserviceException(
                    "Error, properties are immutable, the following keys cannot be added/modified: " + ",".join(taken)
                )
            new_tags = {**(tags or definition.get("tags", {})), **(add_tags or {})}
            return {
                **definition,
                "tags": {key: value for key, value in new_tags.items() if key not in (removed or [])},
                "properties": {**recorded, **(add_properties or {})},
                "description": description or definition.get("description"),
            }

        definition = self.folder.update_model(name, version, change)
        if definition is None:
            raise model_not_found(name, version)
        return definition

    def delete_model(self, name, version):
        """Delete a model version, unless a web service uses it (as on Azure, where its image does)."""
        model_id = f"{name}:{version}"
        users = [
            service
            for service in self.service_names()
            if model_id in (self.service_definition(service) or {}).get("modelIds", [])
        ]
        if users:
            raise WebserviceException(
                "The model cannot be deleted because it is currently being used in one or more images. "
                f"Offline, the web services {', '.join(users)} use {model_id}: delete them first."
            )
        if not self.folder.remove_model_version(name, version):
            raise model_not_found(name, version)

    # Environments

    def environments(self):
        """Name -> the definition of the latest version of each registered environment; a damaged one is left out,
        with a warning, so that it hides no other."""
        found = {}
        for name in self.folder.environment_names():
            versions = self.folder.environment_versions(name)
            try:
                if versions:
                    found[name] = self.environment(name, versions[-1])
            except files.DamagedFile as error:
                warnings.warn(str(error), files.DamagedRecordWarning, stacklevel=2)
        return found

    def environment(self, name, version=None, label=None):
        """The definition (the SDK's serialized Environment) of environment `name`: version `version`, or the
        newest labelled `label`, or the latest. A curated environment (is_curated) that is not registered is its
        name alone, using this Python as it is: offline it is not built."""
        if version is not None and label is not None:
            raise UserErrorException("Only one of version or label can be specified")
        versions = self.folder.environment_versions(name)
        if label is not None:
            versions = [each for each in versions if label in self.folder.read_environment(name, each)["labels"]]
        elif version is not None:
            versions = [each for each in versions if str(each) == str(version)]
        if versions:
            return environment_definition(name, versions[-1], self.folder.read_environment(name, versions[-1]))
        if is_curated(name):
            return {"name": name, "version": version, "python": {"userManagedDependencies": True}}
        which = f"label {label}" if label is not None else f"version {version}" if version is not None else "any"
        raise UserErrorException(f"Environment {name} ({which}) not found in the offline workspace")

    def register_environment(self, definition):
        """Register an environment (the SDK's serialized Environment); its definition as registered, with its
        version. Versions are 1, 2, ...: a definition equal to the latest version's is that version, a changed
        one the next; a definition that names its version is that version, or a conflict if it differs."""
        name = definition["name"]
        if is_curated(name):
            raise UserErrorException(
                f"Environment name {name!r}: names that start with AzureML or Microsoft are reserved for "
                "curated environments"
            )
        requested = definition["version"]
        if requested is not None and not (isinstance(requested, str) and requested.isdigit() and int(requested)):
            raise UserErrorException(f"Environment version {requested!r}: offline, versions are 1, 2, ...")
        # As JSON reads it back, without what registering sets, so that definitions compare equal.
        content = {key: value for key, value in json.loads(json.dumps(definition)).items() if key not in VERSIONING}
        versions = self.folder.environment_versions(name)
        same = int(requested) if requested else versions[-1] if versions else None
        if same in versions:
            record = self.folder.read_environment(name, same)
            if record["environment"] == content:
                return environment_definition(name, same, record)
            if requested:
                raise UserErrorException(
                    f"Environment {name} version {requested} is registered with another definition: "
                    "to register a new version, set the environment's version to None"
                )
        record = {"environment": content, "labels": [], "registeredTime": files.utc_now()}
        version = self.folder.new_environment_version(name, record, int(requested) if requested else None)
        return environment_definition(name, version, record)

    def label_environment(self, name, version, labels):
        """Add `labels` (strings) to version `version` of environment `name`."""
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise UserErrorException(f"labels must be a list of strings, not {labels!r}")

        def change(record):
            return {**record, "labels": sorted({*record["labels"], *labels})}

        if self.folder.update_environment(name, version, change) is None:
            raise UserErrorException(f"Environment {name} (version {version}) not found in the offline workspace")

    # Web services

    def service_names(self):
        return self.folder.service_names()

    def service(self, name):
        """The ServiceFolder of service `name` (its files may not exist: see service_definition)."""
        return self.folder.service(name)

    def service_definition(self, name):
        """What was deployed as service `name` (service.json), or None if there is no such service."""
        return files.read_json(self.folder.service(name).definition)

    def deploy_service(self, name, kind, settings, models, inference_config, auth, overwrite):
        """Publish service `name` (its app, models, keys and definition) and start its server. `kind` is ACI or
        LOCAL; `settings` the definition's description, tags, properties and configuration."""
        server.azmlinfsrv()  # fails before anything is written if the server is not installed
        if self.service_definition(name) is not None:
            if not overwrite:
                raise name_taken(name)
            self.delete_service(name)
        definition = {
            "name": name,
            "computeType": kind,
            "serviceId": uuid.uuid4().hex,
            "createdTime": files.utc_now(),
            **settings,
            "modelIds": [model.id for model in models],
            "environment": inference_config.environment.name if inference_config.environment else None,
        }

        def write(service):
            definition["entryScript"] = copy_app(service, self.folder, inference_config)
            copy_models(service, self.folder, definition["modelIds"])
            service.write_keys({"authEnabled": auth, "primaryKey": new_key(), "secondaryKey": new_key()})
            files.write_json(service.definition, definition)

        try:
            self.folder.new_service(name, write)
        except FileExistsError:  # another process deployed one of that name meanwhile
            raise name_taken(name) from None
        server.start(self.folder.service(name))

    def update_service(
        self, name, tags=None, properties=None, description=None, auth_enabled=None, models=None, inference_config=None
    ):
        """Apply an update; new models or a new inference config restart the server."""
        service = self.folder.service(name)
        definition = files.read_json(service.definition)
        if tags is not None:
            definition["tags"] = dict(tags)
        if properties is not None:
            definition["properties"].update(properties)
        if description is not None:
            definition["description"] = description
        if auth_enabled is not None:
            service.write_keys(dict(files.read_json(service.keys), authEnabled=bool(auth_enabled)))
        if models is None and inference_config is None:
            files.write_json(service.definition, definition)
            return
        if models is not None:
            definition["modelIds"] = [model.id for model in models]
        # The new app (or models) is copied whole beside the old one first: a copy that fails leaves the old
        # server serving.
        with tempfile.TemporaryDirectory(dir=service.path, prefix=".update-") as staging:
            staged = ServiceFolder(staging)
            if inference_config is not None:
                definition["entryScript"] = copy_app(staged, self.folder, inference_config)
            copy_models(staged, self.folder, definition["modelIds"])
            server.stop(files.read_json(service.server))
            for stale in (service.ready, service.server):
                stale.unlink(missing_ok=True)
            new, old = (staged.app, service.app) if inference_config is not None else (staged.models, service.models)
            shutil.rmtree(old)
            new.rename(old)
            staged.init_log.replace(service.init_log)
        definition["serviceId"] = uuid.uuid4().hex  # the old server's watch ends
        files.write_json(service.definition, definition)
        server.start(service)

    def reconcile_service(self, name, session=None):
        """(state, error, server) of service `name`, read from its server: Transitioning, Healthy, Unhealthy,
        Failed or Deleted; `error` says why it failed; `server` is server.json's record (pid, port) or None.
        State is never stored where it could go stale: the server process (alive or not), its `ready` file and
        its liveness route (probed with the requests `session`) tell it."""
        service = self.folder.service(name)
        record = files.read_json(service.server)
        error = None
        if not service.definition.exists():
            state = "Deleted"
        elif server.running(record):
            if not service.ready.exists():
                state = "Transitioning"
            else:
                state = "Healthy" if answers(session or requests, record["port"]) else "Unhealthy"
        elif record is None and time.time() - service.definition.stat().st_mtime <= START_SECONDS:
            state = "Transitioning"  # the deployer records the server a moment after publishing the folder
        else:
            state = "Failed"
            why = (
                "The server process was never started"
                if record is None
                else f"The server process exited: {server.startup_error(service.server_log)}"
            )
            error = {"code": "ServiceFailed", "message": why, "details": "get_logs() shows the server's log"}
        return state, error, record

    def service_keys(self, name):
        """keys.json of service `name` (authEnabled and the two keys), or None if there is no such service."""
        return files.read_json(self.folder.service(name).keys)

    def regenerate_key(self, name, which, value=None):
        """Replace the service's "primaryKey" or "secondaryKey" with `value` or a new key; the server re-reads it."""
        service = self.folder.service(name)
        service.write_keys(dict(files.read_json(service.keys), **{which: value or new_key()}))

    def service_log(self, name, init=False):
        """The server's log (init: what deployment copied), or '' if there is none."""
        service = self.folder.service(name)
        log = service.init_log if init else service.server_log
        return log.read_text(errors="replace") if log.exists() else ""

    def delete_service(self, name):
        """Stop the service's server (its port is free when this returns) and remove its folder; False if there
        was no such service."""
        gone = self.folder.remove_service(name)  # first, so no one finds it half deleted
        if gone is None:
            return False
        server.stop(files.read_json(gone.server))
        gone.discard()
        return True


def check_filter(what, wanted):
    """Refuse a filter of Model.list that is not the SDK's: a list of keys and [key, value] pairs."""
    if wanted is None:
        return
    if not isinstance(wanted, list) or not all(
        isinstance(entry, str) or (isinstance(entry, list) and len(entry) == 2) for entry in wanted
    ):
        raise UserErrorException(
            f'Expected {what} must be list type. Ex. ["key", ["key2", "key2 value"]]: provided {wanted!r}'
        )


def has_all(recorded, wanted):
    """Whether dict `recorded` has each of `wanted` (keys, or [key, value] pairs: values compare as the text
    that Azure's query sends)."""
    for entry in wanted or []:
        key, value = (entry, None) if isinstance(entry, str) else entry
        if key not in recorded or (value is not None and str(recorded[key]) != str(value)):
            return False
    return True


def model_not_found(name, version):
    return WebserviceException(populate_model_not_found_details(name=name, version=version))


def is_curated(name):
    """Whether an environment name is a curated environment's: the SDK reserves these prefixes for them."""
    return name.startswith(CURATED_PREFIXES)


def environment_definition(name, version, record):
    """The serialized Environment of version `version` of environment `name`, from its `record`."""
    return {**record["environment"], "name": name, "version": str(version)}


def answers(session, port):
    """Whether the server on `port` answers its liveness route."""
    try:
        return session.get(f"http://127.0.0.1:{port}/", timeout=PROBE_SECONDS).status_code == 200
    except requests.RequestException:
        return False


def name_taken(name):
    return WebserviceException(
        f"Service {name} with the same name already exists, please use a different service "
        f"name or delete the existing service."
    )


def tag_values(tags, what):
    """`tags` (or properties), a dict, as Azure stores them: names are non-empty strings, values strings or
    None (a number or bool becomes a string, as the SDK sends it)."""
    if not isinstance(tags, dict):
        raise UserErrorException(f"{what} must be a dict, not {type(tags).__name__}")
    stored = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key:
            raise UserErrorException(f"A name of {what} is a non-empty string, not {key!r}")
        if not isinstance(value, (str, int, float, bool, type(None))):
            raise UserErrorException(f"The value of {key!r} in {what} is a string, not {type(value).__name__}")
        stored[key] = value if value is None else str(value)
    return stored


def tag_names(keys):
    """A list of tag names, as remove_tags takes."""
    if isinstance(keys, str) or not all(isinstance(key, str) for key in keys):
        raise UserErrorException(f"remove_tags takes a list of tag names, not {keys!r}")
    return list(keys)


def matches(selector, recorded, what):
    """Whether `recorded` tags or properties have the name `selector`, or all of its {name: value} pairs."""
    if isinstance(selector, str):
        return selector in recorded
    if isinstance(selector, dict):
        return all(key in recorded and recorded[key] == value for key, value in selector.items())
    raise UserErrorException(f"A {what} filter is a name or a dict of names and values, not {selector!r}")


def outputs_name(outputs):
    """Where the files of an interactive run's outputs folder go among its files: the folder's path as given
    (e.g. "outputs" for "./outputs"), as the SDK names them, or its own name if that leads elsewhere."""
    relative = os.path.normpath(outputs)
    return (
        Path(relative).as_posix()
        if not os.path.isabs(relative) and not relative.startswith("..")
        else Path(outputs).resolve().name
    )


def service_error(message):
    """The SDK's ServiceException for a request that the service refuses (400, UserError) with `message`."""
    response = requests.Response()
    response.status_code = 400
    response.headers["Content-Type"] = "application/json"
    response._content = json.dumps({"error": {"code": "UserError", "message": message, "details": []}}).encode()
    deserialize = Deserializer({name: model for name, model in vars(rest_models).items() if isinstance(model, type)})
    return ServiceException(ErrorResponseException(deserialize, response))


def copy_app(service, folder, inference_config):
    """Copy the source directory (as a run's snapshot, never the workspace itself) or, without one, the entry
    script into the app folder of ServiceFolder `service` of WorkspaceFolder `folder`; return the entry script's
    path there."""
    entry_script = Path(inference_config.entry_script)
    if inference_config.source_directory:
        try:
            folder.copy_source(inference_config.source_directory, service.app)
        except SnapshotException as e:  # a folder the SDK would not snapshot: its message names the file
            raise WebserviceException(e.message) from None
        except OSError as e:
            raise WebserviceException(uncopyable(inference_config.source_directory, e)) from None
    else:
        service.app.mkdir()
        shutil.copy(entry_script, service.app)
        entry_script = Path(entry_script.name)
    return entry_script.as_posix()


def uncopyable(source, error):
    """One line that names the file of source directory `source` that could not be copied, and what to do."""
    if isinstance(error, shutil.Error):  # copytree's: (source, target, why) of each file it could not copy
        path, _, why = error.args[0][0]
    else:
        path, why = error.filename, error
    return (
        f"Cannot copy {path} from the source directory {source} into the service ({why}): mend or remove it, "
        f"or list it in the folder's .amlignore, then deploy or update again"
    )


def copy_models(service, folder, model_ids):
    """Copy the files of the models ("name:version") of WorkspaceFolder `folder` where the server finds them."""
    shutil.rmtree(service.models, ignore_errors=True)
    service.models.mkdir(parents=True)
    service.init_log.parent.mkdir(exist_ok=True)
    lines = []
    for model_id in model_ids:
        name, version = model_id.rsplit(":", 1)
        entry = folder.model_entry(name, version)  # the registered file or folder
        target = service.models / name / version
        target.mkdir(parents=True)
        (shutil.copytree if entry.is_dir() else shutil.copyfile)(entry, target / entry.name)
        lines.append(f"Copied model {model_id} into azureml-models/{name}/{version}\n")
    service.init_log.write_text("".join(lines) or "No models to copy\n")


def new_key():
    return secrets.token_urlsafe(24)  # 32 characters, as Azure's keys
