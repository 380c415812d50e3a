"""Offline workspace: the part of the Azure ML v1 API that the tutorial uses, run on this machine.

    import azureml_offline
    azureml_offline.activate_if_needed()   # then: from azureml.core import Workspace, ...

Like moto for AWS, the stand-ins keep the SDK's names and behaviour and are switched on explicitly,
and off again: activate() / deactivate(), or `with azureml_offline.activate(): ...`. Both calls also
choose this process's OpenBLAS kernel while NumPy is not loaded yet (engine/openblas.py). Environment stays the
SDK's own class, with its workspace calls offline (environment.py). Everything else (ScriptRunConfig, AmlCompute,
HyperDriveConfig and its samplings and policies, the estimators, the exceptions) stays the real SDK.
"""

import importlib
import os

from .state.layout import shown, workspace_dir

# Where the stand-ins go: (module, attribute, stand-in module, stand-in class). Imported when switched on,
# so that importing this package (as every offline run's runner does) does not load them all.
STAND_INS = [
    ("azureml.core", "Workspace", "azureml_offline.workspace", "Workspace"),
    ("azureml.core.workspace", "Workspace", "azureml_offline.workspace", "Workspace"),
    ("azureml.core", "Experiment", "azureml_offline.experiment", "Experiment"),
    ("azureml.core.experiment", "Experiment", "azureml_offline.experiment", "Experiment"),
    ("azureml.core", "Run", "azureml_offline.run", "Run"),
    ("azureml.core.run", "Run", "azureml_offline.run", "Run"),
    ("azureml.core", "Model", "azureml_offline.model", "Model"),
    ("azureml.core.model", "Model", "azureml_offline.model", "Model"),
    ("azureml.core", "ComputeTarget", "azureml_offline.compute", "ComputeTarget"),
    ("azureml.core.compute", "ComputeTarget", "azureml_offline.compute", "ComputeTarget"),
    ("azureml.core.compute.compute", "ComputeTarget", "azureml_offline.compute", "ComputeTarget"),
    ("azureml.widgets", "RunDetails", "azureml_offline.widgets", "RunDetails"),
    ("azureml.widgets.run_details", "RunDetails", "azureml_offline.widgets", "RunDetails"),
    ("azureml.core", "Webservice", "azureml_offline.webservice", "Webservice"),
    ("azureml.core.webservice", "Webservice", "azureml_offline.webservice", "Webservice"),
    ("azureml.core.webservice.webservice", "Webservice", "azureml_offline.webservice", "Webservice"),
    ("azureml.core.webservice", "AciWebservice", "azureml_offline.webservice", "AciWebservice"),
    ("azureml.core.webservice.aci", "AciWebservice", "azureml_offline.webservice", "AciWebservice"),
    ("azureml.core.webservice", "LocalWebservice", "azureml_offline.webservice", "LocalWebservice"),
    ("azureml.core.webservice.local", "LocalWebservice", "azureml_offline.webservice", "LocalWebservice"),
    ("azureml.train.hyperdrive", "HyperDriveRun", "azureml_offline.hyperdrive", "HyperDriveRun"),
    ("azureml.train.hyperdrive.run", "HyperDriveRun", "azureml_offline.hyperdrive", "HyperDriveRun"),
]
# SDK classes that keep their place, their workspace calls replaced: (module, class, stand-in module, the class
# whose public members go onto the SDK's class). See environment.py for why Environment cannot have a stand-in;
# AmlCompute stays the SDK's provisioning configuration, and notebooks call its static calls on it.
CALLS = [
    ("azureml.core.environment", "Environment", "azureml_offline.environment", "EnvironmentCalls"),
    ("azureml.core.compute.amlcompute", "AmlCompute", "azureml_offline.compute", "AmlComputeCalls"),
]
_replaced = {}  # (module or SDK class, attribute) -> what was there, while the stand-ins are on


class _Switch:
    """What activate() returns: `with azureml_offline.activate():` switches the stand-ins off again at the end."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        deactivate()


def choose_openblas_kernel():
    # Imported here, not at the top: `python -m azureml_offline.engine.openblas` then runs it without a warning
    # that the module was imported before it ran as __main__.
    from .engine import openblas

    openblas.choose_for_this_process()


def activate(live_view=True):
    """Put the stand-ins where `from azureml.core import Workspace, ...` finds them (again: harmless); without
    `live_view`, all but RunDetails, which a script has no use for (ipywidgets is slow to import).

    It also chooses this process's OpenBLAS kernel, if NumPy has not loaded yet (engine/openblas.py).
    """
    choose_openblas_kernel()
    wanted = [entry for entry in STAND_INS if live_view or entry[2] != "azureml_offline.widgets"]
    # Import every stand-in first: they capture the real classes they build on before any is replaced.
    stand_ins = [getattr(importlib.import_module(module), name) for _, _, module, name in wanted]
    calls = [getattr(importlib.import_module(module), name) for _, _, module, name in CALLS]
    for (target, attribute, _, _), stand_in in zip(wanted, stand_ins, strict=True):
        replace(importlib.import_module(target), attribute, stand_in)
    for (target, name, _, _), members in zip(CALLS, calls, strict=True):
        sdk_class = getattr(importlib.import_module(target), name)
        for attribute, member in vars(members).items():
            if not attribute.startswith("_"):
                replace(sdk_class, attribute, member)
    return _Switch()


def replace(owner, attribute, stand_in):
    """Put `stand_in` at owner.attribute, keeping what was there (as stored: a static method stays one)."""
    _replaced.setdefault((owner, attribute), vars(owner)[attribute])
    setattr(owner, attribute, stand_in)


def deactivate():
    """Put the real SDK classes and members back (nothing to do if the stand-ins are off)."""
    for (owner, attribute), real in _replaced.items():
        setattr(owner, attribute, real)
    _replaced.clear()


def is_active():
    return bool(_replaced)


def activate_if_needed():
    """Use the offline workspace when AZUREML_OFFLINE=1, or when no workspace configuration is found.

    Prints which mode is active and why, and returns "offline" or "azure". With a configuration
    (and no AZUREML_OFFLINE=1) it changes nothing: the real SDK talks to Azure.
    """
    mode, reason = choose_mode()
    choose_openblas_kernel()  # the lessons compute in this kernel in either mode
    if mode == "offline":
        activate()
        print(f"Azure ML: offline, because {reason}.")
        print(f"Runs execute on this machine; the workspace is kept in {shown(workspace_dir())}.")
    else:
        print(f"Azure ML: Azure, because {reason}.")
    return mode


def choose_mode():
    """("offline" or "azure", why), from AZUREML_OFFLINE and the SDK's search for config.json; contacts no one."""
    override = os.environ.get("AZUREML_OFFLINE", "")
    if override not in ("", "0", "1"):
        raise ValueError(f"AZUREML_OFFLINE must be 1 (offline) or 0 (Azure), not {override!r}")
    if override:
        return ("offline" if override == "1" else "azure"), f"AZUREML_OFFLINE={override} is set"
    config = find_workspace_config()
    if config:
        return "azure", f"it found the workspace configuration {os.path.relpath(config)}"
    return "offline", "no workspace configuration (config.json) was found"


def find_workspace_config():
    """The file Workspace.from_config() would read, searching as it does, or ''."""
    # Imported here: every offline run's runner imports this package, and never searches.
    from azureml._base_sdk_common.common import AML_CONFIG_DIR, AZUREML_DIR, CONFIG_FILENAME, LEGACY_PROJECT_FILENAME
    from azureml._file_utils.file_utils import traverse_up_path_and_find_file

    for directory in (AZUREML_DIR, AML_CONFIG_DIR, None):
        for file_name in (CONFIG_FILENAME, LEGACY_PROJECT_FILENAME):
            found = traverse_up_path_and_find_file(".", file_name, directory_name=directory)
            if found:
                return found
    return ""
