"""The offline stand-in for azureml.core.Environment: the SDK's own Environment (so that ScriptRunConfig and
everything else accept it), whose workspace calls keep registered environments in the workspace folder.

Only `azureml.core.Environment` is replaced, not `azureml.core.environment.Environment`: the SDK's Environment calls
super() with its module's name for the class, which a subclass put there would break (RunConfiguration's
EnvironmentDefinition too). The SDK's factories build that module's class, so here they return this one.
"""

import functools
import logging

from azureml.core.environment import Environment as SdkEnvironment
from azureml.exceptions import UserErrorException

from .azure_only import needs_azure
from .backend import backend_of, is_curated

logger = logging.getLogger(__name__)
_told = set()  # the curated environments this process has said are not built


def offline(environment):
    """`environment`, built by the SDK's Environment, as this module's (its class changed in place, not copied)."""
    if type(environment) is SdkEnvironment:
        environment.__class__ = Environment
    return environment


def returns_offline(factory):
    """The SDK's `factory`, returning this module's Environment."""

    @functools.wraps(factory)
    def make(*args, **kwargs):
        return offline(factory(*args, **kwargs))

    return make


def from_definition(definition):
    """The Environment of a serialized one (the Backend's definitions)."""
    return offline(SdkEnvironment._deserialize_and_add_to_object(definition))


class Environment(SdkEnvironment):
    """An Environment whose workspace calls use the offline workspace; runs use this Python, built or not."""

    def register(self, workspace):
        """Register this environment: version 1, then a new version each time its definition changed (see
        Backend.register_environment). Returns the registered Environment."""
        if self.version is not None:
            logger.warning(
                "Environment version is set. Attempting to register desired version. "
                "To auto-version, reset version to None."
            )
        return from_definition(backend_of(workspace).register_environment(SdkEnvironment._serialize_to_dict(self)))

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
        return {name: from_definition(definition) for name, definition in backend_of(workspace).environments().items()}

    # The SDK's factories, returning this Environment, whose register() works offline.
    from_dockerfile = staticmethod(returns_offline(SdkEnvironment.from_dockerfile))
    from_docker_image = staticmethod(returns_offline(SdkEnvironment.from_docker_image))
    from_docker_build_context = staticmethod(returns_offline(SdkEnvironment.from_docker_build_context))
    from_conda_specification = staticmethod(returns_offline(SdkEnvironment.from_conda_specification))
    from_existing_conda_environment = staticmethod(returns_offline(SdkEnvironment.from_existing_conda_environment))
    from_pip_requirements = staticmethod(returns_offline(SdkEnvironment.from_pip_requirements))
    load_from_directory = staticmethod(returns_offline(SdkEnvironment.load_from_directory))
    clone = returns_offline(SdkEnvironment.clone)

    # Images and the workspace's storage: runs use this Python, and nothing is built.
    build = needs_azure(SdkEnvironment, "build", "no image is built: runs use this Python", UserErrorException)
    build_local = needs_azure(
        SdkEnvironment, "build_local", "runs use this Python: install the packages into it", UserErrorException
    )
    get_image_details = needs_azure(
        SdkEnvironment, "get_image_details", "no image is built: runs use this Python", UserErrorException
    )
    add_private_pip_wheel = needs_azure(
        SdkEnvironment, "add_private_pip_wheel", "pip install the wheel into this Python", UserErrorException
    )
