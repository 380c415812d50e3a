"""The offline stand-in for azureml.core.Model: a registry of immutable, numbered model versions.

A version is filled in a staging folder and then renamed into place (Backend.register_model),
so it appears whole or not at all, and two processes registering at once get distinct versions.
"""

import os
import shutil
import warnings
from pathlib import Path

from azureml._model_management._util import model_name_validation
from azureml.core.model import Model as SdkModel
from azureml.core.run import Run as SdkRun
from azureml.exceptions import RunEnvironmentException, WebserviceException

from .backend import backend_of
from .state import files


class Model:
    """A registered model version."""

    def __init__(self, workspace, name=None, id=None, *, version=None):
        if id:
            if not isinstance(id, str) or ":" not in id:
                raise WebserviceException(f"Error, model id {id!r} is not of the form <name>:<version>")
            name, _, version = id.rpartition(":")
        if not name:
            raise WebserviceException("Error, one of id or name must be provided.")
        validate_name(name)
        version = parse_version(version)
        backend = backend_of(workspace)
        versions = backend.model_versions(name)
        version = version if version is not None else (versions[-1] if versions else None)
        if version not in versions:
            raise WebserviceException(
                f"ModelNotFound: Model with name {name}"
                f"{'' if version is None else f', version {version}'} not found in workspace"
            )
        definition = backend.model(name, version)
        if definition is None:
            raise WebserviceException(
                f"ModelNotFound: Model with name {name}, version {version} not found in workspace"
            )
        self.workspace = workspace
        self.name = name
        self.version = version
        self.id = f"{name}:{version}"
        self.tags = definition.get("tags", {})
        self.properties = definition.get("properties", {})
        self.description = definition.get("description")
        self.model_framework = definition.get("framework")  # .get: versions registered before it was recorded
        self.model_framework_version = definition.get("frameworkVersion")
        self.created_time = definition.get("createdTime")
        self.run_id = definition.get("runId")
        self.experiment_name = definition.get("experimentName")

    @staticmethod
    def register(
        workspace,
        model_path,
        model_name,
        tags=None,
        properties=None,
        description=None,
        *,
        model_framework=None,
        model_framework_version=None,
    ):
        """Register the local file or folder model_path as the next version of model_name."""
        if not isinstance(model_path, (str, os.PathLike)) or not os.path.exists(model_path):
            raise WebserviceException(f'Error, provided model path "{model_path}" cannot be found')
        return register_version(
            workspace,
            Path(model_path),
            model_name,
            tags,
            properties,
            description,
            model_framework,
            model_framework_version,
        )

    @staticmethod
    def list(workspace, name=None, *, latest=False):
        """Registered versions, of all models or of `name`: by name, then newest first."""
        models = []
        backend = backend_of(workspace)
        for each in [name] if name else backend.model_names():
            for version in backend.model_versions(each)[::-1]:
                try:
                    models.append(Model(workspace, each, version=version))
                except files.DamagedFile as error:  # one damaged version hides no other
                    warnings.warn(str(error), files.DamagedRecordWarning, stacklevel=2)
                    continue
                if latest:
                    break
        return models

    @staticmethod
    def deploy(
        workspace,
        name,
        models,
        inference_config=None,
        deployment_config=None,
        deployment_target=None,
        overwrite=False,
        show_output=False,
    ):
        """Run inference_config's entry script with `models` as a web service on this machine (webservice.py)."""
        if deployment_target is not None:
            raise WebserviceException("Offline, services deploy to this machine: deployment_target must be None")
        from .webservice import deploy

        return deploy(workspace, name, models, inference_config, deployment_config, overwrite)

    @staticmethod
    def get_model_path(model_name, version=None, _workspace=None):
        """The path of the registered file or folder of model_name (its latest version, or `version`).

        As in the SDK, the workspace is _workspace, else the current run's; with neither, the SDK's own
        search of the local cache (azureml-models/<name>/<version>/, then ./<name>) answers. A model
        of the offline workspace is read in place, not copied: do not write to it.
        """
        if version is not None and not isinstance(version, int):
            raise WebserviceException("version should be an int")
        workspace = _workspace
        if workspace is None:
            try:
                workspace = SdkRun.get_context(allow_offline=False).experiment.workspace
            except RunEnvironmentException:
                return SdkModel._get_model_path_local(model_name, version)
        model = Model(workspace, model_name, version=version)
        return str(backend_of(workspace).model_entry(model.name, model.version))

    def download(self, target_dir=".", exist_ok=False):
        """Copy the model's file or folder into target_dir and return its path there."""
        source = backend_of(self).model_entry(self.name, self.version)
        target = Path(target_dir) / source.name
        if target.exists() and not exist_ok:
            raise WebserviceException(f"File already exists. To overwrite, set exist_ok to True. {target}")
        try:
            Path(target_dir).mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(source, target)
        except OSError as error:
            raise WebserviceException(f"Error, cannot download model {self.id} to {target}: {error}") from None
        return str(target)

    def __repr__(self):
        return (
            f"Model(workspace={self.workspace!r}, name={self.name}, id={self.id}, version={self.version}, "
            f"tags={self.tags}, properties={self.properties})"
        )


def register_version(
    workspace,
    source,
    model_name,
    tags,
    properties,
    description,
    model_framework=None,
    model_framework_version=None,
    run=None,
):
    """Copy the file or folder `source` into a new version of model_name (of `run`, if given); its Model."""
    version = backend_of(workspace).register_model(
        model_name,
        source,
        tags,
        properties,
        description,
        model_framework,
        model_framework_version,
        run_id=run.id if run else None,
        experiment=run.experiment.name if run else None,
    )
    return Model(workspace, model_name, version=version)


def validate_name(name):
    if not isinstance(name, str):
        raise WebserviceException(f"Error, model name must be a string, not {type(name).__name__}")
    model_name_validation(name)  # the SDK's rule; it also keeps the name a plain folder name


def parse_version(version):
    """A version number from an int or its string (e.g. from an id), None for the latest; else WebserviceException."""
    if version is None or version == "":
        return None
    try:
        number = int(version)
    except (TypeError, ValueError):
        number = 0
    if isinstance(version, (bool, float)) or number < 1 or str(number) != str(version).strip():
        raise WebserviceException(f"Error, model version {version!r} is not a version number (1, 2, ...)")
    return number
