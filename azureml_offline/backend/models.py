"""The Backend's registered models: registering, querying, updating and deleting their versions."""

import functools
import json

from azureml._model_management._util import model_name_validation, populate_model_not_found_details
from azureml.exceptions import UserErrorException, WebserviceException

from ..state import files


class ModelRules:
    """The models of the workspace folder `self.folder`; a model that a web service uses (ServiceRules) is kept."""

    def model_names(self):
        return self.folder.model_names()

    def model_versions(self, name):
        return self.folder.model_versions(name)

    def model(self, name, version):
        """What was recorded of version `version` of model `name` (model.json), or None."""
        return self.folder.read_model(name, version)

    def model_entry(self, name, version):
        """The registered file or folder of the model version."""
        return self.folder.model_entry(name, version)

    def register_model(
        self,
        name,
        source,
        tags=None,
        properties=None,
        description=None,
        framework=None,
        framework_version=None,
        run_id=None,
        experiment=None,
        children=None,
        resources=None,
    ):
        """Copy the file or folder `source` (of a folder, only the files or folders `children` in it, if given)
        into the next version of model `name`; return the version. `resources`: its resourceRequirements."""
        if not isinstance(name, str):
            raise WebserviceException(f"Error, model name must be a string, not {type(name).__name__}")
        model_name_validation(name)  # the SDK's rule; it also keeps the name a plain folder name
        if framework is None and framework_version is not None:
            raise WebserviceException("Model framework version cannot be provided without a valid framework")
        for what, value in (("tags", tags), ("properties", properties)):
            if value is not None and not isinstance(value, dict):
                raise WebserviceException(f"Error, {what} must be a dict, not {type(value).__name__}")
        # As the SDK's _register_with_asset: a value JSON cannot write (a NumPy number) is its TypeError.
        tags, properties = (json.loads(json.dumps(value or {})) for value in (tags, properties))
        return self.folder.new_model_version(
            name,
            source,
            {
                "tags": tags,
                "properties": properties,
                "description": description,
                "framework": framework,
                "frameworkVersion": framework_version,
                "createdTime": files.utc_now(),
                "runId": run_id,
                "experimentName": experiment,
                "resourceRequirements": resources,
            },
            children,
        )

    def models(self, name=None, tags=None, properties=None, run_id=None, latest=False, framework=None, dataset_id=None):
        """(name, version, definition) of the registered versions that match, by name and newest first, as Azure's
        model query answers: `tags` and `properties` are lists of keys or [key, value] pairs, all of which must
        match; `latest`, only the newest match of each name. A damaged version is left out with a warning, so
        that it hides no other. No model has data sets offline, so none matches a `dataset_id`."""
        for what, wanted in (("tags", tags), ("properties", properties)):
            check_filter(what, wanted)
        found = []
        for each in [name] if name else self.model_names():
            versions = files.skipping_damaged(self.model_versions(each)[::-1], functools.partial(self.model, each))
            for version, definition in versions:
                if (
                    definition is not None
                    and has_all(definition.get("tags", {}), tags)
                    and has_all(definition.get("properties", {}), properties)
                    and run_id in (None, definition.get("runId"))
                    and framework in (None, definition.get("framework"))
                    and dataset_id is None
                ):
                    found.append((each, version, definition))
                    if latest:
                        break
        return found

    def update_model(
        self,
        name,
        version,
        tags=None,
        description=None,
        resources=None,
        add_tags=None,
        remove_tags=None,
        add_properties=None,
    ):
        """Change a model version's tags, properties, description and resource requirements as the SDK's update()
        (`tags` replace them all, the others replace theirs) and update_tags_properties() (the add_ and remove_
        ones) do; its new definition.
        Properties can be added, never changed, as on Azure."""
        for what, value in (("tags", tags), ("add_tags", add_tags), ("add_properties", add_properties)):
            if value is not None and not isinstance(value, dict):
                raise WebserviceException(f"Error, {what} must be a dict, not {type(value).__name__}")
        removed = [remove_tags] if remove_tags is not None and not isinstance(remove_tags, list) else remove_tags

        def change(definition):
            recorded = definition.get("properties", {})  # .get: as versions registered before it was recorded
            taken = [key for key in add_properties or {} if key in recorded]
            if taken:  # the SDK's check_duplicate_properties, against what is recorded
                raise WebserviceException(
                    "Error, properties are immutable, the following keys cannot be added/modified: " + ",".join(taken)
                )
            new_tags = {**(tags or definition.get("tags", {})), **(add_tags or {})}
            return {
                **definition,
                "tags": {key: value for key, value in new_tags.items() if key not in (removed or [])},
                "properties": {**recorded, **(add_properties or {})},
                "description": description or definition.get("description"),
                "resourceRequirements": resources or definition.get("resourceRequirements"),
            }

        definition = self.folder.update_model(name, version, change)
        if definition is None:
            raise model_not_found(name, version)
        return definition

    def delete_model(self, name, version):
        """Delete a model version, unless a web service uses it (as on Azure, where its image does)."""
        model_id = f"{name}:{version}"
        users = [
            service
            for service in self.service_names()
            if model_id in (self.service_definition(service) or {}).get("modelIds", [])
        ]
        if users:
            raise WebserviceException(
                "The model cannot be deleted because it is currently being used in one or more images. "
                f"Offline, the web services {', '.join(users)} use {model_id}: delete them first."
            )
        if not self.folder.remove_model_version(name, version):
            raise model_not_found(name, version)


def check_filter(what, wanted):
    """Refuse a filter of Model.list that is not the SDK's: a list of keys and [key, value] pairs."""
    if wanted is None:
        return
    if not isinstance(wanted, list) or not all(
        isinstance(entry, str) or (isinstance(entry, list) and len(entry) == 2) for entry in wanted
    ):
        raise UserErrorException(
            f'Expected {what} must be list type. Ex. ["key", ["key2", "key2 value"]]: provided {wanted!r}'
        )


def has_all(recorded, wanted):
    """Whether dict `recorded` has each of `wanted` (keys, or [key, value] pairs: values compare as the text
    that Azure's query sends)."""
    for entry in wanted or []:
        key, value = (entry, None) if isinstance(entry, str) else entry
        if key not in recorded or (value is not None and str(recorded[key]) != str(value)):
            return False
    return True


def model_not_found(name, version):
    return WebserviceException(populate_model_not_found_details(name=name, version=version))
