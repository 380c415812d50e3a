"""The offline stand-in for azureml.core.Workspace: a folder on this machine (backend.WorkspaceFolder).

Its name, location and ids all say "offline", so no printout can be mistaken for Azure.
"""
from azureml.exceptions import UserErrorException

from .state.layout import WorkspaceFolder
from .compute import ComputeTarget
from .experiment import Experiment

NAME = "offline-workspace"
LOCATION = "local"
OFFLINE_ID = "offline"


class Workspace:
    """A workspace whose experiments, runs, compute targets and models live in backend.workspace_dir()."""

    def __init__(self, subscription_id, resource_group, workspace_name):
        # The ids name an Azure workspace; offline there is one workspace, kept in backend.workspace_dir().
        if workspace_name != NAME:
            raise UserErrorException(
                f"No offline workspace named {workspace_name!r}: the offline workspace is {NAME!r}")
        self._backend = WorkspaceFolder.open()

    @classmethod
    def _at(cls, backend):
        """The workspace in `backend`, a WorkspaceFolder (a run's script finds it from its run folder)."""
        workspace = cls.__new__(cls)
        workspace._backend = backend
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
        return {target.name: target for target in ComputeTarget.list(self)}

    @property
    def experiments(self):
        return {name: Experiment(self, name) for name in self._backend.experiment_names()}

    @property
    def webservices(self):
        from .webservice import Webservice
        return {name: Webservice(self, name) for name in self._backend.service_names()}

    def __eq__(self, other):
        return isinstance(other, Workspace) and other._backend == self._backend

    def __repr__(self):
        return f"Workspace.create(name='{NAME}', subscription_id='{OFFLINE_ID}', resource_group='{OFFLINE_ID}')"
