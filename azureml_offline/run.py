"""The offline stand-in for azureml.core.Run: one run, read by the notebook and written by its script.

Its folder (state.layout.RunFolder, found through the workspace's Backend) holds what was submitted, the status
that the runner writes, the metrics and tags that the script and the notebook append, the snapshot the script runs
in, and the run's files.
"""

import json
import os
import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from types import GeneratorType

from azureml.core.run import Run as SdkRun
from azureml.exceptions import (
    ActivityFailedException,
    ExperimentExecutionException,
    UserErrorException,
    WebserviceException,
)

from . import model
from .backend import backend_of
from .state import files
from .state.layout import TERMINAL_STATES, metric_values  # noqa: F401 (metric_values: importable from here)

POLL_SECONDS = 0.5


class Run:
    """A run of an offline experiment."""

    def __init__(self, experiment, run_id):
        self._backend = backend_of(experiment)
        folder = self._backend.run(experiment.name, run_id)
        if folder is None:
            raise UserErrorException(f"No run {run_id!r} in offline experiment {experiment.name!r}")
        self._experiment = experiment
        self._folder = folder
        self._id = folder.run_id

    @classmethod
    def get_context(cls, allow_offline=True, used_for_context_manager=False, **kwargs):
        """What the SDK returns: in an offline run's script (and what it starts), that run, as the runner's
        sitecustomize binds the SDK's Run.get_context there; elsewhere the SDK's own offline run."""
        return SdkRun.get_context(allow_offline, used_for_context_manager, **kwargs)

    @property
    def id(self):
        return self._id

    @property
    def number(self):
        return self._folder.number

    @property
    def experiment(self):
        return self._experiment

    @property
    def type(self):
        """The run's type, as the SDK names it: "azureml.scriptrun", or "hyperdrive" for a sweep's parent."""
        return self._folder.definition().get("runType", "azureml.scriptrun")

    @property
    def parent(self):
        """The run this one is a child of (e.g. a sweep's), or None."""
        parent_id = self._folder.definition().get("parentRunId")
        return None if parent_id is None else Run(self._experiment, parent_id)

    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None, _rehydrate_runs=True):
        """A generator of this run's child runs (and theirs, if recursive), oldest first; with `status`, those in
        that status; with `tags`, a tag name or {name: value}, those tagged so."""
        if properties is not None or type is not None:
            raise UserErrorException("Offline runs record no properties or run type to select children by")
        for folder in self._backend.children(self._experiment.name, self._id):
            child = Run(self._experiment, folder.run_id)
            if tags is None:
                tagged = True
            else:
                child_tags = child.get_tags()
                tagged = tags in child_tags if isinstance(tags, str) else tags.items() <= child_tags.items()
            if tagged and (status is None or child.get_status() == status):
                yield child
            if recursive:
                yield from child.get_children(True, tags, None, None, status)

    @property
    def status(self):
        return self.get_status()

    def get_status(self):
        return self._backend.reconcile_status(self._folder)["status"]

    def get_details(self):
        """The SDK's details dict; logFiles maps each log's name to itself (read it with download_file)."""
        submitted = self._folder.definition()
        status = self._backend.reconcile_status(self._folder)
        details = {"runId": self._id, "target": submitted["target"], "status": status["status"]}
        details.update({key: status[key] for key in ("startTimeUtc", "endTimeUtc", "error") if key in status})
        details.update(
            {
                "properties": self.get_properties(),
                "inputDatasets": [],
                "outputDatasets": [],
                "runDefinition": submitted["runDefinition"],
                "logFiles": {name: name for name in self._log_names()},
            }
        )
        return details

    def _log_names(self):
        """The run's logs, the one that show_output streams last (RunDetails shows the last one's tail)."""
        streamed = self._folder.main_log().relative_to(self._folder.files).as_posix()
        return sorted(
            (name for name in self.get_file_names() if name.startswith(("logs/", "azureml-logs/"))),
            key=lambda name: name == streamed,
        )

    def get_details_with_logs(self):
        """get_details(), with each log's text in logFiles."""
        details = self.get_details()
        details["logFiles"] = {
            name: self._folder.file(name).read_text(errors="replace") for name in details["logFiles"]
        }
        return details

    def wait_for_completion(self, show_output=False, wait_post_processing=False, raise_on_error=True):
        """Wait until the run ends and return its details; show_output streams the log meanwhile.

        Offline there is no post-processing: the runner moves ./outputs into the run before it ends the run.
        """
        try:
            status = self._wait(sys.stdout if show_output else None)
        except KeyboardInterrupt:
            raise ExperimentExecutionException(
                "The output streaming for the run interrupted.\nBut the run is still executing on the compute "
                "target. \nCall run.cancel() to stop it."
            ) from None
        details = self.get_details()
        if show_output:
            print(f"\nExecution Summary\n=================\nRunId: {self._id}\nStatus: {status}\n")
        if status == "Failed" and raise_on_error:
            raise ActivityFailedException(error_details=json.dumps(details["error"], indent=4))
        return details

    def _wait(self, out):
        """Poll until a terminal status, writing the log's new lines to `out` (if any); return the status."""
        if out:
            log = self._folder.main_log().relative_to(self._folder.files).as_posix()
            out.write(
                f"RunId: {self._id}\nWeb View: none, this is an offline run\n\n"
                f"Streaming {log}\n{'=' * (len(log) + 10)}\n\n"
            )
        printed = 0
        while True:
            status = self.get_status()  # before reading the log, so the last pass reads all of it
            if out:
                printed = self._write_log(out, printed, whole=status in TERMINAL_STATES)
            if status in TERMINAL_STATES:
                return status
            time.sleep(POLL_SECONDS)

    def _write_log(self, out, start, whole):
        """Write the log from byte `start` to its last complete line (or its end, if whole); return the new start."""
        try:
            with open(self._folder.main_log(), "rb") as log:
                log.seek(start)
                text = log.read()
        except FileNotFoundError:
            return start
        if not whole:
            text = text[: text.rfind(b"\n") + 1]
        out.write(text.decode(errors="replace"))
        out.flush()
        return start + len(text)

    def cancel(self):
        """Stop the run's script (its whole process group) and wait until the run is Canceled."""
        self._backend.cancel_run(self._folder)

    def log(self, name, value, description="", step=None):
        """Record one value of metric `name` (at `step`, if given: recorded, get_metrics lists the values in order)."""
        if isinstance(value, (list, range, GeneratorType)):
            raise UserErrorException("run.log does not support list type. Use run.log_list instead")
        record = {"name": metric_name(name), "value": value, "description": description}
        if step is not None:
            record["step"] = step
        self._folder.append_metric(record)

    def log_list(self, name, value, description=""):
        """Record a list of values of metric `name`."""
        if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
            raise UserErrorException(f"run.log_list takes a list of values, not {type(value).__name__}")
        self._folder.append_metric({"name": metric_name(name), "values": list(value), "description": description})

    def log_row(self, name, description=None, **kwargs):
        """Record one row (column=value, ...) of table metric `name`."""
        self._folder.append_metric({"name": metric_name(name), "row": kwargs, "description": description})

    def get_metrics(self, name=None):
        """Metrics in the SDK's shapes: logged once -> the value, more often -> the list; a table -> columns."""
        values, rows = {}, {}
        for record in self._folder.metrics():
            if "row" in record:
                rows.setdefault(record["name"], []).append(record["row"])
            else:
                values.setdefault(record["name"], []).extend(record.get("values", [record.get("value")]))
        metrics = {key: value[0] if len(value) == 1 else value for key, value in values.items()}
        for key, table in rows.items():
            metrics[key] = (
                table[0] if len(table) == 1 else {column: [row.get(column) for row in table] for column in table[0]}
            )
        return {key: value for key, value in metrics.items() if name in (None, key)}

    def tag(self, key, value=None):
        if not isinstance(key, str) or not key:
            raise UserErrorException(f"A tag's key is a non-empty string, not {key!r}")
        self._folder.append_tag(key, value)

    def get_tags(self):
        return self._folder.tags()

    @property
    def tags(self):
        return self.get_tags()

    def add_properties(self, properties):
        """Add properties ({name: value}); as on Azure, a property that is set keeps its first value."""
        if not isinstance(properties, dict):
            raise UserErrorException(f"properties must be a dict, not {type(properties).__name__}")
        for key, value in properties.items():
            self._folder.add_property(key, value)

    def get_properties(self):
        return self._folder.properties()

    @property
    def properties(self):
        return self.get_properties()

    def get_file_names(self):
        return self._folder.file_names()

    def upload_file(self, name, path_or_stream):
        """Store a local file (or a binary stream) as the run's file `name`."""
        target = self._folder.file(name)
        try:
            if isinstance(path_or_stream, (str, os.PathLike)):
                data = Path(path_or_stream).read_bytes()
            elif hasattr(path_or_stream, "read"):
                data = path_or_stream.read()
            else:
                raise UserErrorException(f"upload_file takes a file path or a binary stream, not {path_or_stream!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as error:
            raise UserErrorException(f"Cannot upload {path_or_stream!r} as {name!r}: {error}") from None

    def download_file(self, name, output_file_path=None):
        """Copy the run's file `name` to output_file_path (a file, or a folder to put it in; default: here),
        creating its folders as the SDK does."""
        source = self._folder.file(name)
        if not source.is_file():
            raise UserErrorException(f"Run {self._id} has no file {name!r}; it has {self.get_file_names()}")
        target = Path(output_file_path or source.name)
        if target.is_dir():
            target = target / source.name
        copy_out(source, target)

    def download_files(self, prefix=None, output_directory=None, *, append_prefix=True):
        """Copy the run's files whose names start with prefix into output_directory (default: here)."""
        output_directory = Path(output_directory or ".")
        for name in self.get_file_names():
            if name.startswith(prefix or ""):
                relative = name if append_prefix else name[len(prefix or "") :].lstrip("/")
                copy_out(self._folder.file(name), files.inside(output_directory, relative))

    def register_model(
        self,
        model_name,
        model_path=None,
        tags=None,
        properties=None,
        model_framework=None,
        model_framework_version=None,
        description=None,
    ):
        """Register the run's file or folder model_path (e.g. 'outputs/model.npz') as the next version of model_name."""
        names = self.get_file_names()
        if not isinstance(model_path, str) or (
            model_path not in names and not any(name.startswith(model_path.rstrip("/") + "/") for name in names)
        ):
            raise WebserviceException(
                f'Error, provided model path "{model_path}" cannot be found among the run\'s files: {names}'
            )
        return model.register_version(
            self._experiment.workspace,
            self._folder.file(model_path),
            model_name,
            tags,
            properties,
            description,
            model_framework,
            model_framework_version,
            run=self,
        )

    def complete(self):
        """Offline the runner marks the run Completed when its script exits; a script's own call changes nothing."""

    def __repr__(self):
        return (
            f"Run(Experiment: {self._experiment.name},\nId: {self._id},\nType: offline,\nStatus: {self.get_status()})"
        )


def metric_name(name):
    if not isinstance(name, str) or not name:
        raise UserErrorException(f"A metric's name is a non-empty string, not {name!r}")
    return name


def copy_out(source, target):
    """Copy a run's file to `target`, creating its folders; an OSError (e.g. a file in the way) is the user's."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    except OSError as error:
        raise UserErrorException(f"Cannot download to {target}: {error}") from None
