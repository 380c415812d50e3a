"""The registry and the workspace offline: models listed by their tags and properties, updated and deleted as on
Azure; environments registered with versions and got back, curated ones by name; the workspace's own members. No
run is started: runs are recorded as the runner would record them."""

import os
import threading

import pytest
from azureml.core import ScriptRunConfig
from azureml.core.environment import Environment, EnvironmentReference
from azureml.core.resource_configuration import ResourceConfiguration
from azureml.exceptions import UserErrorException, WebserviceException, WorkspaceException

import azureml_offline
from azureml_offline.backend import backend_of
from azureml_offline.hyperdrive import HyperDriveRun
from azureml_offline.model import Model
from azureml_offline.run import Run
from azureml_offline.state import files

CONDA = "name: train\ndependencies:\n  - python=3.11\n  - pip\n"


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_text("w")
    return str(path)


@pytest.fixture
def models(fresh_workspace, weights):
    """Three versions: mnist:1 (98.61 %), mnist:2 (98.50 %, a custom framework), digits:1."""
    Model.register(
        fresh_workspace, weights, "mnist", tags={"area": "mnist", "epochs": "10"}, properties={"acc": 0.9861}
    )
    Model.register(
        fresh_workspace,
        weights,
        "mnist",
        tags={"area": "mnist"},
        properties={"acc": 0.9850},
        model_framework=Model.Framework.CUSTOM,
    )
    Model.register(fresh_workspace, weights, "digits", tags={"area": "digits"})
    return fresh_workspace


def ids(models):
    return [model.id for model in models]


def test_model_list_filters_as_the_sdk_documents_them(models):
    assert ids(Model.list(models)) == ["digits:1", "mnist:2", "mnist:1"]
    assert ids(Model.list(models, tags=["epochs"])) == ["mnist:1"]
    assert ids(Model.list(models, tags=[["area", "mnist"]])) == ["mnist:2", "mnist:1"]
    assert ids(Model.list(models, tags=[["area", "mnist"], "epochs"])) == ["mnist:1"]
    assert ids(Model.list(models, properties=[["acc", "0.9861"]])) == ["mnist:1"]
    assert ids(Model.list(models, name="mnist", latest=True)) == ["mnist:2"]
    assert ids(Model.list(models, latest=True, tags=["epochs"])) == ["mnist:1"]
    assert ids(Model.list(models, model_framework=Model.Framework.CUSTOM)) == ["mnist:2"]
    assert Model.list(models, dataset_id="any") == []  # no model has data sets offline
    assert Model(models, "mnist", tags=["epochs"]).version == 1
    assert {name: model.version for name, model in models.models.items()} == {"digits": 1, "mnist": 2}
    for bad in ({"area": "mnist"}, "area", [("area", "mnist")]):
        with pytest.raises(UserErrorException, match="list type"):
            Model.list(models, tags=bad)
    with pytest.raises(UserErrorException, match="page_count"):
        Model.list(models, page_count=5)
    with pytest.raises(WebserviceException, match="ModelNotFound"):
        Model(models, "mnist", tags=["missing"])


def test_lesson_three_can_choose_the_most_accurate_version(models):
    best = max(Model.list(models, "mnist"), key=lambda model: model.properties["acc"])
    assert best.id == "mnist:1"


def test_tags_change_and_properties_are_only_added(models, capsys):
    model = Model(models, "mnist", version=1)
    model.add_tags({"epochs": "12", "stage": "prod"})
    model.remove_tags(["area", "absent"])
    model.add_properties({"loss": "0.04"})
    printed = capsys.readouterr().out
    assert "Replacing tag epochs -> 10 with epochs -> 12" in printed and "Tag with key absent not found." in printed
    again = Model(models, id="mnist:1")
    assert again.tags == model.tags == {"epochs": "12", "stage": "prod"}
    assert again.properties == {"acc": 0.9861, "loss": "0.04"}
    with pytest.raises(WebserviceException, match="properties are immutable.*acc"):
        model.add_properties({"acc": 1.0, "new": "x"})
    assert Model(models, id="mnist:1").properties == {"acc": 0.9861, "loss": "0.04"}  # nothing half-applied
    model.update(tags={"only": "this"}, description="the best")
    model.update(description="")  # the SDK replaces only what is given
    again = Model(models, id="mnist:1")
    assert (again.tags, again.description) == ({"only": "this"}, "the best")
    assert Model(models, id="mnist:2").tags == {"area": "mnist"}
    with pytest.raises(WebserviceException, match="data sets"):
        model.update(sample_input_dataset=object())


def test_concurrent_tag_updates_are_all_kept(models):
    def add(worker):
        model = Model(models, id="digits:1")
        for n in range(15):
            model.add_tags({f"{worker}-{n}": "x"})

    threads = [threading.Thread(target=add, args=(worker,)) for worker in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(Model(models, id="digits:1").tags) == 31


def test_a_model_in_use_by_a_service_cannot_be_deleted(models):
    folder = backend_of(models).folder

    def publish(service):  # a deployed service's record, without starting its server
        service.path.mkdir(exist_ok=True)
        files.write_json(service.definition, {"name": "svc", "modelIds": ["mnist:2"]})

    folder.new_service("svc", publish)
    with pytest.raises(WebserviceException, match="used in one or more images.*svc"):
        Model(models, id="mnist:2").delete()
    Model(models, id="mnist:1").delete()
    assert ids(Model.list(models, "mnist")) == ["mnist:2"]
    with pytest.raises(WebserviceException, match="ModelNotFound"):
        Model(models, "mnist", version=1)
    backend_of(models).delete_service("svc")
    Model(models, id="mnist:2").delete()
    assert Model.list(models, "mnist") == []


def test_a_model_serializes_and_deserializes(models):
    model = Model(models, id="mnist:2")
    payload = model.serialize()
    assert payload["id"] == "mnist:2" and payload["framework"] == "Custom"
    copy = Model.deserialize(models, payload)
    assert (copy.id, copy.version, copy.tags, copy.created_time) == ("mnist:2", 2, model.tags, model.created_time)


def test_register_takes_the_sdk_s_child_paths_and_resource_configuration(fresh_workspace, tmp_path, capsys):
    """As Microsoft's model-register-and-deploy notebook registers a model; child_paths keep only those files of
    the folder, under its name, as the SDK uploads them."""
    (tmp_path / "model" / "weights").mkdir(parents=True)
    for name in ("model/weights/w.npz", "model/config.json", "model/notes.txt"):
        (tmp_path / name).write_text(name)
    model = Model.register(
        fresh_workspace,
        "model",
        "picked",
        child_paths=["weights", "config.json"],
        resource_configuration=ResourceConfiguration(cpu=1, memory_in_gb=0.5),
    )
    assert capsys.readouterr().out == "Registering model picked\n"
    assert sorted(files.file_names(model.download(str(tmp_path / "out")))) == ["config.json", "weights/w.npz"]
    again = Model(fresh_workspace, "picked")
    assert again.resource_configuration.serialize() == {"cpu": 1, "memoryInGB": 0.5, "gpu": None}
    assert again.serialize()["resourceConfiguration"] == {"cpu": 1, "memoryInGB": 0.5, "gpu": None}
    again.update(resource_configuration=ResourceConfiguration(cpu=2, memory_in_gb=4, gpu=1))
    assert Model(fresh_workspace, "picked").resource_configuration.serialize() == {"cpu": 2, "memoryInGB": 4, "gpu": 1}
    with pytest.raises(WebserviceException, match="cpu must be greater than zero"):  # the SDK's own check
        again.update(resource_configuration=ResourceConfiguration(cpu=-1))


def test_a_folder_holding_one_file_comes_back_as_that_file(fresh_workspace, tmp_path):
    """The SDK returns the common path of the files it downloads (os.path.commonpath)."""
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "model.npz").write_text("w")
    model = Model.register(fresh_workspace, "outdir", "one-file")
    assert model.download("dl") == os.path.join("dl", "outdir", "model.npz")
    assert Model.get_model_path("one-file", _workspace=fresh_workspace).endswith("outdir/model.npz")


def test_register_checks_the_path_as_the_sdk_does(fresh_workspace, tmp_path, tmp_path_factory):
    """The SDK (1.61) refuses a model outside the working folder, a missing file and a missing child path;
    data sets are refused saying why."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.npz").write_text("w")
    outside = tmp_path_factory.mktemp("elsewhere") / "w.npz"
    outside.write_text("w")
    for path, error in ((str(outside), PermissionError), ("missing.npz", FileNotFoundError)):
        with pytest.raises(error):
            Model.register(fresh_workspace, path, "m")
    with pytest.raises(WebserviceException, match='child path "gone.npz" cannot be found'):
        Model.register(fresh_workspace, "model", "m", child_paths=["gone.npz"])
    with pytest.raises(WebserviceException, match="data sets need an Azure ML workspace"):
        Model.register(fresh_workspace, "model", "m", sample_input_dataset=object())
    assert backend_of(fresh_workspace).model_names() == []


def test_download_s_deprecated_exists_ok_is_refused_as_the_sdk_refuses_it(models, tmp_path):
    """SDK 1.61 checks `exist_ok is not None`, which its default of False always is."""
    with pytest.raises(WebserviceException, match="Both exists_ok and exist_ok are set"):
        Model(models, id="mnist:1").download(str(tmp_path), exists_ok=True)


def test_what_needs_azure_says_so(models):
    model = Model(models, id="mnist:1")
    for call in (model.get_sas_urls, lambda: Model.package(models, [model])):
        with pytest.raises(WebserviceException, match="needs an Azure ML workspace"):
            call()
    for call in (models.list_keys, lambda: models.set_connection("c", "k", "t", "a", "v")):
        with pytest.raises(WorkspaceException, match="needs an Azure ML workspace"):
            call()
    with pytest.raises(UserErrorException, match="needs an Azure ML workspace"):
        models.get_default_datastore()
    with pytest.raises(UserErrorException, match="needs an Azure ML workspace"):
        models.write_config()
    assert not os.path.exists(".azureml/config.json")


# Environments: the SDK's own class, whose workspace calls the switch makes offline


@pytest.fixture
def switched_on():
    with azureml_offline.activate():
        yield


@pytest.fixture
def conda_file(tmp_path):
    path = tmp_path / "conda.yml"
    path.write_text(CONDA)
    return str(path)


def test_environments_get_a_new_version_only_when_changed(fresh_workspace, conda_file, switched_on):
    env = Environment.from_conda_specification("train", conda_file)
    assert type(env) is Environment
    assert env.register(fresh_workspace).version == "1"
    assert env.register(fresh_workspace).version == "1"  # the same definition
    env.docker.base_image = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
    second = env.register(fresh_workspace)
    assert (type(second), second.version) == (Environment, "2")
    assert Environment.get(fresh_workspace, "train").docker.base_image == env.docker.base_image
    first = Environment.get(fresh_workspace, "train", version="1")
    assert first.docker.base_image != env.docker.base_image
    assert list(first.python.conda_dependencies.conda_packages) == ["python=3.11", "pip"]
    assert {name: each.version for name, each in fresh_workspace.environments.items()} == {"train": "2"}
    assert list(Environment.list(fresh_workspace)) == ["train"]
    Environment.label(fresh_workspace, "train", "1", ["stable"])
    assert Environment.get(fresh_workspace, "train", label="stable").version == "1"
    first.docker.base_image = "other"
    with pytest.raises(UserErrorException, match="another definition"):
        first.register(fresh_workspace)  # version 1, named, but changed
    for bad in ({"version": "1", "label": "stable"}, {"version": "9"}, {"label": "none"}):
        with pytest.raises(UserErrorException):
            Environment.get(fresh_workspace, "train", **bad)
    with pytest.raises(UserErrorException, match="not found"):
        Environment.get(fresh_workspace, "absent")


def test_curated_environments_come_back_by_name_and_say_so_once(fresh_workspace, capsys, switched_on):
    curated = Environment.get(fresh_workspace, "AzureML-sklearn-0.24-ubuntu18.04-py37-cpu")
    Environment.get(fresh_workspace, "AzureML-sklearn-0.24-ubuntu18.04-py37-cpu")
    assert (type(curated), curated.name) == (Environment, "AzureML-sklearn-0.24-ubuntu18.04-py37-cpu")
    assert capsys.readouterr().out.count("not built") == 1
    assert ScriptRunConfig(".", "train.py", environment=curated).run_config.environment is curated
    # In any case, as Microsoft's own notebooks name them (train-hyperparameter-tune-deploy-with-sklearn).
    assert Environment.get(fresh_workspace, "azureml-sklearn-1.5").name == "azureml-sklearn-1.5"
    for reserved in ("AzureML-Mine", "azureml-mine", "Microsoft-Mine"):
        with pytest.raises(UserErrorException, match="reserved"):
            Environment(reserved).register(fresh_workspace)
    with pytest.raises(UserErrorException, match="needs an Azure ML workspace"):
        curated.build(fresh_workspace)


def test_every_environment_works_offline_however_it_was_imported_or_made(fresh_workspace, conda_file):
    """As Microsoft's image-classification tutorial (part 2) imports it, from azureml.core.environment."""
    made_before = Environment.from_conda_specification("before", conda_file)
    real_register = Environment.register
    with azureml_offline.activate():
        from azureml.core import Environment as FromCore

        env = Environment.from_conda_specification("train", conda_file)
        config = ScriptRunConfig(".", "train.py", environment=env)  # its RunConfiguration builds the SDK's own
        assert FromCore is Environment and config.run_config.environment is env
        assert env.register(fresh_workspace).version == "1"
        assert made_before.register(fresh_workspace).version == "1"
        assert EnvironmentReference("train", "1").get_environment(fresh_workspace).name == "train"
        assert env.clone("copy").register(fresh_workspace).name == "copy"
        assert sorted(fresh_workspace.environments) == ["before", "copy", "train"]
    assert Environment.register is real_register  # switched off: the SDK's own calls again


# The workspace


def record_run(folder, experiment, run_id, **definition):
    run, lock = folder.new_run(experiment, {"runId": run_id, "target": "local", **definition}, {})
    os.close(lock)
    run.write_status({"status": "Completed"})


def test_get_run_finds_a_run_in_any_experiment(fresh_workspace):
    folder = backend_of(fresh_workspace).folder
    record_run(folder, "first", "first_1", runDefinition={"script": "train.py", "arguments": []})
    record_run(folder, "sweep", "HD_1", runType="hyperdrive", runDefinition={"script": "train.py", "arguments": []})
    run = fresh_workspace.get_run("first_1")
    assert (type(run), run.experiment.name) == (Run, "first")
    assert type(fresh_workspace.get_run("HD_1")) is HyperDriveRun
    with pytest.raises(UserErrorException, match="No run"):
        fresh_workspace.get_run("absent")


def test_the_workspace_describes_itself(fresh_workspace):
    details = fresh_workspace.get_details()
    assert (details["name"], details["location"], details["sku"]) == ("offline-workspace", "local", fresh_workspace.sku)
    assert details["creationTime"] and fresh_workspace.tags == {}
    assert fresh_workspace.list("any") == {"offline-workspace": [fresh_workspace]}
    assert fresh_workspace.get_default_compute_target("CPU") is None
    with pytest.raises(ValueError):
        fresh_workspace.get_default_compute_target("TPU")
