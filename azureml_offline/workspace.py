"""The offline stand-in for azureml.core.Workspace: a folder on this machine, kept by its Backend (backend.py).

Its name, location and ids all say "offline", so no printout can be mistaken for Azure.
"""

from azureml.exceptions import UserErrorException

from .backend import Backend, open_backend
from .compute import ComputeTarget
from .experiment import Experiment

NAME = "offline-workspace"
LOCATION = "local"
OFFLINE_ID = "offline"


class Workspace:
    """A workspace whose experiments, runs, compute targets and models live in state.layout.workspace_dir()."""

    def __init__(self, subscription_id, resource_group, workspace_name):
        # The ids name an Azure workspace; offline there is one workspace, kept in state.layout.workspace_dir().
        if workspace_name != NAME:
            raise UserErrorException(
                f"No offline workspace named {workspace_name!r}: the offline workspace is {NAME!r}"
            )
        # Offline only (an attribute, not an SDK member): the Backend that holds the workspace's state and rules.
        self.backend = open_backend()

    @staticmethod
    def from_config(path=None, auth=None):
        """The offline workspace. A configuration file and credentials name an Azure workspace: unused offline."""
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
        return {target.name: target for target in ComputeTarget.list(self)}

    @property
    def experiments(self):
        return {name: Experiment(self, name) for name in self.backend.experiment_names()}

    @property
    def webservices(self):
        from .webservice import Webservice

        return {name: Webservice(self, name) for name in self.backend.service_names()}

    def __eq__(self, other):
        return isinstance(other, Workspace) and other.backend is self.backend

    def __repr__(self):
        return f"Workspace.create(name='{NAME}', subscription_id='{OFFLINE_ID}', resource_group='{OFFLINE_ID}')"


def workspace_at(folder):
    """Offline only: the Workspace kept in `folder` (a path, or a Backend), whatever AZUREML_OFFLINE_DIR says."""
    workspace = Workspace.__new__(Workspace)
    workspace.backend = folder if isinstance(folder, Backend) else open_backend(folder)
    return workspace
