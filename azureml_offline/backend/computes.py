"""The Backend's compute targets: their names' rule, and creating, reading and deleting their definitions."""

import re

from azureml.exceptions import ComputeTargetException, UserErrorException

# Azure's rule for compute names; it also keeps the name a plain file name.
COMPUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,15}")
RESERVED_NAMES = ("amlcompute", "local", "containerinstance")  # ComputeTarget.create's, in the SDK


def is_valid_compute_name(name):
    return isinstance(name, str) and COMPUTE_NAME.fullmatch(name) is not None


def compute_not_found(name):
    return ComputeTargetException(
        f"ComputeTargetNotFound: Compute Target with name {name} not found in provided workspace"
    )


class ComputeRules:
    """The compute targets of the workspace folder `self.folder`."""

    def compute_names(self):
        return self.folder.compute_names()

    def compute(self, name):
        """The definition of compute target `name`; ComputeTargetNotFound, as Azure's, if there is none."""
        definition = self.folder.read_compute(name) if is_valid_compute_name(name) else None
        if definition is None:
            raise compute_not_found(name)
        return definition

    def create_compute(self, name, definition):
        """Record compute target `name` (replacing one of that name, as Azure's create does)."""
        if name in RESERVED_NAMES:  # the SDK's own check
            raise UserErrorException(f"Please specify a different target name. {name} is a reserved name.")
        if not is_valid_compute_name(name):
            raise ComputeTargetException(
                f"Invalid compute name {name!r}: 2 to 16 letters, digits or hyphens, starting with a letter"
            )
        self.folder.write_compute(name, definition)

    def delete_compute(self, name):
        if not self.folder.delete_compute(name):
            raise compute_not_found(name)
