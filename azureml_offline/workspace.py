"""The offline stand-in for azureml.core.Workspace: a folder on this machine, kept by its Backend (backend/).

Its name, location and ids all say "offline", so no printout can be mistaken for Azure.
"""

import logging

from azureml.core.workspace import Workspace as SdkWorkspace
from azureml.exceptions import UserErrorException, WebserviceException, WorkspaceException

from . import environment, hyperdrive
from .azure_only import needs_azure
from .backend import Backend, open_backend
from .compute import ComputeTarget
from .experiment import Experiment
from .model import Model

NAME = "offline-workspace"
LOCATION = "local"
OFFLINE_ID = "offline"
SKU = "Basic"
ARM_ID = (
    f"/subscriptions/{OFFLINE_ID}/resourceGroups/{OFFLINE_ID}/providers/Microsoft.MachineLearningServices"
    f"/workspaces/{NAME}"
)
logger = logging.getLogger(__name__)


class Workspace:
    """A workspace whose experiments, runs, compute targets and models live in state.layout.workspace_dir()."""

    def __init__(self, subscription_id, resource_group, workspace_name, auth=None, *, sku="basic", tags=None):
        # The ids and credentials name an Azure workspace; offline there is one workspace, kept in
        # state.layout.workspace_dir().
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
    def get(name, auth=None, subscription_id=None, resource_group=None, location=None, cloud="AzureCloud", id=None):
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
        """The active experiments, as the SDK's (Experiment.list's default)."""
        return {experiment.name: experiment for experiment in Experiment.list(self)}

    @property
    def webservices(self):
        from .webservice import Webservice

        return {service.name: service for service in Webservice.list(self)}  # the SDK's: the cloud's services

    @property
    def models(self):
        """Model name -> its latest version."""
        return {model.name: model for model in Model.list(self, latest=True)}

    @property
    def environments(self):
        """Environment name -> its latest registered version."""
        return environment.registered(self)

    def get_run(self, run_id):
        """The run `run_id`, of whichever experiment it is in (a sweep's parent as a HyperDriveRun)."""
        for name in self.backend.experiment_names():
            if self.backend.run(name, run_id) is not None:
                return hyperdrive.open_run(Experiment(self, name), run_id)
        raise UserErrorException(f"No run {run_id!r} in the offline workspace")

    def get_details(self):
        """What the SDK's details say of the workspace, as far as they are true offline."""
        return {
            "id": ARM_ID,
            "name": NAME,
            "type": "Microsoft.MachineLearningServices/workspaces",
            "location": LOCATION,
            "tags": {},
            "sku": SKU,
            "workspaceid": OFFLINE_ID,
            "description": "The offline workspace: a folder on this machine",
            "friendlyName": NAME,
            "creationTime": self.backend.created_time(),
            "provisioningState": "Succeeded",
            "hbiWorkspace": False,
        }

    @property
    def sku(self):
        return SKU

    @property
    def tags(self):
        return {}

    @staticmethod
    def list(subscription_id, auth=None, resource_group=None):
        """Workspace name -> [Workspace]: offline, the one workspace."""
        return {NAME: [Workspace.from_config()]}

    @staticmethod
    def setup():
        logger.warning("setup() is now deprecated: use get()/from_config() to retrieve an existing workspace")
        return Workspace.from_config()

    def get_default_compute_target(self, type):
        """The compute target named "cpu-cluster" or "gpu-cluster", as the SDK's deprecated call finds it, or None."""
        logger.warning("'get_default_compute_target' is deprecated: use compute_targets['name']")
        names = {"cpu": SdkWorkspace.DEFAULT_CPU_CLUSTER_NAME, "gpu": SdkWorkspace.DEFAULT_GPU_CLUSTER_NAME}
        if type.lower() not in names:
            raise ValueError("Invalid compute type. Accepted values are CPU and GPU")
        return self.compute_targets.get(names[type.lower()])

    # Azure's resources, which the offline workspace has none of.
    create = needs_azure(
        SdkWorkspace, "create", "Workspace.from_config() opens the workspace folder", WorkspaceException
    )
    delete = needs_azure(SdkWorkspace, "delete", "remove the workspace folder", WorkspaceException)
    update = needs_azure(SdkWorkspace, "update", "the workspace has no settings to update", WorkspaceException)
    update_dependencies = needs_azure(
        SdkWorkspace, "update_dependencies", "there is no container registry", WorkspaceException
    )
    diagnose_workspace = needs_azure(
        SdkWorkspace, "diagnose_workspace", "the workspace is a folder on this machine", WorkspaceException
    )
    write_config = needs_azure(
        SdkWorkspace, "write_config", "a config.json would switch the lessons to Azure: there is none to write"
    )
    service_context = needs_azure(SdkWorkspace, "service_context", "the stand-ins answer without Azure's services")
    discovery_url = needs_azure(SdkWorkspace, "discovery_url", "there is no service to discover")
    list_keys = needs_azure(SdkWorkspace, "list_keys", "no keys exist offline", WorkspaceException)
    sync_keys = needs_azure(SdkWorkspace, "sync_keys", "no keys exist offline", WorkspaceException)
    get_default_keyvault = needs_azure(
        SdkWorkspace, "get_default_keyvault", "there is no Key Vault: read secrets from environment variables"
    )
    private_endpoints = needs_azure(SdkWorkspace, "private_endpoints", "there is no network to reach")
    add_private_endpoint = needs_azure(
        SdkWorkspace, "add_private_endpoint", "there is no network to reach", WorkspaceException
    )
    delete_private_endpoint_connection = needs_azure(
        SdkWorkspace, "delete_private_endpoint_connection", "there is no network to reach", WorkspaceException
    )
    set_connection = needs_azure(SdkWorkspace, "set_connection", "there are no connections", WorkspaceException)
    list_connections = needs_azure(SdkWorkspace, "list_connections", "there are no connections", WorkspaceException)
    get_connection = needs_azure(SdkWorkspace, "get_connection", "there are no connections", WorkspaceException)
    delete_connection = needs_azure(SdkWorkspace, "delete_connection", "there are no connections", WorkspaceException)
    linked_services = needs_azure(SdkWorkspace, "linked_services", "there are no linked services")
    datastores = needs_azure(SdkWorkspace, "datastores", "there are no datastores: read data from local paths")
    datasets = needs_azure(SdkWorkspace, "datasets", "there are no data sets: read data from local paths")
    get_default_datastore = needs_azure(
        SdkWorkspace, "get_default_datastore", "there are no datastores: read data from local paths"
    )
    set_default_datastore = needs_azure(
        SdkWorkspace, "set_default_datastore", "there are no datastores: read data from local paths"
    )
    images = needs_azure(
        SdkWorkspace, "images", "no images are built: services run in this Python", WebserviceException
    )
    get_mlflow_tracking_uri = needs_azure(
        SdkWorkspace, "get_mlflow_tracking_uri", "use MLflow's own local tracking (its default ./mlruns)"
    )

    def __eq__(self, other):
        return isinstance(other, Workspace) and other.backend is self.backend

    def __repr__(self):
        return f"Workspace.create(name='{NAME}', subscription_id='{OFFLINE_ID}', resource_group='{OFFLINE_ID}')"


def workspace_at(folder):
    """Offline only: the Workspace kept in `folder` (a path, or a Backend), whatever AZUREML_OFFLINE_DIR says."""
    workspace = Workspace.__new__(Workspace)
    workspace.backend = folder if isinstance(folder, Backend) else open_backend(folder)
    return workspace
