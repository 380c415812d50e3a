"""The switch: activate_if_needed() is explicit, visible, and a no-op when a workspace configuration says Azure;
activate() and deactivate() (or `with activate():`) put the stand-ins in and take them out again."""

import json

import azureml.core
import azureml.core.compute
import pytest

import azureml_offline


@pytest.fixture(autouse=True)
def empty_folder(monkeypatch, tmp_path):
    """Run in an empty folder (no config.json above it), with no AZUREML_OFFLINE set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AZUREML_OFFLINE", raising=False)
    monkeypatch.setenv("AZUREML_OFFLINE_DIR", str(tmp_path / "ws"))


def test_the_switch_turns_the_stand_ins_on_and_off_again():
    real = {name: getattr(azureml.core, name) for name in ("Workspace", "Experiment", "Run", "Model")}
    with azureml_offline.activate():
        assert azureml_offline.is_active()
        assert azureml.core.Workspace.__module__ == "azureml_offline.workspace"
        azureml_offline.activate()  # twice: still one set of real classes to put back
        assert azureml.core.compute.ComputeTarget.__module__ == "azureml_offline.compute"
    assert not azureml_offline.is_active()
    assert {name: getattr(azureml.core, name) for name in real} == real
    assert azureml.core.run.Run is real["Run"] and azureml.core.compute.ComputeTarget.__module__.startswith("azureml.")
    azureml_offline.deactivate()  # when off: nothing to do
    assert azureml.core.Workspace is real["Workspace"]


def test_forced_offline_installs_the_stand_ins_and_says_so(monkeypatch, tmp_path, capsys):
    real = {name: getattr(azureml.core, name) for name in ("ScriptRunConfig",)}
    real_aml_compute = azureml.core.compute.AmlCompute
    monkeypatch.setenv("AZUREML_OFFLINE", "1")
    assert azureml_offline.activate_if_needed() == "offline"
    assert azureml_offline.activate_if_needed() == "offline"  # twice is harmless
    out = capsys.readouterr().out
    assert "Azure ML: offline, because AZUREML_OFFLINE=1 is set." in out
    assert "$AZUREML_OFFLINE_DIR" in out and str(tmp_path) not in out
    from azureml.core import Workspace
    from azureml.core.compute import ComputeTarget
    from azureml.core.experiment import Experiment
    from azureml.core.workspace import Workspace as WorkspaceFromItsModule
    from azureml.widgets import RunDetails

    assert [c.__module__ for c in (Workspace, WorkspaceFromItsModule, Experiment, ComputeTarget, RunDetails)] == [
        "azureml_offline.workspace",
        "azureml_offline.workspace",
        "azureml_offline.experiment",
        "azureml_offline.compute",
        "azureml_offline.widgets",
    ]
    assert Workspace.from_config().name == "offline-workspace"
    assert {name: getattr(azureml.core, name) for name in real} == real
    assert azureml.core.compute.AmlCompute is real_aml_compute


def test_without_a_configuration_it_goes_offline(capsys):
    assert azureml_offline.activate_if_needed() == "offline"
    assert "no workspace configuration (config.json) was found" in capsys.readouterr().out
    assert azureml.core.Experiment.__module__ == "azureml_offline.experiment"


@pytest.mark.parametrize(
    "override, reason",
    [
        ("", "it found the workspace configuration ../.azureml/config.json"),
        ("0", "AZUREML_OFFLINE=0 is set"),
    ],
)
def test_a_configuration_or_azureml_offline_0_keeps_the_real_sdk(override, reason, monkeypatch, tmp_path, capsys):
    config = tmp_path / ".azureml" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"subscription_id": "s", "resource_group": "r", "workspace_name": "w"}))
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # found in a parent folder, as Workspace.from_config() finds it
    monkeypatch.setenv("AZUREML_OFFLINE", override)
    assert azureml_offline.activate_if_needed() == "azure"
    assert capsys.readouterr().out == f"Azure ML: Azure, because {reason}.\n"
    assert azureml.core.Workspace.__module__ == "azureml.core.workspace"


def test_a_bad_override_is_an_error(monkeypatch):
    monkeypatch.setenv("AZUREML_OFFLINE", "yes")
    with pytest.raises(ValueError, match="AZUREML_OFFLINE"):
        azureml_offline.activate_if_needed()
