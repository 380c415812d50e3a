"""The offline stand-in for azureml.core.compute.ComputeTarget: a named target that is this machine.

It takes the SDK's real AmlCompute provisioning configuration and reports the SDK's real
AmlComputeStatus, whose vmSize describes this machine (cores, memory, GPU).
"""

import functools
import os
import shutil
import subprocess
import sys
import warnings

from azureml.core.compute.amlcompute import (
    AmlCompute,
    AmlComputeNodeStateCounts,
    AmlComputeProvisioningConfiguration,
    AmlComputeStatus,
    ScaleSettings,
)
from azureml.core.compute_target import AbstractComputeTarget
from azureml.exceptions import ComputeTargetException

from .azure_only import needs_azure
from .backend import backend_of
from .run import Run
from .state import files
from .state.layout import TERMINAL_STATES

NO_VM_SIZES = "any vm_size is accepted, and the target runs on this machine"
NO_IDENTITY = "a target has no managed identity: it runs as you, on this machine"
NO_QUOTAS = "there are no quotas: a target is this machine"


def refused(name, instead):
    """AmlCompute's member `name`, refusing offline with the SDK's ComputeTargetException (azure_only.py)."""
    return needs_azure(AmlCompute, name, instead, ComputeTargetException)


class AmlComputeCalls:
    """The SDK's AmlCompute static calls that take a workspace, offline: the switch puts them on the SDK's own
    class (AmlCompute.supported_vmsizes(ws) is how Microsoft's notebooks call it), and ComputeTarget has them."""

    supported_vmsizes = refused("supported_vmsizes", NO_VM_SIZES)
    list_quotas = refused("list_quotas", NO_QUOTAS)
    list_usages = refused("list_usages", NO_QUOTAS)
    update_quotas = refused("update_quotas", NO_QUOTAS)


class ComputeTarget(AmlComputeCalls, AbstractComputeTarget):
    """A compute target kept in the workspace folder. An AbstractComputeTarget, so that
    ScriptRunConfig(compute_target=...) records its name as it does for an Azure target."""

    _operation_started = False  # by create(), update() or delete(), whose end the SDK's wait_for_completion reports

    def __init__(self, workspace, name):
        self._backend = backend_of(workspace)
        definition = self._backend.compute(name)  # ComputeTargetNotFound, as Azure's
        super().__init__("AmlCompute", name)
        self.workspace = workspace
        self._read(definition)

    def _read(self, definition):
        """Set the SDK's AmlCompute attributes from the recorded target; what only Azure records is None."""
        self._definition = definition
        self.vm_size, self.vm_priority = definition["vmSize"], definition["vmPriority"]
        self.scale_settings = ScaleSettings.deserialize(definition["scaleSettings"])
        self.tags, self.description = definition.get("tags"), definition.get("description")
        self.provisioning_state, self.provisioning_errors, self.is_attached = "Succeeded", None, False
        self.status = self.get_status()
        self.location = self.cluster_location = self.workspace.location  # one place (ScriptRunConfig warns if not)
        # Azure's resource ids and times, the VNet, the login, identities.
        self.id = self.cluster_resource_id = self.created_on = self.modified_on = None
        self.vnet_resourcegroup_name = self.vnet_name = self.subnet_name = self.remote_login_port_public_access = None
        self.admin_username = self.admin_user_password = self.admin_user_ssh_key = None
        self.identity_type = self.identity_id = None

    provisioning_configuration = staticmethod(AmlCompute.provisioning_configuration)  # the SDK's own

    @staticmethod
    def create(workspace, name, provisioning_configuration):
        """Record the target (as Azure's create does, replacing one of the same name) and return it."""
        if not isinstance(provisioning_configuration, AmlComputeProvisioningConfiguration):
            raise ComputeTargetException(
                "Offline, ComputeTarget.create takes AmlCompute.provisioning_configuration(...), "
                f"not {type(provisioning_configuration).__name__}"
            )
        provisioning_configuration.validate_configuration()
        backend_of(workspace).create_compute(
            name,
            {
                "vmSize": provisioning_configuration.vm_size,
                "vmPriority": provisioning_configuration.vm_priority,
                "scaleSettings": provisioning_configuration.scale_settings.serialize(),
                "tags": provisioning_configuration.tags,
                "description": provisioning_configuration.description,
            },
        )
        target = ComputeTarget(workspace, name)
        target._operation_started = True
        return target

    @staticmethod
    def list(workspace):
        """The workspace's compute targets; one whose file is damaged is left out, with a warning."""
        targets = []
        for name in backend_of(workspace).compute_names():
            try:
                targets.append(ComputeTarget(workspace, name))
            except (ComputeTargetException, files.DamagedFile) as error:
                warnings.warn(str(error), files.DamagedRecordWarning, stacklevel=2)
        return targets

    def wait_for_completion(
        self, show_output=False, min_node_count=None, timeout_in_minutes=25, is_delete_operation=False
    ):
        """Nothing is provisioned offline, so there is nothing to wait for (whatever the node count or timeout).
        show_output says what stands in for the requested VMs, then prints the SDK's lines: the provisioning
        operation's end if create() or update() started one, and the nodes' (this machine is every node)."""
        if not show_output:
            return
        scale = self.scale_settings
        print(
            f"Offline compute target {self.name!r} stands for {self.vm_size} "
            f"({scale.minimum_node_count} to {scale.maximum_node_count} nodes); it runs on this machine: "
            f"{describe_machine()}."
        )
        if self._operation_started:
            print('Provisioning operation finished, operation "Succeeded"')
        if not is_delete_operation:
            sys.stdout.write(self.status.provisioning_state)  # as the SDK writes it, with no line end
            print("AmlCompute wait for completion finished\n")
            print("Minimum number of nodes requested have been provisioned")

    def get_status(self):
        """The SDK's AmlComputeStatus for a one-node cluster that is this machine."""
        return AmlComputeStatus(
            allocation_state="Steady",
            allocation_state_transition_time=None,
            creation_time=None,
            current_node_count=1,
            errors=None,
            modified_time=None,
            node_state_counts=AmlComputeNodeStateCounts(0, 0, 0, 0, 1, 0),
            provisioning_state="Succeeded",
            provisioning_state_transition_time=None,
            scale_settings=ScaleSettings.deserialize(self._definition["scaleSettings"]),
            target_node_count=1,
            vm_priority=self._definition["vmPriority"],
            vm_size=f"this machine (offline): {describe_machine()}",
        )

    def update(self, min_nodes=None, max_nodes=None, idle_seconds_before_scaledown=None):
        """Change the scale settings (what is None stays), checked as the SDK checks a provisioning configuration;
        they bound the node_count of MPI jobs on this target."""
        scale = self.scale_settings
        configuration = AmlCompute.provisioning_configuration(
            vm_size=self.vm_size,
            min_nodes=scale.minimum_node_count if min_nodes is None else min_nodes,
            max_nodes=scale.maximum_node_count if max_nodes is None else max_nodes,
            idle_seconds_before_scaledown=(
                scale.idle_seconds_before_scaledown
                if idle_seconds_before_scaledown is None
                else idle_seconds_before_scaledown
            ),
        )
        configuration.validate_configuration()
        definition = {**self._definition, "scaleSettings": configuration.scale_settings.serialize()}
        self._backend.create_compute(self.name, definition)
        self._read(definition)
        self._operation_started = True

    def refresh_state(self):
        self._read(self._backend.compute(self.name))

    def list_nodes(self):
        """The cluster's one node, this machine, as get_status() counts it."""
        return [
            {
                "nodeId": "this-machine",
                "port": None,
                "publicIpAddress": None,
                "privateIpAddress": "127.0.0.1",
                "nodeState": "running",
            }
        ]

    def get_active_runs(self, type=None, tags=None, properties=None, status=None):
        """The RunDtos (the SDK's) of the runs on this target that have not ended, filtered as Run.list_by_compute."""
        runs = Run.list_by_compute(self, type=type, tags=tags, properties=properties, status=status)
        return (run for run in runs if run.status not in TERMINAL_STATES)

    def delete(self):
        """Remove the target from the workspace folder; the runs made on it keep their records."""
        self._backend.delete_compute(self.name)  # ComputeTargetNotFound if it is gone
        self.provisioning_state, self._operation_started = "Deleting", True  # as the SDK sets them

    # What only Azure's resource provider has: identities, attached resources, its own records.
    add_identity = refused("add_identity", NO_IDENTITY)
    remove_identity = refused("remove_identity", NO_IDENTITY)
    attach = refused("attach", "there is nothing to attach: ComputeTarget.create records a target")
    detach = refused("detach", "delete() removes a target")
    get = refused("get", "there is no resource record: get_status() describes the target")
    serialize = refused("serialize", "there is no resource record: get_status().serialize() describes the target")
    deserialize = refused("deserialize", "ComputeTarget(workspace, name) finds a recorded target")

    def __repr__(self):
        return f"ComputeTarget(workspace=<offline>, name={self.name!r})  # this machine"


def describe_machine():
    """E.g. '16 CPU cores, 62.8 GiB memory, GPU: NVIDIA H200'."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPU cores, {memory:.1f} GiB memory, {describe_gpus()}"


@functools.cache  # once per process: every target's status describes the machine, and nvidia-smi takes a while
def describe_gpus():
    if not shutil.which("nvidia-smi"):
        return "no GPU"
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        return "no GPU (nvidia-smi did not answer)"
    if result.returncode != 0:  # e.g. a broken driver, whose error message is on stdout
        return "no GPU (nvidia-smi failed)"
    names = [name.strip() for name in result.stdout.split("\n") if name.strip()]
    return f"GPU: {', '.join(names)}" if names else "no GPU"
