"""The offline stand-in for azureml.core.Model: a registry of immutable, numbered model versions.

A version is filled in a staging folder and then renamed into place (Backend.register_model),
so it appears whole or not at all, and two processes registering at once get distinct versions.
"""

import os
import shutil
from pathlib import Path

from azureml._model_management._util import model_name_validation, populate_model_not_found_details
from azureml.core.model import Model as SdkModel
from azureml.core.resource_configuration import ResourceConfiguration
from azureml.core.run import Run as SdkRun
from azureml.exceptions import RunEnvironmentException, UserErrorException, WebserviceException
from dateutil.parser import parse as parse_time

from .azure_only import needs_azure
from .backend import backend_of


class Model:
    """A registered model version."""

    Framework = SdkModel.Framework  # the SDK's names of frameworks, for model_framework

    def __init__(
        self,
        workspace,
        name=None,
        id=None,
        tags=None,
        properties=None,
        version=None,
        run_id=None,
        model_framework=None,
        expand=True,
        **kwargs,
    ):
        """The model version `id` ("name:version"), or version `version` of model `name`, or the latest version
        of `name` that matches the filters (as Model.list takes them)."""
        wanted = {"name": name, "id": id, "tags": tags, "properties": properties, "version": version}
        if id:
            if not isinstance(id, str) or ":" not in id:
                raise WebserviceException(f"Error, model id {id!r} is not of the form <name>:<version>")
            name, _, version = id.rpartition(":")
        if not name:
            raise WebserviceException("Error, one of id or name must be provided.")
        validate_name(name)
        version = parse_version(version)
        backend = backend_of(workspace)
        if version is None:
            found = backend.models(name, tags, properties, run_id, latest=True, framework=model_framework)
        else:
            definition = backend.model(name, version) if version in backend.model_versions(name) else None
            found = [(name, version, definition)] if definition is not None else []
        if not found:
            raise WebserviceException(
                populate_model_not_found_details(**wanted, run_id=run_id, model_framework=model_framework)
            )
        self._load(workspace, *found[0], expand)

    def _load(self, workspace, name, version, definition, expand=True):
        """Set the SDK's attributes from `definition` (model.json, or what serialize() wrote); with `expand`, the
        run that registered it (as the SDK's), if its experiment still has it."""
        self.workspace = workspace
        self.name = name
        self.version = version
        self.id = f"{name}:{version}"
        self._read(definition)
        self.created_time = parse_time(definition["createdTime"]) if definition.get("createdTime") else None
        self.run_id = definition.get("runId")
        self.experiment_name = definition.get("experimentName")
        self.run = None
        if expand and self.run_id:
            try:
                self.run = workspace.get_run(self.run_id)
            except UserErrorException:  # its run was removed
                pass
        # What only Azure records: who registered it, its blob and data sets.
        self.created_by = self.mime_type = self.url = self.unpack = None
        self.parent_id = self.derived_model_ids = None
        self.datasets = {}
        self.sample_input_dataset = self.sample_output_dataset = None

    def _read(self, definition):
        """Set what can change after registration from the recorded `definition`."""
        self.tags = definition.get("tags", {})
        self.properties = definition.get("properties", {})
        self.description = definition.get("description")
        self.model_framework = definition.get("framework")  # .get: versions registered before it was recorded
        self.model_framework_version = definition.get("frameworkVersion")
        self.resource_configuration = ResourceConfiguration.deserialize(definition.get("resourceRequirements"))

    @staticmethod
    def register(
        workspace,
        model_path,
        model_name,
        tags=None,
        properties=None,
        description=None,
        datasets=None,
        model_framework=None,
        model_framework_version=None,
        child_paths=None,
        sample_input_dataset=None,
        sample_output_dataset=None,
        resource_configuration=None,
    ):
        """Register the local file or folder model_path (of a folder, only child_paths if given) as the next
        version of model_name."""
        validate_name(model_name)
        refuse_data_sets("Model.register", datasets, sample_input_dataset, sample_output_dataset)
        SdkModel._validate_model_path(model_path, child_paths)  # the SDK's checks, with its exceptions
        print(f"Registering model {model_name}")  # as the SDK prints it
        return register_version(
            workspace,
            Path(model_path),
            model_name,
            tags,
            properties,
            description,
            model_framework,
            model_framework_version,
            children=child_paths,
            resource_configuration=resource_configuration,
        )

    @staticmethod
    def list(
        workspace,
        name=None,
        tags=None,
        properties=None,
        run_id=None,
        latest=False,
        dataset_id=None,
        expand=True,
        page_count=255,
        model_framework=None,
    ):
        """The registered versions that match (see Backend.models), by name, then newest first."""
        if page_count and not 20 <= page_count <= 255:  # the SDK's check; offline every match is on one page
            raise UserErrorException(f"Expected page_count value is between 20 and 255. Provided: {page_count}")
        found = backend_of(workspace).models(name, tags, properties, run_id, latest, model_framework, dataset_id)
        models = []
        for each in found:
            model = Model.__new__(Model)
            model._load(workspace, *each, expand)
            models.append(model)
        return models

    def serialize(self):
        """This model as the SDK serializes it (a dict of JSON values)."""
        return {
            "createdTime": self.created_time.isoformat() if self.created_time else None,
            "createdBy": self.created_by,
            "description": self.description,
            "id": self.id,
            "mimeType": self.mime_type,
            "name": self.name,
            "framework": self.model_framework,
            "frameworkVersion": self.model_framework_version,
            "tags": self.tags,
            "properties": self.properties,
            "unpack": self.unpack,
            "url": self.url,
            "version": self.version,
            "experimentName": self.experiment_name,
            "runId": self.run_id,
            "runDetails": str(self.run),
            "datasets": [],
            "resourceConfiguration": self.resource_configuration.serialize() if self.resource_configuration else None,
            "sampleInputDatasetId": None,
            "sampleOutputDatasetId": None,
        }

    @staticmethod
    def deserialize(workspace, model_payload):
        """The Model that serialize() wrote, as the SDK rebuilds it: from the payload, not from the workspace."""
        model = Model.__new__(Model)
        model._load(workspace, model_payload["name"], model_payload["version"], model_payload, expand=False)
        return model

    def update(
        self,
        tags=None,
        description=None,
        sample_input_dataset=None,
        sample_output_dataset=None,
        resource_configuration=None,
    ):
        """Replace the model's tags (all of them), description and resource configuration, as the SDK does: only
        those given (not empty)."""
        refuse_data_sets("Model.update", sample_input_dataset, sample_output_dataset)
        resources = requirements(resource_configuration)
        self._read(backend_of(self).update_model(self.name, self.version, tags or None, description or None, resources))

    def update_tags_properties(self, add_tags=None, remove_tags=None, add_properties=None):
        """Add tags, remove tags and add properties; a property that is set cannot be changed, as on Azure."""
        if add_tags is None and remove_tags is None and add_properties is None:
            return
        # What the SDK prints, from this object's tags.
        for key in add_tags if isinstance(add_tags, dict) else {}:
            if key in self.tags:
                print(f"Replacing tag {key} -> {self.tags[key]} with {key} -> {add_tags[key]}")
        for key in remove_tags if isinstance(remove_tags, list) else [] if remove_tags is None else [remove_tags]:
            if key not in self.tags:
                print(f"Tag with key {key} not found.")
        definition = backend_of(self).update_model(
            self.name, self.version, add_tags=add_tags, remove_tags=remove_tags, add_properties=add_properties
        )
        self._read(definition)

    def add_tags(self, tags):
        self.update_tags_properties(add_tags=tags)
        print("Model tag add operation complete.")

    def remove_tags(self, tags):
        self.update_tags_properties(remove_tags=tags)
        print("Model tag remove operation complete.")

    def add_properties(self, properties):
        self.update_tags_properties(add_properties=properties)
        print("Model properties add operation complete.")

    def delete(self):
        """Delete this version from the workspace, unless a web service uses it (WebserviceException, as on Azure)."""
        backend_of(self).delete_model(self.name, self.version)

    print_configuration = staticmethod(SdkModel.print_configuration)  # the SDK's own: it prints what it is given

    add_dataset_references = needs_azure(
        SdkModel, "add_dataset_references", "there are no registered data sets", WebserviceException
    )
    get_sas_urls = needs_azure(
        SdkModel, "get_sas_urls", "download() or get_model_path() gives the model's files", WebserviceException
    )
    package = needs_azure(
        SdkModel, "package", "no image is built: deploy() serves the model from this Python", WebserviceException
    )
    profile = needs_azure(SdkModel, "profile", "time the service's run() on this machine instead", WebserviceException)

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
        if show_output:  # as the SDK's deploy does
            SdkModel.print_configuration(models, inference_config, deployment_config, deployment_target)
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
        return common_path(backend_of(workspace).model_entry(model.name, model.version))

    def download(self, target_dir=".", exist_ok=False, exists_ok=None):
        """Copy the model's file or folder into target_dir and return its path there."""
        if exists_ok is not None:  # the SDK's own check, which exist_ok's default of False always trips
            if exist_ok is not None:
                raise WebserviceException("Both exists_ok and exist_ok are set. Please use exist_ok only.")
            exist_ok = exists_ok
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
        return common_path(target)

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
    children=None,
    resource_configuration=None,
):
    """Copy the file or folder `source` (of a folder, only `children` if given) into a new version of model_name
    (of `run`, if given); its Model."""
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
        children=children,
        resources=requirements(resource_configuration),
    )
    return Model(workspace, model_name, version=version)


def common_path(path):
    """The path the SDK returns for a model's files at `path`: their common path, so that a folder holding one file
    gives that file."""
    files = [found for found in Path(path).rglob("*") if found.is_file()]
    return os.path.commonpath(files) if files else str(path)


def requirements(resource_configuration):
    """A ResourceConfiguration as Azure records it (resourceRequirements), checked as the SDK checks it."""
    if resource_configuration is None:
        return None
    resource_configuration._validate_configuration()
    return resource_configuration.serialize()


def refuse_data_sets(call, *data_sets):
    if any(data_sets):
        raise WebserviceException(
            f"{call}: data sets need an Azure ML workspace (offline there are none); "
            "leave out datasets, sample_input_dataset and sample_output_dataset"
        )


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
