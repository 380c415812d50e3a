"""The offline workspace's folder: the one place that knows its layout, how each file is written and read.

    <workspace>/                         $AZUREML_OFFLINE_DIR, else ./.azureml-offline
      workspace.json                     marks the folder as a workspace
      .staging/<random>/                 runs and model versions being filled (locked while in use)
      computes/<name>.json               a compute target's provisioning configuration
      experiments/<name>/                an experiment: experiment.json (its tags and archivedTime, once set)
      experiments/<name>/runs/<n>/       run number n of the experiment:
        run.json                           what was submitted: runId, parentRunId, target, runDefinition
                                           (a sweep's parent: runType "hyperdrive" and its settings); an
                                           interactive run (start_logging, child_run): name, runType null,
                                           owner (pid and start time of the process that ends it), outputs
                                           (the folder copied into files/ when it ends, and its name there)
        status.json                        status, start and end times, error
        display.json                       displayName and description, once set
        runner.lock                        locked (flock) for as long as the run's runner lives
        runner.reserve                     disk space the runner holds until it records the run's end
        cancel                             a cancel request, for the runner
        runner.log                         the runner's own stderr
        metrics.jsonl                      one record per call of log_* (azureml_offline/metrics.py): its name,
                                           description and one of value (with its step, if any), values, row,
                                           rows, or file (an image's or JSON metric's file among files/, and type)
        tags.jsonl                         appended records: {name: value} sets a tag (a string or null),
                                           {"removed": [names]} (a list, never a tag's value) removes tags
        properties.jsonl                   appended records, {name: value}; a property keeps its first value
        snapshot/                          the copy of source_directory that the script runs in, with an
                                           empty outputs/ made for it (an interactive run's
                                           snapshot_directory, or take_snapshot's file)
        files/                             the run's files: logs/std_log.txt (for an MPI job, each rank's
                                           logs/std_log_process_<rank>.txt and mpiexec's logs/mpi_log.txt),
                                           outputs/ once the script ends; a sweep's parent:
                                           azureml-logs/hyperdrive.txt, its driver's log
      models/<name>/<version>/           model.json (rewritten by tag and property updates, under the
                                         version's lock) and files/<the registered file or folder>
      environments/<name>/<version>.json a registered environment: the SDK's serialized Environment, its
                                         labels and when it was registered
      services/<name>/                   a web service (ServiceFolder): service.json (what was deployed),
                                           keys.json, server.json (pid, start time, port), ready,
                                           app/ (source directory, azureml-models/<name>/<version>/), logs/

The backend (backend/) and the engine's processes call WorkspaceFolder, RunFolder and ServiceFolder and
never build a path themselves. Names arrive here already checked against the SDK's rules; plain_name()
still refuses any that would leave its folder. The SDK is imported where it is used, as in files.py: each run's
runner imports this module.
"""

import contextlib
import errno
import fcntl
import functools
import os
import shutil
import uuid
import warnings
import zipfile
from pathlib import Path

from . import files
from .files import user_error

WORKSPACE_DIR_VARIABLE = "AZUREML_OFFLINE_DIR"
TERMINAL_STATES = ("Completed", "Failed", "Canceled")  # a run's statuses that never change again
SCRIPT_RUN_TYPE = "azureml.scriptrun"  # run.json's runType, unless it says otherwise
HYPERDRIVE_RUN_TYPE = "hyperdrive"  # run.json's runType of a sweep's parent, as the SDK's HyperDriveRun.RUN_TYPE
BEST_CHILD_TABLE = "best_child_by_primary_metric"  # a sweep parent's metric table that the SDK reads its best from
RUN_DIR_VARIABLE = "AZUREML_OFFLINE_RUN_DIR"  # set for a run's script (and what it starts): its run folder
RESERVE_BYTES = 1 << 20  # what RunFolder.reserve_space() holds: room for a run's final status and error
LOG = "logs/std_log.txt"  # a run's file with its script's stdout and stderr
MPI_LOG = "logs/mpi_log.txt"  # an MPI job's file with mpiexec's own output
SWEEP_LOG = "azureml-logs/hyperdrive.txt"  # a sweep's file with what its driver did, named as on Azure
REMOVED_TAGS = "removed"  # tags.jsonl's record of removed tags, {"removed": [names]}
# Never snapshotted, whatever .amlignore says: version control, caches, offline workspaces
# (the current one under any name is left out too: see WorkspaceFolder.new_run).
SNAPSHOT_IGNORE = (".git", "__pycache__", ".ipynb_checkpoints", ".azureml-offline")


def workspace_dir():
    """$AZUREML_OFFLINE_DIR, or .azureml-offline in the current directory."""
    return Path(os.environ.get(WORKSPACE_DIR_VARIABLE) or ".azureml-offline").absolute()


def shown(path):
    """How to print a path: relative to the current directory, never absolute (notebooks keep what they print)."""
    path = Path(path).resolve()
    if os.environ.get(WORKSPACE_DIR_VARIABLE) and path == Path(os.environ[WORKSPACE_DIR_VARIABLE]).resolve():
        return f"${WORKSPACE_DIR_VARIABLE}"
    try:
        return path.relative_to(Path.cwd()).as_posix() or "."
    except ValueError:
        return path.name


def plain_name(name, what):
    """`name` if it names an entry of a folder (not a path, not . or ..), else UserErrorException."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
        raise user_error(f"{what} name {name!r} is not a valid name")
    return name


def metric_values(logged):
    """The numeric values of a metric as get_metrics() returns it (a value, or a list), as a list of floats."""
    values = logged if isinstance(logged, list) else [] if logged is None else [logged]
    return [float(value) for value in values if isinstance(value, (int, float)) and not isinstance(value, bool)]


def workspace_named(root):
    """How a message names the workspace folder `root`: by AZUREML_OFFLINE_DIR if that chose it."""
    if os.environ.get(WORKSPACE_DIR_VARIABLE):
        return f"{WORKSPACE_DIR_VARIABLE}={os.environ[WORKSPACE_DIR_VARIABLE]!r}"
    return f"the offline workspace folder {shown(root)!r}"


# What to do when the file system refuses a write: a read-only or unwritable folder, or a full disk.
REFUSED_WRITES = {
    **dict.fromkeys((errno.EACCES, errno.EPERM, errno.EROFS), "it must be a folder this user can write"),
    **dict.fromkeys(
        (errno.ENOSPC, errno.EDQUOT),
        f"free space on its disk, or set {WORKSPACE_DIR_VARIABLE} to a folder on another disk",
    ),
}


def writes(method):
    """A method of a workspace's folder (WorkspaceFolder, RunFolder, ServiceFolder) that writes in it: when the
    file system refuses, one UserErrorException that names the workspace and what to do, not a raw OSError. An
    error on a path outside the folder (a user's file being read) is left as it is."""

    @functools.wraps(method)
    def write(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as error:
            inside = self.root if isinstance(self, WorkspaceFolder) else self.path
            if error.errno not in REFUSED_WRITES or not error.filename or not is_within(error.filename, inside):
                raise
            raise user_error(
                f"{workspace_named(inside)} cannot be written ({error.strerror}: {shown(error.filename)}): "
                f"{REFUSED_WRITES[error.errno]}"
            ) from None

    return write


def is_within(path, folder):
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def run_error(code, message):
    """A run's error as the SDK records it (get_details()["error"]): code "UserError" for the script's own
    failures, "SystemError" for the offline workspace's."""
    return {"error": {"code": code, "message": message}}


def check_snapshot(source, ignore):
    """Refuse, with the SDK's exception and before anything is copied, what the SDK refuses to snapshot: more than
    SNAPSHOT_MAX_FILES files (unless AML_SNAPSHOT_NO_FILE_LIMIT is set, as the SDK allows) or SNAPSHOT_MAX_SIZE_BYTES
    in all, leaving out what `ignore` (copytree's) leaves out; and a link to nothing, which cannot be copied."""
    from azureml._restclient.constants import SNAPSHOT_MAX_FILES, SNAPSHOT_MAX_SIZE_BYTES
    from azureml.exceptions import SnapshotException

    count = size = 0
    for folder, folders, names in os.walk(source):
        ignored = ignore(folder, folders + names)
        folders[:] = [name for name in folders if name not in ignored]
        for name in names:
            path = os.path.join(folder, name)
            if name in ignored:
                continue
            if not os.path.exists(path):
                raise SnapshotException(f"{path} is a link to nothing: remove it, or name it in .amlignore")
            count += 1
            size += os.path.getsize(path)
    snapshot = f"While attempting to take snapshot of {source}\n"
    if count > SNAPSHOT_MAX_FILES and not os.environ.get("AML_SNAPSHOT_NO_FILE_LIMIT"):
        raise SnapshotException(f"{snapshot}Your project exceeds the file limit of {SNAPSHOT_MAX_FILES}.")
    if size > SNAPSHOT_MAX_SIZE_BYTES:
        raise SnapshotException(
            f"{snapshot}Your total snapshot size exceeds the limit of {SNAPSHOT_MAX_SIZE_BYTES / 2**20} MB.\n"
            "Please see http://aka.ms/aml-largefiles on how to work with large files."
        )


class WorkspaceFolder:
    """The workspace folder `root`: its compute targets, experiments and runs, models and services."""

    def __init__(self, root):
        self.root = Path(root)

    @classmethod
    def open(cls, root=None):
        """The workspace in `root` (default: workspace_dir()), created if need be; a clear error if it cannot be.

        Staging folders left by a process killed while filling them are removed here.
        """
        root = Path(root) if root is not None else workspace_dir()
        where = workspace_named(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
            folder = cls(root.resolve(strict=True))
            if not (folder.root / "workspace.json").exists():
                files.write_json(
                    folder.root / "workspace.json", {"name": "offline-workspace", "created": files.utc_now()}
                )
            files.remove_abandoned(folder.root / ".staging")
        except (OSError, RuntimeError) as error:  # RuntimeError: pathlib's symlink loop
            reason = "not a folder" if isinstance(error, FileExistsError) else getattr(error, "strerror", str(error))
            raise user_error(
                f"{where} cannot hold the offline workspace: it must be a folder this user can write ({reason})"
            ) from None
        return folder

    @classmethod
    def of_run(cls, run_dir):
        """(workspace, experiment name, run number) of the run folder `run_dir` (a script's RUN_DIR_VARIABLE)."""
        run_dir = Path(run_dir)  # <workspace>/experiments/<name>/runs/<number>
        return cls(run_dir.parents[3]), run_dir.parents[1].name, int(run_dir.name)

    def __eq__(self, other):
        return isinstance(other, WorkspaceFolder) and other.root == self.root

    def created_time(self):
        """When the workspace was created, as workspace.json records it."""
        return files.read_json(self.root / "workspace.json", {}).get("created")

    # Compute targets

    def compute_names(self):
        return files.names(self.root / "computes", ".json")

    def read_compute(self, name):
        """The definition of compute target `name`, or None."""
        return files.read_json(self.root / "computes" / f"{plain_name(name, 'Compute target')}.json")

    @writes
    def write_compute(self, name, definition):
        (self.root / "computes").mkdir(exist_ok=True)
        files.write_json(self.root / "computes" / f"{plain_name(name, 'Compute target')}.json", definition)

    @writes
    def delete_compute(self, name):
        """Remove compute target `name`; False if there was none."""
        try:
            (self.root / "computes" / f"{plain_name(name, 'Compute target')}.json").unlink()
            return True
        except FileNotFoundError:
            return False

    # Experiments and runs

    def experiment_names(self):
        return files.names(self.root / "experiments")

    @writes
    def add_experiment(self, name):
        (self.root / "experiments" / plain_name(name, "Experiment") / "runs").mkdir(parents=True, exist_ok=True)

    def read_experiment(self, name):
        """What was set on experiment `name` (experiment.json: tags, archivedTime), {} if nothing was."""
        return files.read_json(self._experiment(name) / "experiment.json", {})

    @writes
    def write_experiment(self, name, record):
        files.write_json(self._experiment(name) / "experiment.json", record)

    @writes
    def remove_experiment(self, name):
        """Take experiment `name` and its runs out of the workspace at once, then remove its folder."""
        aside = self.root / "experiments" / f".deleted-{name}-{uuid.uuid4().hex}"  # hidden: not in experiment_names()
        os.rename(self._experiment(name), aside)
        shutil.rmtree(aside, ignore_errors=True)

    def runs(self, experiment):
        """The experiment's runs, newest first; one whose run.json is damaged is left out, with a warning."""
        runs = (self.run(experiment, number) for number in reversed(files.numbers(self._runs(experiment))))
        for run, _ in files.skipping_damaged(runs, lambda run: run.run_id):  # reading run_id reads run.json
            yield run

    def run(self, experiment, number):
        return RunFolder(self._runs(experiment) / str(number))

    def find_run(self, experiment, run_id):
        """The experiment's run with id `run_id`, or None."""
        return next((run for run in self.runs(experiment) if run.run_id == run_id), None)

    def children(self, experiment, parent_id):
        """The runs of `experiment` whose parent is run `parent_id`, oldest first."""
        return [
            run for run in reversed(list(self.runs(experiment))) if run.definition().get("parentRunId") == parent_id
        ]

    @writes
    def new_run(self, experiment, definition, tags, source=None, properties=None, status=None):
        """Publish a new run of `experiment` and return (RunFolder, lock).

        `definition` becomes run.json (with "parentRunId" for a child run); `source`, a file or folder, is
        snapshotted as the SDK does: honouring a folder's .amlignore, else its .gitignore. A run that a
        runner runs starts Queued (no `status`): `lock` is an open file descriptor that holds runner.lock:
        pass it to the runner process, then close it here. Whoever holds it stands for the runner (e.g. a
        sweep holding its queued children's): once no process holds it, a run that has not ended is seen
        as abandoned and marked Failed. An interactive run starts with `status` and has no lock (None).
        """
        with files.staging_dir(self.root / ".staging") as staged:
            if source is not None:
                self._snapshot(source, staged / "snapshot")
            files.write_json(staged / "run.json", definition)
            files.write_json(staged / "status.json", status or {"status": "Queued"})
            for key, value in (tags or {}).items():
                files.append_record(staged / "tags.jsonl", {key: value})
            for key, value in (properties or {}).items():
                files.append_record(staged / "properties.jsonl", {key: value})
            lock = None
            if status is None:
                lock = os.open(staged / "runner.lock", os.O_WRONLY | os.O_CREAT, 0o666)
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                number = files.publish(staged, self._runs(experiment))
            except BaseException:
                if lock is not None:
                    os.close(lock)
                raise
        return self.run(experiment, number), lock

    @writes
    def add_snapshot(self, run, source):
        """Snapshot the file or folder `source` into RunFolder `run`, which has none, whole or not at all."""
        with files.staging_dir(self.root / ".staging") as staged:
            self._snapshot(source, staged / "snapshot")
            os.rename(staged / "snapshot", run.snapshot)

    def _snapshot(self, source, target):
        """Copy a folder as copy_source() does, or a file into a folder of its own."""
        if Path(source).is_dir():
            self.copy_source(source, target)
        elif Path(source).is_file():
            target.mkdir()
            shutil.copyfile(source, target / Path(source).name)
        else:
            from azureml.exceptions import SnapshotException

            raise SnapshotException(f"{source} is not a file or folder")

    def copy_source(self, source, target):
        """Copy the folder `source` to `target` as the SDK snapshots it (a run's, a web service's): honouring its
        .amlignore, else its .gitignore, and leaving out SNAPSHOT_IGNORE and this workspace folder."""
        ignore = self._snapshot_ignore(source)
        check_snapshot(source, ignore)
        shutil.copytree(source, target, ignore=ignore)

    def _snapshot_ignore(self, source):
        """copytree's ignore: the SDK's ignore file for `source`, SNAPSHOT_IGNORE, and this workspace folder."""
        from azureml._project.ignore_file import get_project_ignore_file

        ignore_file = get_project_ignore_file(str(source))
        builtin = shutil.ignore_patterns(*SNAPSHOT_IGNORE)

        def ignore(folder, names):
            ignored = set(builtin(folder, names)) | set(self._this_workspace(folder, names))
            for name in names:
                path = os.path.abspath(os.path.join(folder, name))
                # A folder is matched with a trailing slash, so that a pattern such as "data/" applies to it.
                if ignore_file.is_file_excluded(path + os.sep if os.path.isdir(path) else path):
                    ignored.add(name)
            return ignored

        return ignore

    def _this_workspace(self, folder, names):
        """copytree's ignore that leaves out this workspace's folder (also where a link leads to it), so that a
        folder that holds the workspace is never copied into it."""
        return [name for name in names if Path(folder, name).resolve() == self.root]

    def _experiment(self, name):
        return self.root / "experiments" / plain_name(name, "Experiment")

    def _runs(self, experiment):
        return self._experiment(experiment) / "runs"

    # Models

    def model_names(self):
        return files.names(self.root / "models")

    def model_versions(self, name):
        return files.numbers(self.root / "models" / plain_name(name, "Model"))

    def read_model(self, name, version):
        """The definition (model.json) of version `version` of model `name`, or None."""
        return files.read_json(self._model(name, version) / "model.json")

    def model_entry(self, name, version):
        """The registered file or folder of a model version; DamagedFile if its files are gone."""
        folder = self._model(name, version) / "files"
        try:
            entries = list(folder.iterdir())
        except FileNotFoundError:
            raise files.damaged(folder, "missing: the model's files were removed") from None
        if len(entries) != 1:
            raise files.damaged(folder, f"holds {len(entries)} entries, not one")
        return entries[0]

    @writes
    def new_model_version(self, name, source, definition, children=None):
        """Copy the file or folder `source` (of a folder, only the files and folders `children` in it, if given)
        into the next version of model `name`; return the version. A folder that holds this workspace (".", the
        notebook's folder) is copied without it."""
        source = Path(source).resolve()  # "." and "./" have no name of their own

        def copy(path, target):
            if path.is_dir():
                shutil.copytree(path, target, ignore=self._this_workspace, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)

        with files.staging_dir(self.root / ".staging") as staged:
            (staged / "files").mkdir()
            if children:  # where the SDK uploads them: <folder name>/<child>
                for child in children:
                    copy(files.inside(source, child), files.inside(staged / "files" / source.name, child))
            else:
                copy(source, staged / "files" / source.name)
            files.write_json(staged / "model.json", definition)
            return files.publish(staged, self.root / "models" / plain_name(name, "Model"))

    @writes
    def update_model(self, name, version, change):
        """Replace the model version's model.json with change(definition), holding the version's lock so that
        no update is lost to another at once; the new definition, or None if there is no such version."""
        with files.locked(self._model(name, version)) as held:
            definition = self.read_model(name, version) if held else None
            if definition is None:
                return None
            definition = change(definition)
            files.write_json(self._model(name, version) / "model.json", definition)
            return definition

    @writes
    def remove_model_version(self, name, version):
        """Take the model version out of the workspace at once (moved aside, then removed); False if there was none."""
        folder = self._model(name, version)
        aside = folder.with_name(f".deleted-{version}-{uuid.uuid4().hex}")  # not a version: model_versions() skips it
        with files.locked(folder) as held:
            if not held:
                return False
            os.rename(folder, aside)
        shutil.rmtree(aside, ignore_errors=True)
        return True

    def _model(self, name, version):
        return self.root / "models" / plain_name(name, "Model") / str(int(version))

    # Environments

    def environment_names(self):
        return files.names(self.root / "environments")

    def environment_versions(self, name):
        return files.json_numbers(self._environments(name))

    def read_environment(self, name, version):
        """The record of version `version` of environment `name`, or None."""
        return files.read_json(self._environments(name) / f"{int(version)}.json")

    @writes
    def new_environment_version(self, name, record, version=None):
        """Record the next version of environment `name` (or version `version`: FileExistsError if it exists);
        return its number."""
        return files.publish_json(record, self._environments(name), version)

    @writes
    def update_environment(self, name, version, change):
        """Replace the version's record with change(record), holding the environment's lock; the new record, or
        None if there is no such version."""
        with files.locked(self._environments(name)) as held:
            record = self.read_environment(name, version) if held else None
            if record is None:
                return None
            record = change(record)
            files.write_json(self._environments(name) / f"{int(version)}.json", record)
            return record

    def _environments(self, name):
        return self.root / "environments" / plain_name(name, "Environment")

    # Web services

    def service_names(self):
        """The names of the services; one whose service.json is missing or damaged is left out (with a warning
        if damaged), so that it hides no other, as runs() does for runs."""
        names = files.names(self.root / "services")
        definitions = files.skipping_damaged(names, lambda name: files.read_json(self.service(name).definition))
        return [name for name, definition in definitions if definition is not None]

    def service(self, name):
        """The folder of service `name` (whether or not it exists)."""
        return ServiceFolder(self.root / "services" / plain_name(name, "Service"))

    @writes
    def new_service(self, name, fill):
        """Call fill(ServiceFolder) on a staging folder and publish that as service `name`, whole or not at all;
        return what fill returned. FileExistsError if the workspace has a service of that name."""
        target = self.service(name).path
        with files.staging_dir(self.root / ".staging") as staged:
            filled = fill(ServiceFolder(staged))
            target.parent.mkdir(exist_ok=True)
            try:
                os.rename(staged, target)  # fails onto an existing, non-empty folder
            except OSError:
                raise FileExistsError(f"service {name!r} exists") from None
        return filled

    @writes
    def remove_service(self, name):
        """Take service `name` out of the workspace at once; its folder, moved aside for the caller to stop its
        server and discard(), or None if there was none."""
        service = self.service(name)
        aside = service.path.with_name(f".deleted-{name}-{uuid.uuid4().hex}")  # hidden: not in service_names()
        try:
            os.rename(service.path, aside)
        except FileNotFoundError:
            return None
        return ServiceFolder(aside)


class ServiceFolder:
    """One web service's folder: what was deployed, its keys, its server process, its app and models, its logs."""

    def __init__(self, path):
        self.path = Path(path)
        self.definition = self.path / "service.json"  # what was deployed; rewritten by update()
        self.keys = self.path / "keys.json"  # authEnabled and the two keys; the server re-reads it
        self.server = self.path / "server.json"  # pid, process start time and port of azmlinfsrv
        self.ready = self.path / "ready"  # written by a server worker once init() has returned
        self.app = self.path / "app"  # a copy of the source directory: AML_APP_ROOT and working directory
        # <model>/<version>/<files> in the app's folder, as in Azure's container: Model.get_model_path() finds them
        self.models = self.app / "azureml-models"
        self.server_log = self.path / "logs" / "server.log"  # azmlinfsrv's and the script's output
        self.init_log = self.path / "logs" / "init.log"  # what deploy() copied, as Azure's init container logs

    @writes
    def write_keys(self, keys):
        """keys.json, readable by this user only: its keys let anyone call the service."""
        files.write_json(self.keys, keys, mode=0o600)

    def discard(self):
        shutil.rmtree(self.path, ignore_errors=True)


class RunFolder:
    """One run's folder: what was submitted, its status, metrics, tags, files, and its runner's lock."""

    def __init__(self, path):
        self.path = Path(path)
        self.number = int(self.path.name)
        self.experiment = self.path.parents[1].name
        self._definition = None

    def definition(self):
        """run.json (written once, at submit)."""
        if self._definition is None:
            definition = files.read_json(self.path / "run.json")
            if definition is None or "runId" not in definition:
                raise files.damaged(self.path / "run.json", "missing" if definition is None else "no runId")
            self._definition = definition
        return self._definition

    @property
    def run_id(self):
        return self.definition()["runId"]

    @property
    def run_type(self):
        """The run's type, as the SDK names it: "azureml.scriptrun", "hyperdrive" for a sweep's parent, None for
        an interactive run."""
        return self.definition().get("runType", SCRIPT_RUN_TYPE)

    def read_status(self):
        status = files.read_json(self.path / "status.json")
        if status is None or not isinstance(status.get("status"), str):
            raise files.damaged(self.path / "status.json", "missing" if status is None else "no status")
        return status

    @writes
    def write_status(self, status):
        files.write_json(self.path / "status.json", status)

    def runner_alive(self):
        """Whether the run's runner (or its submitter, before the runner starts) still holds runner.lock.

        A lock, not a pid: it goes with the process however it ends, and a recycled pid cannot hold it.
        """
        try:
            fd = os.open(self.path / "runner.lock", os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    @writes
    def reserve_space(self):
        """Hold RESERVE_BYTES of the disk (runner.reserve), so that the run's end can still be recorded after its
        script has filled the disk."""
        with open(self.path / "runner.reserve", "wb") as f:
            # Allocated, not truncated to size (a sparse file would hold nothing), and not written: no I/O.
            os.posix_fallocate(f.fileno(), 0, RESERVE_BYTES)

    def release_space(self):
        (self.path / "runner.reserve").unlink(missing_ok=True)

    @writes
    def request_cancel(self):
        (self.path / "cancel").touch()

    def cancel_requested(self):
        return (self.path / "cancel").exists()

    @property
    def runner_log(self):
        return self.path / "runner.log"

    @property
    def snapshot(self):
        return self.path / "snapshot"

    @writes
    def append_metric(self, record, data=None):
        """Append a metric record; with `data`, the bytes of the run's file record["file"], written first (whole),
        so that the record never names a file that is not there."""
        if data is not None:
            path = self.file(record["file"])
            path.parent.mkdir(parents=True, exist_ok=True)
            files.write_bytes(path, data)
        files.append_record(self.path / "metrics.jsonl", record)

    def metrics(self):
        """The metric records, in the order logged; one that is not a metric is skipped with a warning."""
        records = []
        for record in files.read_records(self.path / "metrics.jsonl"):
            if isinstance(record.get("name"), str) and (
                "value" in record
                or isinstance(record.get("values"), list)
                or isinstance(record.get("row"), dict)
                or (isinstance(record.get("rows"), list) and all(isinstance(row, dict) for row in record["rows"]))
                or isinstance(record.get("file"), str)
            ):
                records.append(record)
            else:
                warnings.warn(
                    f"{self.path / 'metrics.jsonl'}: a record that is not a metric, skipped: {record}",
                    files.DamagedRecordWarning,
                    stacklevel=2,
                )
        return records

    def read_metric_file(self, name):
        """The bytes of the run's file `name` that a metric record names, or None if it is gone."""
        try:
            return self.file(name).read_bytes()
        except FileNotFoundError:
            return None

    def metric_values(self, name):
        """The numeric values logged for metric `name` (run.log, run.log_list), in order, as Run.get_metrics() and
        metric_values() give them; none for a metric first logged as another kind (a table, an image)."""
        records = [record for record in self.metrics() if record["name"] == name]
        scalars = [record for record in records if "value" in record or "values" in record]
        if records[:1] != scalars[:1]:
            return []
        return metric_values([value for record in scalars for value in record.get("values", [record["value"]])])

    @writes
    def append_tag(self, key, value):
        files.append_record(self.path / "tags.jsonl", {key: value})

    @writes
    def remove_tags(self, keys):
        files.append_record(self.path / "tags.jsonl", {REMOVED_TAGS: list(keys)})

    def tags(self):
        tags = {}
        for record in files.read_records(self.path / "tags.jsonl"):
            if isinstance(record.get(REMOVED_TAGS), list):
                for key in record[REMOVED_TAGS]:
                    tags.pop(key, None)
            else:
                tags.update(record)
        return tags

    @writes
    def add_property(self, key, value):
        """Add a property; as on Azure, one that is set keeps its first value."""
        if key not in self.properties():
            files.append_record(self.path / "properties.jsonl", {key: value})

    def properties(self):
        properties = {}
        for record in files.read_records(self.path / "properties.jsonl"):
            properties.update({key: value for key, value in record.items() if key not in properties})
        return properties

    def read_display(self):
        """display.json: the displayName and description set since the run began ({} if none was)."""
        return files.read_json(self.path / "display.json", {})

    @writes
    def write_display(self, display):
        files.write_json(self.path / "display.json", display)

    def zip_snapshot(self, target):
        """Write the run's snapshot as the zip file `target`, whole or not at all."""
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        try:
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
                for name in files.file_names(self.snapshot):
                    archive.write(self.snapshot / name, name)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    # The run's files

    @property
    def files(self):
        return self.path / "files"

    def file_names(self):
        return files.file_names(self.files)

    def file(self, name):
        """The path of the run's file `name`, refusing names that lead outside the run's files."""
        return files.inside(self.files, name)

    def log(self, rank=None):
        """The script's log; with `rank`, the log of that process of an MPI job."""
        return self.files / (LOG if rank is None else f"logs/std_log_process_{rank}.txt")

    @property
    def mpi_log(self):
        return self.files / MPI_LOG

    def process_count(self):
        """How many processes run the script: node_count x process_count_per_node for an MPI job, else None."""
        submitted = self.definition()["runDefinition"]
        return submitted["nodeCount"] * submitted["mpi"]["processCountPerNode"] if "mpi" in submitted else None

    def main_log(self):
        """The log that show_output streams: the script's, or rank 0's in an MPI job, or a sweep's driver's
        log (as Azure streams)."""
        if self.definition().get("runType") == HYPERDRIVE_RUN_TYPE:
            return self.sweep_log
        return self.log(None if self.process_count() is None else 0)

    @property
    def sweep_log(self):
        """A sweep's log, written by its driver (what the parent run streams)."""
        return self.files / SWEEP_LOG

    @writes
    def copy_in(self, source, name):
        """Copy the files of folder `source` into the run's files, under `name`. Links are not followed out of
        `source`: what they lead to there is not the run's (a link to a file inside it is copied; links to
        folders are not followed)."""
        source = Path(source).resolve()
        for folder, _, names in os.walk(source):
            for file in names:
                path = Path(folder, file)
                if not path.is_file() or source not in path.resolve().parents:
                    continue
                target = files.inside(self.files, f"{name}/{path.relative_to(source).as_posix()}")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)

    @writes
    def make_outputs(self):
        """Create the script's ./outputs before it starts, as Azure's job does: scripts save into it unasked
        (Microsoft's own Chainer notebook's script does). A file of that name in the snapshot is left alone."""
        with contextlib.suppress(FileExistsError):
            (self.snapshot / "outputs").mkdir()

    @writes
    def collect_outputs(self):
        """Move the script's ./outputs into the run's files, as Azure uploads them when a run ends. Links are not
        followed out of the snapshot: what they point to is not the run's (file_names skips linked files and
        folders inside outputs/; an outputs/ that is itself a link is left where it is)."""
        outputs = self.snapshot / "outputs"
        if outputs.is_symlink():
            return
        for name in files.file_names(outputs):
            target = self.files / "outputs" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(outputs / name, target)
