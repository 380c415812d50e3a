"""The offline workspace's backend, in moto's sense: one object per workspace folder that holds its state and its
rules. The SDK stand-ins (Workspace, Experiment, Run, HyperDriveRun, Model, ComputeTarget, Webservice) translate
the SDK's calls into calls of a Backend and never touch its parts; the engine's processes (engine/) run what it
starts; the folder it keeps is state/layout.py's.

    backend = open_backend(root)     # the Backend of a workspace folder (one per folder in a process)
    backend = backend_of(run)        # ... of a stand-in: a Workspace, Experiment, Run, Model or Webservice

What it does: submit a run, a sweep or an MPI job (submit_run, submit_sweep); reconcile a run's status with its
runner (reconcile_status: a run whose runner died is marked Failed, and what it left is killed); cancel a run;
register a model (register_model) or an environment; deploy, update, reconcile and delete a web service. What it
answers: the runs, children, models, environments and services it keeps, as state.layout's folders (RunFolder,
ServiceFolder), and the runner processes this process started (runner).

A Backend is composed of one class of rules per area, each in its module with its helpers: computes.py (compute
targets), runs.py (experiments and runs), models.py (models), environments.py (registered environments) and
services.py (web services). This module opens Backends and finds the Backend of a stand-in or a run folder.
"""

from ..state.layout import WorkspaceFolder
from .computes import ComputeRules
from .environments import EnvironmentRules, is_curated
from .models import ModelRules
from .runs import SNAPSHOT_ID, RunRules, run_definition
from .services import ACI, LOCAL, ServiceRules, copy_app, name_taken

__all__ = [
    "ACI",
    "LOCAL",
    "SNAPSHOT_ID",
    "Backend",
    "backend_of",
    "copy_app",
    "is_curated",
    "name_taken",
    "open_backend",
    "open_run_folder",
    "run_definition",
]

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


class Backend(ComputeRules, RunRules, ModelRules, EnvironmentRules, ServiceRules):
    """One offline workspace: its folder (a state.layout.WorkspaceFolder, `folder`) and the rules that change it."""

    def __init__(self, folder):
        self.folder = folder
        super().__init__()

    @property
    def root(self):
        return self.folder.root

    def created_time(self):
        """When the workspace folder was created (workspace.json's record)."""
        return self.folder.created_time()
