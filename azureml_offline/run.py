"""The offline stand-in for azureml.core.Run: one run, read by the notebook and written by its script.

Its folder (state.layout.RunFolder, found through the workspace's Backend) holds what was submitted, the status
that the runner (or, for an interactive run, this process) writes, the metrics and tags that the script and the
notebook append, the snapshot, and the run's files.

    run = experiment.start_logging()        # an interactive run, Running at once (start_logging below)
    with experiment.start_logging() as run: # ... completed at the end of the block, or failed if it raises
"""

import io
import json
import logging
import os
import posixpath
import shutil
import sys
from pathlib import Path

from azureml._base_sdk_common.tracking import global_tracking_info_registry
from azureml._history.utils.constants import LOGS_DIR, OUTPUTS_DIR, USER_LOG_FILE
from azureml._history.utils.context_managers import RedirectUserOutputStreams
from azureml._logging import ChainedIdentity
from azureml._restclient.models import RunDto
from azureml._run_impl.run_history_facade import RunHistoryFacade
from azureml.core._docs import get_docs_url
from azureml.core.run import Run as SdkRun
from azureml.exceptions import (
    ActivityFailedException,
    ExperimentExecutionException,
    ModelPathNotFoundException,
    SnapshotException,
    UserErrorException,
)

from . import metrics, model
from .azure_only import needs_azure
from .backend import SNAPSHOT_ID, backend_of
from .environment import from_definition
from .state import files
from .state.layout import TERMINAL_STATES, metric_values  # noqa: F401 (metric_values: importable from here)

POLL_SECONDS = 0.5
MAX_CHILDREN = 100  # create_children's limit, the SDK's
USER_LOG = posixpath.normpath(posixpath.join(LOGS_DIR, USER_LOG_FILE))  # a `with run:` block's output, the SDK's
_type_providers = {}  # run type -> factory(experiment, RunDto) -> Run, as Run.add_type_provider registers them
logger = logging.getLogger(__name__)


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
        self._status = None  # read when first asked for, then kept: see `status`

    @classmethod
    def get_context(cls, allow_offline=True, used_for_context_manager=False, **kwargs):
        """What the SDK returns: in an offline run's script (and what it starts), that run, as the runner's
        sitecustomize binds the SDK's Run.get_context there; elsewhere the SDK's own offline run."""
        return SdkRun.get_context(allow_offline, used_for_context_manager, **kwargs)

    @classmethod
    def get_submitted_run(cls, **kwargs):
        """Deprecated in the SDK: get_context(allow_offline=False)."""
        logger.warning("Run.get_submitted_run() is deprecated, use Run.get_context() instead")
        return cls.get_context(allow_offline=False, **kwargs)

    @staticmethod
    def add_type_provider(runtype, run_factory):
        """Register run_factory(experiment, RunDto) -> Run for the runs of type `runtype` that get, list and
        get_children return (the SDK's extensibility hook; offline sweeps register HyperDriveRun this way)."""
        if runtype in _type_providers:
            raise ValueError(f"RunType {runtype} already has a factory, can't add another")
        _type_providers[runtype] = run_factory

    @staticmethod
    def get(workspace, run_id):
        """The run `run_id` of the workspace, whichever its experiment."""
        found = backend_of(workspace).find_run(run_id)
        if found is None:
            raise UserErrorException(f"No run {run_id!r} in the offline workspace")
        name, folder = found
        return rehydrate(workspace.experiments[name], folder)

    @staticmethod
    def list(
        experiment, type=None, tags=None, properties=None, status=None, include_children=False, _rehydrate_runs=True
    ):
        """A generator of the experiment's runs that match the filters, newest first (children only with
        include_children); `tags` and `properties` select by a name, or by {name: value} pairs."""
        backend = backend_of(experiment)
        runs = backend.select_runs(backend.runs(experiment.name), type, tags, properties, status, include_children)
        return (rehydrate(experiment, folder, _rehydrate_runs) for folder in runs)

    @staticmethod
    def list_by_compute(compute, type=None, tags=None, properties=None, status=None):
        """A generator of the RunDtos (as the SDK's) of the runs on compute target `compute` that match the filters;
        `status` is "Running" or "Queued", as the SDK allows."""
        if status not in (None, "Running", "Queued"):
            raise UserErrorException(f"list_by_compute selects runs by status Running or Queued, not {status!r}")
        backend = backend_of(compute.workspace)
        runs = [folder for _, folder in backend.all_runs() if folder.definition()["target"] == compute.name]
        return (run_dto(backend, folder) for folder in backend.select_runs(runs, type, tags, properties, status))

    def submit_child(self, config, tags=None, **kwargs):
        """Submit `config` (a ScriptRunConfig, an estimator) as a child of this run: its Run."""
        return self._experiment.submit(config, tags=tags, _parent_run_id=self._id, **kwargs)

    @property
    def id(self):
        return self._id

    @property
    def name(self):
        """The run's name (deprecated in the SDK for display_name): an interactive run's, else None."""
        return self._folder.definition().get("name")

    @property
    def display_name(self):
        return self._backend.run_display(self._folder)["displayName"]

    @display_name.setter
    def display_name(self, display_name):
        self._backend.set_run_display(self._folder, displayName=display_name)

    @property
    def description(self):
        return self._backend.run_display(self._folder)["description"]

    @description.setter
    def description(self, description):
        self._backend.set_run_display(self._folder, description=description)

    @property
    def number(self):
        return self._folder.number

    @property
    def experiment(self):
        return self._experiment

    @property
    def type(self):
        """The run's type, as the SDK names it: "azureml.scriptrun", "hyperdrive" for a sweep's parent, None for
        an interactive run."""
        return self._folder.run_type

    @property
    def identity(self):
        """The SDK's logging identity of the run."""
        return f"{type(self).__name__}{ChainedIdentity.DELIM}{self._id}"

    @property
    def parent(self):
        """The run this one is a child of (e.g. a sweep's), or None."""
        parent_id = self._folder.definition().get("parentRunId")
        return (
            None
            if parent_id is None
            else rehydrate(self._experiment, self._backend.run(self._experiment.name, parent_id))
        )

    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None, _rehydrate_runs=True):
        """A generator of this run's child runs (and theirs, if recursive), oldest first, that match the filters,
        as Run.list's."""
        children = self._backend.children(self._experiment.name, self._id)
        for folder in children:
            if self._backend.select_runs([folder], type, tags, properties, status):
                yield rehydrate(self._experiment, folder, _rehydrate_runs)
            if recursive:
                yield from Run(self._experiment, folder.run_id).get_children(
                    True, tags, properties, type, status, _rehydrate_runs
                )

    @property
    def status(self):
        """The status as last read (first asked for, or by get_status, get_details or wait_for_completion): the
        SDK's is its cached run record's, so a loop on `run.status` never ends on Azure either."""
        if self._status is None:
            self._read_status()
        return self._status

    def get_status(self):
        if self._status not in TERMINAL_STATES:
            self._read_status()
        return self._status

    def _read_status(self):
        """The run's reconciled status record; its status is kept for `status`, as the SDK keeps its run record's."""
        record = self._backend.reconcile_status(self._folder)
        self._status = record["status"]
        return record

    def get_detailed_status(self):
        """The status, with the SDK's queueing details (none offline: runs wait for no cluster)."""
        return {"status": self.get_status(), "details": None}

    def get_details(self):
        """The SDK's details dict; logFiles maps each log's name to itself (read it with download_file)."""
        submitted = self._folder.definition()
        status = self._read_status()
        details = {"runId": self._id, "target": submitted["target"], "status": status["status"]}
        details.update({key: status[key] for key in ("startTimeUtc", "endTimeUtc", "error") if key in status})
        details.update(
            {
                "properties": self.get_properties(),
                "inputDatasets": [],
                "outputDatasets": [],
                "runDefinition": submitted["runDefinition"],
                "logFiles": {name: name for name in self._log_names()},
                # The SDK adds the submitter's name from the service's record, or None without one: offline none.
                "submittedBy": None,
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
            self._backend.wait_for_end([self._folder], POLL_SECONDS)

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

    def get_all_logs(self, destination=None):
        """Write the run's logs into `destination` (default: assets/<run id> here, as the SDK's); their paths."""
        if destination and os.path.exists(destination) and not os.path.isdir(destination):
            raise UserErrorException(f"{destination} exists and is not a directory.")
        destination = destination or os.path.join("assets", self._id)
        written = []
        for name, text in self.get_details_with_logs()["logFiles"].items():
            target = files.inside(destination, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            written.append(os.path.join(destination, name))
        return written

    def get_environment(self):
        """The Environment the run was submitted with (offline it was not built)."""
        environment = self.get_details()["runDefinition"].get("environment")
        if not environment:
            raise UserErrorException("There is no run definition or environment specified for the run.")
        return from_definition(environment)

    def start(self):
        """Mark the run started: offline an interactive run is Running from its creation and a submitted run's
        runner starts it, so there is nothing left to do."""

    def complete(self, _set_status=True):
        """Mark an interactive run Completed, its outputs folder copied into its files. A submitted run's runner
        records how its script ended, so complete() leaves it as it is."""
        if _set_status:
            self._backend.complete_run(self._folder)

    def fail(self, error_details=None, error_code=None, _set_status=True):
        """Mark the run Failed with error_details (a message or an exception) and error_code, as the SDK records
        them; a submitted run's script is stopped first."""
        error = {"error": RunHistoryFacade._error_details_to_dictionary(error_details, error_code)}
        if _set_status:
            self._backend.fail_run(self._folder, error)

    def cancel(self):
        """Cancel the run: a submitted run's script (its whole process group) is stopped, and this waits until
        the run is Canceled."""
        self._backend.cancel_run(self._folder)

    def flush(self, timeout_seconds=300):
        """Offline every metric is written when it is logged: nothing waits to be sent."""

    def clean(self):
        """Offline a run leaves no working files on the target (its snapshot is its record): none to remove."""
        return []

    def __enter__(self):
        """The block's output also goes into the run's logs/user_log.txt, through the SDK's own
        RedirectUserOutputStreams, as its RunContextManager does (Azure then uploads ./logs/user_log.txt)."""
        self._user_output = RedirectUserOutputStreams(logger, str(self._folder.file(USER_LOG)))
        self._user_output.__enter__()
        return self

    def __exit__(self, exit_type, value, traceback):
        self._user_output.__exit__(exit_type, value, traceback)
        return self._end_block(exit_type, value)

    def _end_block(self, exit_type, value):
        """Complete the run at the end of the block, or fail it with the exception the block raised (which goes
        on); sys.exit() with no error completes it (and stops there, as in the SDK)."""
        exits_cleanly = exit_type is SystemExit and value.code in (None, 0)
        if exit_type is None or exits_cleanly:
            self.complete()
        else:
            self.fail(error_details=value)
        return exits_cleanly

    def child_run(self, name=None, run_id=None, outputs=None):
        """Start a child run of this one, Running at once, that this process completes; `outputs`: a folder whose
        files the child gets when it ends."""
        folder = self._backend.start_run(
            self._experiment.name,
            run_id=run_id,
            name=RunHistoryFacade.chain_names(self.name, name),
            parent=self._folder,
            outputs=outputs,
        )
        return Run(self._experiment, folder.run_id)

    def create_children(self, count=None, tag_key=None, tag_values=None):
        """Start `count` child runs (tagged azureml.batch_child_number 0, 1, ...), or one per value of tag_values
        (tagged tag_key=value), as the SDK does; the children, Running."""
        if tag_key is None and tag_values is None and count is None:
            raise UserErrorException("Either count or tag_key and tag_values must be set")
        if tag_key is not None or tag_values is not None:
            if tag_key is None:
                raise UserErrorException("tag_key must not be null when tag_values is set")
            if tag_values is None:
                raise UserErrorException("tag_values must not be null when tag_key is set")
            if count is not None:
                raise UserErrorException("count can not be set when tag_key and tag_values are set")
        if count is not None:
            tag_key, tag_values = "azureml.batch_child_number", range(count)
        if len(tag_values) > MAX_CHILDREN:
            raise UserErrorException(f"create_children can not create more than {MAX_CHILDREN} runs")
        return [
            Run(
                self._experiment,
                self._backend.start_run(self._experiment.name, parent=self._folder, tags={tag_key: value}).run_id,
            )
            for value in tag_values
        ]

    # Metrics: metrics.py says what each log_* kind records and how get_metrics gives it back

    def log(self, name, value, description="", step=None):
        """Record one value of metric `name` (at `step`, if given: kept, though get_metrics lists values in order)."""
        self._folder.append_metric(metrics.scalar(name, value, description, step))

    def log_list(self, name, value, description=""):
        """Record a list of values of metric `name`."""
        self._folder.append_metric(metrics.values(name, value, description))

    def log_row(self, name, description=None, **kwargs):
        """Record one row (column=value, ...) of table metric `name`."""
        self._folder.append_metric(metrics.row(name, kwargs, description))

    def log_table(self, name, value, description=""):
        """Record table metric `name`: value is {column: [values]}, its columns of one length."""
        self._folder.append_metric(metrics.table(name, value, description))

    def log_image(self, name, path=None, plot=None, description=""):
        """Record an image (an image file's path, or a matplotlib figure): it becomes a file of the run."""
        self._folder.append_metric(*metrics.image(name, path, plot, description))

    def log_confusion_matrix(self, name, value, description=""):
        """Record a confusion matrix (a dict or JSON text, in the SDK's schema): a file of the run named `name`."""
        self._folder.append_metric(*metrics.json_metric("confusion_matrix", name, value, description))

    def log_accuracy_table(self, name, value, description=""):
        """Record an accuracy table (a dict or JSON text, in the SDK's schema): a file of the run named `name`."""
        self._folder.append_metric(*metrics.json_metric("accuracy_table", name, value, description))

    def log_residuals(self, name, value, description=""):
        """Record residuals (a dict or JSON text, in the SDK's schema): a file of the run named `name`."""
        self._folder.append_metric(*metrics.json_metric("residuals", name, value, description))

    def log_predictions(self, name, value, description=""):
        """Record predictions (a dict or JSON text, in the SDK's schema): a file of the run named `name`."""
        self._folder.append_metric(*metrics.json_metric("predictions", name, value, description))

    def get_metrics(self, name=None, recursive=False, run_type=None, populate=False):
        """The metrics in the SDK's shapes (see metrics.py); recursive: {run id: metrics} of this run and its
        descendants (those of type run_type) that logged any."""
        if not recursive:
            return metrics.get_metrics(self._folder, self._id, name, populate)
        runs = [*self.get_children(recursive=True, type=run_type, _rehydrate_runs=False), self]
        logged = {run.id: metrics.get_metrics(run._folder, run.id, name, populate) for run in runs}
        return {run_id: values for run_id, values in logged.items() if values}

    def tag(self, key, value=None):
        self.set_tags({key: value})

    def set_tags(self, tags):
        """Add or change tags ({name: value}); values are kept as strings, as on Azure."""
        self._backend.set_run_tags(self._folder, tags)

    def remove_tags(self, tags):
        """Remove the tags named in the list `tags`."""
        self._backend.remove_run_tags(self._folder, tags)

    def get_tags(self):
        return self._folder.tags()

    @property
    def tags(self):
        return self.get_tags()

    def add_properties(self, properties):
        """Add properties ({name: value}); as on Azure, one that is set cannot be changed (ServiceException)."""
        if properties:  # an empty dict is a no-op, as in the SDK
            self._backend.add_run_properties(self._folder, properties)

    def get_properties(self):
        return self._folder.properties()

    @property
    def properties(self):
        return self.get_properties()

    def get_file_names(self):
        return self._folder.file_names()

    def upload_file(self, name, path_or_stream, datastore_name=None):
        """Store a local file or a stream as the run's file `name`, as the SDK's ArtifactsClient.upload_artifact
        takes them: a path as a str (a missing file is its FileNotFoundError) or an io stream, nothing else."""
        if isinstance(path_or_stream, str):
            with open(path_or_stream, "rb") as f:
                data = f.read()
        elif isinstance(path_or_stream, io.IOBase):
            data = path_or_stream.read()
            data = data.encode() if isinstance(data, str) else data
        else:
            raise UserErrorException(
                f"UnsupportedType: type {type(path_or_stream)} is invalid, supported input types: file path or file"
            )
        target = self._folder.file(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as error:
            raise UserErrorException(f"Cannot upload {path_or_stream!r} as {name!r}: {error}") from None

    def upload_files(self, names, paths, return_artifacts=False, timeout_seconds=None, datastore_name=None):
        """Store each local file of `paths` as the run's file of the same place in `names`."""
        if len(names) != len(paths):
            raise TypeError(
                "names and paths must be lists of equal lengths. "
                f"Names was of length {len(names)} and paths of length {len(paths)}."
            )
        for name, path in zip(names, paths, strict=True):
            self.upload_file(name, path)

    def upload_folder(self, name, path, datastore_name=None):
        """Store the files of the local folder `path` as the run's files name/...; links are not followed out of
        the folder (what they lead to is not the run's)."""
        if not os.path.isdir(path):
            raise UserErrorException(f"upload_folder takes a folder, and {path!r} is not one")
        self._folder.copy_in(path, name)

    def take_snapshot(self, file_or_folder_path):
        """Snapshot a file or folder as the run's (for an interactive run that has none); the snapshot's id."""
        return self._backend.take_snapshot(self._folder, file_or_folder_path)

    def restore_snapshot(self, snapshot_id=None, path=None):
        """Write the snapshot (default: this run's) as <path>/<snapshot id>.zip (path: the temporary folder by
        default); the zip's path, as the SDK returns it."""
        snapshot_id = snapshot_id or self.get_snapshot_id()
        if snapshot_id is None:
            raise SnapshotException(f"Run {self._id} has no snapshot (it was started with snapshot_directory=None)")
        return self._backend.restore_snapshot(snapshot_id, path)

    def get_snapshot_id(self):
        return self.get_properties().get(SNAPSHOT_ID)

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

    def download_files(
        self,
        prefix=None,
        output_directory=None,
        output_paths=None,
        batch_size=100,
        append_prefix=True,
        timeout_seconds=None,
    ):
        """Copy the run's files in the folder `prefix` (all, without one) to output_paths, one per file (else their
        names), under output_directory if given; as the SDK's download_artifacts_from_prefix, append_prefix=False
        takes the prefix off the names only then."""
        prefix = (prefix or "").replace("\\", "/")
        prefix += "/" if prefix and not prefix.endswith("/") else ""
        names = [name for name in self.get_file_names() if name.startswith(prefix)]
        targets = names if output_paths is None else list(output_paths)
        if len(targets) != len(names) or len(set(targets)) != len(targets):
            logger.warning("output_paths is not one distinct path for each file; downloading to the files' names")
            targets = names
        if output_directory is not None:
            if not append_prefix and output_paths is None:
                targets = [target.replace(prefix, "", 1) for target in targets]
            targets = [os.path.join(output_directory, target) for target in targets]
        for name, target in zip(names, targets, strict=True):
            copy_out(self._folder.file(name), Path(target))

    def register_model(
        self,
        model_name,
        model_path=None,
        tags=None,
        properties=None,
        model_framework=None,
        model_framework_version=None,
        description=None,
        datasets=None,
        sample_input_dataset=None,
        sample_output_dataset=None,
        resource_configuration=None,
    ):
        """Register the run's file or folder model_path (e.g. 'outputs/model.npz') as the next version of model_name."""
        model.validate_name(model_name)  # first, as the SDK's
        model.refuse_data_sets("Run.register_model", datasets, sample_input_dataset, sample_output_dataset)
        # As the SDK's RunHistoryFacade.register_model: model_name is the path if none is given, and the path is
        # normalised ('./outputs/model.pkl' is 'outputs/model.pkl').
        model_path = os.path.normpath(model_name if model_path is None else model_path).replace(os.sep, "/")
        names = self.get_file_names()
        if model_path not in names and not any(name.startswith(model_path + "/") for name in names):
            raise ModelPathNotFoundException(
                f"Could not locate the provided model_path {model_path} in the set of files uploaded to the run: "
                f"{names}\nSee https://aka.ms/run-logging for more details."
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
            resource_configuration=resource_configuration,
        )

    @classmethod
    def get_docs_url(cls):
        return get_docs_url(SdkRun)

    get_portal_url = needs_azure(SdkRun, "get_portal_url", "a run has no portal page: RunDetails(run).show() shows it")
    portal_url = needs_azure(SdkRun, "portal_url", "a run has no portal page: RunDetails(run).show() shows it")
    get_secret = needs_azure(SdkRun, "get_secret", "there is no Key Vault: read secrets from environment variables")
    get_secrets = needs_azure(SdkRun, "get_secrets", "there is no Key Vault: read secrets from environment variables")

    def __repr__(self):
        return (
            f"Run(Experiment: {self._experiment.name},\nId: {self._id},\nType: offline,\nStatus: {self.get_status()})"
        )


class SubmittedRun(Run):
    """The run of the script this process belongs to, as Run.get_context() returns it there: as the SDK's
    _SubmittedRun, its script neither completes, fails nor cancels it (the runner records how the script ends)."""

    def complete(self):
        super().complete(_set_status=False)

    def fail(self, error_details=None, error_code=None):
        super().fail(error_details=error_details, error_code=error_code, _set_status=False)

    def cancel(self):
        logger.warning("cancel is not supported for submitted runs.")

    def _end_block(self, exit_type, value):
        self.complete()


def start_logging(experiment, name=None, run_id=None, outputs=None, snapshot_directory=".", **kwargs):
    """Experiment.start_logging(): an interactive run of `experiment`, Running at once, as the SDK's
    Run._start_logging: `outputs` (default ./outputs; False: none) is copied into the run's files when it ends;
    `snapshot_directory` (default: the current folder; None: no snapshot) is snapshotted now. `kwargs`: tags,
    display_name, description."""
    if outputs is True:
        outputs = OUTPUTS_DIR
    elif outputs is False:
        outputs = None
    else:
        outputs = outputs or OUTPUTS_DIR
    try:
        folder = backend_of(experiment).start_run(
            experiment.name,
            run_id=run_id,
            name=name,
            outputs=outputs,
            snapshot=snapshot_directory,
            properties=global_tracking_info_registry.gather_all(snapshot_directory),
            **kwargs,
        )
    except SnapshotException as error:
        raise SnapshotException(
            f"Failed to take a snapshot of {snapshot_directory}. Pass snapshot_directory=None to start_logging "
            "to skip taking a snapshot of the given directory."
        ) from error
    return Run(experiment, folder.run_id)


def rehydrate(experiment, folder, by_type=True):
    """The Run of RunFolder `folder`: made by the factory that add_type_provider registered for its type, if
    any (a sweep's HyperDriveRun), as the SDK rehydrates the runs it lists; a plain Run if not `by_type`."""
    factory = _type_providers.get(folder.run_type) if by_type else None
    return (
        Run(experiment, folder.run_id)
        if factory is None
        else factory(experiment, run_dto(backend_of(experiment), folder))
    )


def run_dto(backend, folder):
    """The SDK's RunDto of RunFolder `folder` of Backend `backend`."""
    submitted = folder.definition()
    display = backend.run_display(folder)
    return RunDto(
        run_id=folder.run_id,
        run_number=folder.number,
        experiment_id=backend.experiment_id(folder.experiment),
        parent_run_id=submitted.get("parentRunId"),
        run_type=folder.run_type,
        status=backend.reconcile_status(folder)["status"],
        target=submitted["target"],
        name=submitted.get("name"),
        display_name=display["displayName"],
        description=display["description"],
        properties=folder.properties(),
        tags=folder.tags(),
    )


def copy_out(source, target):
    """Copy a run's file to `target`, creating its folders; an OSError (e.g. a file in the way) is the user's."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    except OSError as error:
        raise UserErrorException(f"Cannot download to {target}: {error}") from None
