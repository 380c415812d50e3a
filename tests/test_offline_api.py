"""Each offline stand-in accepts what the real azureml-core class accepts, under the same names and defaults; the
classes that users' own code calls everywhere have every public member of the SDK's."""

import importlib
import inspect

import pytest
from azureml.core import Environment, Experiment, Model, Run, Workspace
from azureml.core.compute import AmlCompute
from azureml.core.webservice import AciWebservice, LocalWebservice, Webservice
from azureml.train.hyperdrive import HyperDriveRun
from azureml.widgets import RunDetails

import azureml_offline
from azureml_offline import compute, environment, experiment, hyperdrive, model, run, webservice, widgets, workspace

PAIRS = [
    (workspace.Workspace, Workspace),
    (experiment.Experiment, Experiment),
    (run.Run, Run),
    (model.Model, Model),
    (environment.EnvironmentCalls, Environment),  # put on the SDK's own class by the switch
    (compute.ComputeTarget, AmlCompute),  # ComputeTarget(workspace, name) returns an AmlCompute for a cluster
    (compute.AmlComputeCalls, AmlCompute),  # put on the SDK's own class by the switch
    (widgets.RunDetails, RunDetails),
    (webservice.Webservice, Webservice),
    (webservice.AciWebservice, AciWebservice),
    (webservice.LocalWebservice, LocalWebservice),
    (hyperdrive.HyperDriveRun, HyperDriveRun),
]


# Every public member of these exists offline: it works as on Azure, or raises the SDK's exception saying that it
# needs Azure (azure_only.py). The SDK's members are read from the installed SDK, so one that it adds shows up here.
WHOLE = [
    workspace.Workspace,
    experiment.Experiment,
    run.Run,
    model.Model,
    compute.ComputeTarget,
    webservice.Webservice,
    webservice.AciWebservice,
    webservice.LocalWebservice,
    hyperdrive.HyperDriveRun,
    widgets.RunDetails,
]


@pytest.mark.parametrize(
    "stand_in, real",
    [pair for pair in PAIRS if pair[0] in WHOLE],
    ids=[stand_in.__name__ for stand_in, _ in PAIRS if stand_in in WHOLE],
)
def test_every_public_member_of_the_sdk_exists_offline(stand_in, real):
    sdk = [name for name in dir(real) if not name.startswith("_") and not name.isupper()]  # constants aside
    missing = [name for name in sdk if inspect.getattr_static(stand_in, name, None) is None]
    assert not missing, f"{stand_in.__name__} lacks {missing}"


def public_members(cls):
    """Name -> member for the public methods and properties that `cls` itself defines, and __init__."""
    return {name: member for name, member in vars(cls).items() if name == "__init__" or not name.startswith("_")}


@pytest.mark.parametrize("stand_in, real", PAIRS, ids=[real.__name__ for _, real in PAIRS])
def test_members_match_the_sdk(stand_in, real):
    for name, member in public_members(stand_in).items():
        assert hasattr(real, name), f"{stand_in.__name__}.{name} is not in the SDK"
        if isinstance(member, property):
            assert isinstance(inspect.getattr_static(real, name), property), name
            continue
        offline = list(inspect.signature(getattr(stand_in, name)).parameters.values())
        sdk = list(inspect.signature(getattr(real, name)).parameters.values())
        sdk_by_name = {p.name: p for p in sdk}
        for parameter in offline:
            assert parameter.name in sdk_by_name, f"{stand_in.__name__}.{name}({parameter.name}) is not in the SDK"
            assert parameter.default == sdk_by_name[parameter.name].default, f"{name}({parameter.name}) default"
            if parameter.kind == parameter.VAR_KEYWORD:
                assert sdk_by_name[parameter.name].kind == parameter.VAR_KEYWORD
        # Positional parameters are the SDK's, in its order; others are keyword-only, so a positional
        # call meant for the SDK never lands on a different parameter.
        positional = [p.name for p in offline if p.kind == p.POSITIONAL_OR_KEYWORD]
        assert positional == [p.name for p in sdk[: len(positional)]], f"{stand_in.__name__}.{name} positions"


def test_every_environment_call_that_takes_a_workspace_is_offline():
    """The SDK's Environment stays in place (environment.py): each of its members that takes a workspace is one of
    the calls the switch replaces, so that none reaches Azure's services."""
    takes_a_workspace = [
        name
        for name in dir(Environment)
        if not name.startswith("_")
        and callable(getattr(Environment, name))
        and "workspace" in inspect.signature(getattr(Environment, name)).parameters
    ]
    assert sorted(takes_a_workspace) == sorted(public_members(environment.EnvironmentCalls))


def test_every_stand_in_is_installed_by_the_switch():
    installed = {(module, name) for _, _, module, name in azureml_offline.STAND_INS + azureml_offline.CALLS}
    assert installed == {(stand_in.__module__, stand_in.__name__) for stand_in, _ in PAIRS}


def test_the_switch_covers_every_module_that_a_replaced_class_is_imported_from():
    """`from azureml.core.compute.compute import ComputeTarget` finds the stand-in as `from azureml.core import
    ComputeTarget` does: the class's own module and each package above it that exports it. (The classes in CALLS
    keep their place, whatever imports them.)"""
    places = {(module, name) for module, name, _, _ in azureml_offline.STAND_INS}
    for module, name in sorted(places):
        real = getattr(importlib.import_module(module), name)
        parts = real.__module__.split(".")
        for package in (".".join(parts[:end]) for end in range(2, len(parts) + 1)):
            if getattr(importlib.import_module(package), name, None) is real:
                assert (package, name) in places, f"from {package} import {name} is not switched"


# What the notebook and the classic (2019) tutorial call, and the SDK parameters that the stand-in does not take:
# they need Azure (data sets, deployment resources) or are the SDK's private (_name) or catch-all (**kwargs) ones.
CALLED = [
    (workspace.Workspace, Workspace, "__init__", set()),
    (workspace.Workspace, Workspace, "from_config", set()),
    (workspace.Workspace, Workspace, "get", set()),
    (experiment.Experiment, Experiment, "__init__", set()),
    (experiment.Experiment, Experiment, "submit", set()),
    (compute.ComputeTarget, AmlCompute, "__init__", set()),
    (compute.ComputeTarget, AmlCompute, "create", set()),
    (compute.ComputeTarget, AmlCompute, "wait_for_completion", set()),
    (compute.ComputeTarget, AmlCompute, "get_status", set()),
    (compute.ComputeTarget, AmlCompute, "delete", set()),
    (run.Run, Run, "get_context", set()),
    (run.Run, Run, "log", set()),
    (run.Run, Run, "wait_for_completion", set()),
    (run.Run, Run, "get_status", set()),
    (run.Run, Run, "get_file_names", set()),
    (run.Run, Run, "download_file", set()),
    (run.Run, Run, "download_files", set()),
    (run.Run, Run, "upload_file", set()),
    (run.Run, Run, "register_model", set()),
    (model.Model, Model, "register", set()),
    (model.Model, Model, "deploy", set()),
    (model.Model, Model, "download", set()),
    (webservice.AciWebservice, AciWebservice, "deploy_configuration", set()),
    (webservice.AciWebservice, AciWebservice, "wait_for_deployment", set()),
    (webservice.AciWebservice, AciWebservice, "get_logs", set()),
    (webservice.AciWebservice, AciWebservice, "update", set()),
    (webservice.LocalWebservice, LocalWebservice, "deploy_configuration", set()),
    (webservice.LocalWebservice, LocalWebservice, "update", set()),
    (widgets.RunDetails, RunDetails, "__init__", set()),
    (widgets.RunDetails, RunDetails, "show", set()),
    (hyperdrive.HyperDriveRun, HyperDriveRun, "__init__", set()),
    (hyperdrive.HyperDriveRun, HyperDriveRun, "get_children_sorted_by_primary_metric", set()),
    (hyperdrive.HyperDriveRun, HyperDriveRun, "get_best_run_by_primary_metric", set()),
    (hyperdrive.HyperDriveRun, HyperDriveRun, "get_hyperparameters", set()),
    (hyperdrive.HyperDriveRun, HyperDriveRun, "get_metrics", set()),
    (hyperdrive.HyperDriveRun, HyperDriveRun, "cancel", set()),
    (hyperdrive.HyperDriveRun, HyperDriveRun, "wait_for_completion", set()),
    (hyperdrive.HyperDriveRun, HyperDriveRun, "get_children", {"properties", "type"}),
]


@pytest.mark.parametrize(
    "stand_in, real, name, not_offline", CALLED, ids=[f"{real.__name__}.{name}" for _, real, name, _ in CALLED]
)
def test_every_sdk_parameter_of_a_called_method_is_accepted(stand_in, real, name, not_offline):
    offline = inspect.signature(getattr(stand_in, name)).parameters
    for parameter in inspect.signature(getattr(real, name)).parameters.values():
        if parameter.name.startswith("_") or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        assert parameter.name in offline or parameter.name in not_offline, (
            f"{stand_in.__name__}.{name} does not take the SDK's {parameter.name}"
        )
