"""The offline stand-in for azureml.core.Workspace: a folder on this machine.

Its name, location and ids all say "offline", so no printout can be mistaken for Azure.
"""
import os
from pathlib import Path

from azureml.exceptions import UserErrorException

from . import store

NAME = "offline-workspace"
LOCATION = "local"
OFFLINE_ID = "offline"


def workspace_dir():
    """$AZUREML_OFFLINE_DIR, or .azureml-offline in the current directory."""
    return Path(os.environ.get("AZUREML_OFFLINE_DIR") or ".azureml-offline").resolve()


class Workspace:
    """A workspace whose experiments, runs, compute targets and models live in workspace_dir()."""

    def __init__(self, subscription_id, resource_group, workspace_name):
        # The ids name an Azure workspace; offline there is one workspace, kept in workspace_dir().
        if workspace_name != NAME:
            raise UserErrorException(
                f"No offline workspace named {workspace_name!r}: the offline workspace is {NAME!r}")
        self._root = workspace_dir()
        if not (self._root / "workspace.json").exists():
            self._root.mkdir(parents=True, exist_ok=True)
            store.write_json(self._root / "workspace.json", {"name": NAME, "created": store.utc_now()})

    @classmethod
    def _at(cls, root):
        """The workspace in folder `root` (a run's script finds it from its run folder, not from the environment)."""
        workspace = cls.__new__(cls)
        workspace._root = Path(root)
        return workspace

    @staticmethod
    def from_config(path=None, auth=None):
        """The offline workspace. A configuration file and credentials name an Azure workspace: offline they are unused."""
        return Workspace(OFFLINE_ID, OFFLINE_ID, NAME)

    @staticmethod
    def get(name, auth=None, subscription_id=None, resource_group=None):
        return Workspace(OFFLINE_ID, OFFLINE_ID, name)

    @property
    def name(self):
        return NAME

    @property
    def location(self):
        return LOCATION

    @property
    def subscription_id(self):
        return OFFLINE_ID

    @property
    def resource_group(self):
        return OFFLINE_ID

    @property
    def compute_targets(self):
        from .compute import ComputeTarget
        return {target.name: target for target in ComputeTarget.list(self)}

    @property
    def experiments(self):
        from .experiment import Experiment
        folder = self._root / "experiments"
        names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        return {name: Experiment(self, name) for name in names}

    @property
    def webservices(self):
        from .webservice import ServiceFiles, Webservice
        return {name: Webservice(self, name) for name in ServiceFiles.names(self)}

    def __eq__(self, other):
        return isinstance(other, Workspace) and other._root == self._root

    def __repr__(self):
        return f"Workspace.create(name='{NAME}', subscription_id='{OFFLINE_ID}', resource_group='{OFFLINE_ID}')"
