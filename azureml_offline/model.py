"""The offline stand-in for azureml.core.Model: a registry of immutable, numbered model versions.

<workspace>/models/<name>/<version>/ holds model.json and files/, the registered file or folder.
A version is filled in a staging folder and then renamed into place, so it appears whole or
not at all, and two processes registering at once get distinct versions.
"""
import os
import shutil
from pathlib import Path

from azureml._model_management._util import model_name_validation
from azureml.exceptions import WebserviceException

from . import store


class Model:
    """A registered model version."""

    def __init__(self, workspace, name=None, id=None, *, version=None):
        if id:
            name, _, version = id.rpartition(":")
        if not name:
            raise WebserviceException("Error, one of id or name must be provided.")
        model_name_validation(name)  # the SDK's rule; it also keeps the name a plain folder name
        versions = store.numbers(workspace._root / "models" / name)
        version = int(version) if version else (versions[-1] if versions else None)
        if version not in versions:
            raise WebserviceException(f"ModelNotFound: Model with name {name}"
                                      f"{'' if version is None else f', version {version}'} not found in workspace")
        self.workspace = workspace
        self._folder = workspace._root / "models" / name / str(version)
        definition = store.read_json(self._folder / "model.json")
        self.name = name
        self.version = version
        self.id = f"{name}:{version}"
        self.tags = definition["tags"]
        self.properties = definition["properties"]
        self.description = definition["description"]
        self.model_framework = definition.get("framework")  # .get: versions registered before it was recorded
        self.model_framework_version = definition.get("frameworkVersion")
        self.created_time = definition["createdTime"]
        self.run_id = definition["runId"]
        self.experiment_name = definition["experimentName"]

    @staticmethod
    def register(workspace, model_path, model_name, tags=None, properties=None, description=None, *,
                 model_framework=None, model_framework_version=None):
        """Register the local file or folder model_path as the next version of model_name."""
        if not os.path.exists(model_path):
            raise WebserviceException(f'Error, provided model path "{model_path}" cannot be found')
        return Model._register(workspace, Path(model_path), model_name, tags, properties, description,
                               model_framework, model_framework_version)

    @staticmethod
    def _register(workspace, source, model_name, tags, properties, description, model_framework=None,
                  model_framework_version=None, run=None):
        """Copy the file or folder `source` into a new version of model_name, and return that version."""
        model_name_validation(model_name)
        if model_framework is None and model_framework_version is not None:
            raise WebserviceException("Model framework version cannot be provided without a valid framework")
        with store.staging_dir(workspace._root) as staged:
            (staged / "files").mkdir()
            copy = shutil.copytree if source.is_dir() else shutil.copyfile
            copy(source, staged / "files" / source.name)
            store.write_json(staged / "model.json", {
                "tags": dict(tags or {}), "properties": dict(properties or {}), "description": description,
                "framework": model_framework, "frameworkVersion": model_framework_version,
                "createdTime": store.utc_now(), "runId": run.id if run else None,
                "experimentName": run.experiment.name if run else None})
            version = store.publish(staged, workspace._root / "models" / model_name)
        return Model(workspace, model_name, version=version)

    @staticmethod
    def list(workspace, name=None, *, latest=False):
        """Registered versions, of all models or of `name`: by name, then newest first."""
        folder = workspace._root / "models"
        if name:
            names = [name]
        else:
            names = sorted(os.listdir(folder)) if folder.is_dir() else []
        models = []
        for each in names:
            newest_first = store.numbers(folder / each)[::-1]
            models += [Model(workspace, each, version=version) for version in newest_first[:1 if latest else None]]
        return models

    @staticmethod
    def deploy(workspace, name, models, inference_config=None, deployment_config=None, deployment_target=None,
               overwrite=False, show_output=False):
        """Run inference_config's entry script with `models` as a web service on this machine (webservice.py)."""
        if deployment_target is not None:
            raise WebserviceException("Offline, services deploy to this machine: deployment_target must be None")
        from .webservice import deploy
        return deploy(workspace, name, models, inference_config, deployment_config, overwrite)

    def download(self, target_dir=".", exist_ok=False):
        """Copy the model's file or folder into target_dir and return its path there."""
        (source,) = (self._folder / "files").iterdir()
        target = Path(target_dir) / source.name
        if target.exists() and not exist_ok:
            raise WebserviceException(f"File already exists. To overwrite, set exist_ok to True. {target}")
        Path(target_dir).mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)
        return str(target)

    def __repr__(self):
        return (f"Model(workspace={self.workspace!r}, name={self.name}, id={self.id}, version={self.version}, "
                f"tags={self.tags}, properties={self.properties})")
