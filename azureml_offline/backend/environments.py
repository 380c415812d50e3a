"""The Backend's registered environments: their versions and labels, and curated environments' names."""

import json

from azureml.exceptions import UserErrorException

from ..state import files

# Of curated environments' names (the SDK's Environment docstring), in any case: Microsoft's own notebooks get
# both "AzureML-TensorFlow-2.3-GPU" and "azureml-sklearn-1.5".
CURATED_PREFIXES = ("azureml", "microsoft")
VERSIONING = ("name", "version", "assetId")  # what registering sets in a serialized Environment


class EnvironmentRules:
    """The registered environments of the workspace folder `self.folder`."""

    def environments(self):
        """Name -> the definition of the latest version of each registered environment; a damaged one is left out,
        with a warning, so that it hides no other."""
        registered = [name for name in self.folder.environment_names() if self.folder.environment_versions(name)]
        return dict(files.skipping_damaged(registered, self.environment))  # each one's latest version

    def environment(self, name, version=None, label=None):
        """The definition (the SDK's serialized Environment) of environment `name`: version `version`, or the
        newest labelled `label`, or the latest. A curated environment (is_curated) that is not registered is its
        name alone, using this Python as it is: offline it is not built."""
        if version is not None and label is not None:
            raise UserErrorException("Only one of version or label can be specified")
        versions = self.folder.environment_versions(name)
        if label is not None:
            versions = [each for each in versions if label in self.folder.read_environment(name, each)["labels"]]
        elif version is not None:
            versions = [each for each in versions if str(each) == str(version)]
        if versions:
            return environment_definition(name, versions[-1], self.folder.read_environment(name, versions[-1]))
        if is_curated(name):
            return {"name": name, "version": version, "python": {"userManagedDependencies": True}}
        which = f"label {label}" if label is not None else f"version {version}" if version is not None else "any"
        raise UserErrorException(f"Environment {name} ({which}) not found in the offline workspace")

    def register_environment(self, definition):
        """Register an environment (the SDK's serialized Environment); its definition as registered, with its
        version. Versions are 1, 2, ...: a definition equal to the latest version's is that version, a changed
        one the next; a definition that names its version is that version, or a conflict if it differs."""
        name = definition["name"]
        if is_curated(name):
            raise UserErrorException(
                f"Environment name {name!r}: names that start with AzureML or Microsoft are reserved for "
                "curated environments"
            )
        requested = definition["version"]
        if requested is not None and not (isinstance(requested, str) and requested.isdigit() and int(requested)):
            raise UserErrorException(f"Environment version {requested!r}: offline, versions are 1, 2, ...")
        # As JSON reads it back, without what registering sets, so that definitions compare equal.
        content = {key: value for key, value in json.loads(json.dumps(definition)).items() if key not in VERSIONING}
        versions = self.folder.environment_versions(name)
        same = int(requested) if requested else versions[-1] if versions else None
        if same in versions:
            record = self.folder.read_environment(name, same)
            if record["environment"] == content:
                return environment_definition(name, same, record)
            if requested:
                raise UserErrorException(
                    f"Environment {name} version {requested} is registered with another definition: "
                    "to register a new version, set the environment's version to None"
                )
        record = {"environment": content, "labels": [], "registeredTime": files.utc_now()}
        version = self.folder.new_environment_version(name, record, int(requested) if requested else None)
        return environment_definition(name, version, record)

    def label_environment(self, name, version, labels):
        """Add `labels` (strings) to version `version` of environment `name`."""
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise UserErrorException(f"labels must be a list of strings, not {labels!r}")

        def change(record):
            return {**record, "labels": sorted({*record["labels"], *labels})}

        if self.folder.update_environment(name, version, change) is None:
            raise UserErrorException(f"Environment {name} (version {version}) not found in the offline workspace")


def is_curated(name):
    """Whether an environment name is a curated environment's: the SDK reserves these prefixes for them."""
    return name.casefold().startswith(CURATED_PREFIXES)


def environment_definition(name, version, record):
    """The serialized Environment of version `version` of environment `name`, from its `record`."""
    return {**record["environment"], "name": name, "version": str(version)}
