"""Members of the SDK's classes that mean nothing on one machine (keys, private endpoints, Key Vault secrets,
portal URLs, packaging): offline each keeps the SDK's signature and raises the SDK's own exception, with one
line saying that it needs an Azure ML workspace and what to do instead, rather than an AttributeError.

    class Workspace:
        list_keys = needs_azure(sdk.Workspace, "list_keys", "no keys exist offline", WorkspaceException)
"""

import inspect

from azureml.exceptions import UserErrorException


def needs_azure(sdk_class, name, instead, error=UserErrorException):
    """A stand-in for member `name` of `sdk_class` (a method, static or class method, or property) that raises
    `error` saying that it needs Azure and, in `instead`, what to do offline."""
    member = inspect.getattr_static(sdk_class, name)
    message = f"{sdk_class.__name__}.{name} needs an Azure ML workspace; offline, {instead}"

    def refuse(*args, **kwargs):
        raise error(message)

    refuse.__name__ = name
    refuse.__qualname__ = f"{sdk_class.__name__}.{name}"
    refuse.__doc__ = message
    if isinstance(member, property):
        return property(refuse, doc=message)
    if isinstance(member, (staticmethod, classmethod)):
        refuse.__signature__ = inspect.signature(member.__func__)
        return type(member)(refuse)
    refuse.__signature__ = inspect.signature(member)
    return refuse
