"""In an offline run's script: make the SDK's `Run.get_context()` return that run.

Azure injects its run context into a job's Python; offline, the runner puts a sitecustomize
on the script's PYTHONPATH that calls bind_run_context(). The SDK is not imported here (that
would slow every start-up): the binding happens when the script itself imports azureml.core.run.
"""
import importlib.abc
import importlib.machinery
import sys


class _BindWhenImported(importlib.abc.MetaPathFinder):
    """Finds azureml.core.run as usual, and replaces Run.get_context once the module has run."""

    def find_spec(self, name, path=None, target=None):
        if name != "azureml.core.run":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            module.Run.get_context = classmethod(_offline_context)

        spec.loader.exec_module = exec_module
        return spec


def _offline_context(cls, allow_offline=True, used_for_context_manager=False, **kwargs):
    from .run import Run
    return Run.get_context()


def bind_run_context():
    sys.meta_path.insert(0, _BindWhenImported())
