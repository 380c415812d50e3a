"""The Backend's experiments and runs: submitting a run, an MPI job or a sweep, interactive runs, reconciling a
run's status with its runner, cancelling, and experiments' and runs' tags, properties, display and snapshots."""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
from azureml._restclient import models as rest_models
from azureml._restclient.exceptions import ServiceException
from azureml._restclient.models.error_response import ErrorResponseException
from azureml._run_impl.run_history_facade import PropertyKeys
from azureml.core.environment import Environment
from azureml.exceptions import SnapshotException, UserErrorException
from msrest import Deserializer

from ..engine import launch, mpi, processes
from ..state import files
from ..state.layout import HYPERDRIVE_RUN_TYPE, RUN_DIR_VARIABLE, TERMINAL_STATES, run_error

RUNNER = [sys.executable, "-m", "azureml_offline.engine.runner"]  # + the run folder, this pid, the lock's fd
SWEEP_DRIVER = [sys.executable, "-m", "azureml_offline.engine.sweep"]
RUNNER_LOG_TAIL_LINES = 10  # of runner.log, in the error of a run whose runner died
RUNNER_EXIT_SECONDS = 5  # for a runner that has released its lock to finish exiting
POLL_SECONDS = 0.5
SNAPSHOT_ID = PropertyKeys.SNAPSHOT_ID  # the property that names a run's snapshot
EXPERIMENT_IDS = uuid.UUID("6f1f4d4e-0ff1-4e0b-9b9e-0a5e3e7f1a11")  # the namespace of experiments' uuid5 ids


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
    (strings, as Azure passes them), its environment as the SDK serializes it, the run configuration's environment
    variables, and (if `distributed`) its MPI job."""
    return {
        "script": config.script,
        "arguments": [str(argument) for argument in [*(config.arguments or []), *arguments]],
        "environment": Environment._serialize_to_dict(config.run_config.environment),
        "environmentVariables": dict(config.run_config.environment_variables or {}),
        **(distribution(config.run_config) if distributed else {}),
    }


class RunRules:
    """The experiments and runs of the workspace folder `self.folder`, and the runner processes this process
    started; it uses the compute targets (ComputeRules) that a run is submitted to."""

    def __init__(self):
        super().__init__()
        self._runners = {}  # run id -> Popen of the runner (or sweep driver) this process started for it
        self._runs = {}  # (experiment, run id) -> RunFolder, filled as runs are looked up

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

    def submit_run(self, experiment, config, tags=None, run_id=None, parent_id=None, arguments=(), properties=None):
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
        return self._start(experiment, record, tags, config.source_directory, RUNNER, properties)

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
            how = processes.how_it_ended(runner.returncode)
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

    def wait_for_end(self, runs, seconds):
        """Wait `seconds`, or less: until the runner of one of RunFolders `runs` that this process started exits."""
        runners = [self._runners[run.run_id] for run in runs if run.run_id in self._runners]
        processes.wait_for_any(runners, seconds)

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
            self.wait_for_end([run], POLL_SECONDS)


def tag_values(tags, what):
    """`tags` (or properties), a dict, as Azure stores them: names are non-empty strings, values strings or
    None (any other value becomes its str(), as the SDK's _sanitize_tags sends it: a NumPy number, a list)."""
    if not isinstance(tags, dict):
        raise UserErrorException(f"{what} must be a dict, not {type(tags).__name__}")
    stored = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key:
            raise UserErrorException(f"A name of {what} is a non-empty string, not {key!r}")
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
