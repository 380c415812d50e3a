"""Offline workspace calls for the SDK's own Environment: registered environments kept in the workspace folder.

The switch puts the members of EnvironmentCalls on the SDK's Environment class itself (and takes them off again),
rather than a subclass in its place: the SDK's Environment.__init__ calls super() with its module's name for the
class, which a subclass put there would break, and RunConfiguration's EnvironmentDefinition subclasses it. So every
Environment works offline however it was imported (azureml.core or azureml.core.environment) or made (the SDK's
factories, clone(), an EnvironmentReference, one made before the switch was on).
"""

import logging

from azureml.core.environment import Environment
from azureml.exceptions import UserErrorException

from .azure_only import needs_azure
from .backend import backend_of, is_curated

logger = logging.getLogger(__name__)
_told = set()  # the curated environments this process has said are not built


def from_definition(definition):
    """The Environment of a serialized one (the Backend's definitions), or of a name alone, which is what earlier
    versions of this package recorded of a run's or a service's environment."""
    if isinstance(definition, str):
        return Environment(definition)
    return Environment._deserialize_and_add_to_object(definition)


def registered(workspace):
    """Name -> the latest version of each environment registered in `workspace`."""
    return {name: from_definition(definition) for name, definition in backend_of(workspace).environments().items()}


class EnvironmentCalls:
    """The SDK's Environment members that call the workspace, offline; a namespace for the switch, never built."""

    def register(self, workspace):
        """Register this environment: version 1, then a new version each time its definition changed (see
        Backend.register_environment). Returns the registered Environment."""
        if self.version is not None:
            logger.warning(
                "Environment version is set. Attempting to register desired version. "
                "To auto-version, reset version to None."
            )
        return from_definition(backend_of(workspace).register_environment(Environment._serialize_to_dict(self)))

    @staticmethod
    def label(workspace, name, version, labels):
        backend_of(workspace).label_environment(name, version, labels)

    @staticmethod
    def get(workspace, name, version=None, label=None):
        """A registered environment (the latest version, or `version`, or the newest labelled `label`); a curated
        one ("AzureML-...") by its name, not built: runs use this Python."""
        environment = from_definition(backend_of(workspace).environment(name, version, label))
        if is_curated(name) and name not in _told:
            _told.add(name)
            print(f"Environment {name!r} is curated by Azure ML: offline it is not built, and runs use this Python")
        return environment

    @staticmethod
    def list(workspace):
        """Name -> the latest version of each registered environment."""
        return registered(workspace)

    # Images and the workspace's storage: runs use this Python, and nothing is built.
    build = needs_azure(Environment, "build", "no image is built: runs use this Python", UserErrorException)
    build_local = needs_azure(
        Environment, "build_local", "runs use this Python: install the packages into it", UserErrorException
    )
    get_image_details = needs_azure(
        Environment, "get_image_details", "no image is built: runs use this Python", UserErrorException
    )
    add_private_pip_wheel = needs_azure(
        Environment, "add_private_pip_wheel", "pip install the wheel into this Python", UserErrorException
    )
