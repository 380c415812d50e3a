"""In an offline run's script, and every Python process it starts: `Run.get_context()` returns that run.

Azure injects its run context into a job's Python; offline, the runner puts this folder first on the
script's PYTHONPATH. A sitecustomize because the script then runs exactly as `python script.py`, with
no wrapper, and its own Python subprocesses (workers, MPI ranks) inherit the binding through PYTHONPATH.
Python imports only the first sitecustomize on its path, so this one runs the one it hides, if any.
Only the standard library is imported here: the SDK, slow to import, is bound when the script imports
azureml.core.run, and the run is looked up (azureml_offline.engine.script_binding) when the script asks for it.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import os
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
    import azureml_offline.engine.script_binding  # here, not above: only a script that asks for its run pays for it

    return azureml_offline.engine.script_binding.current_run()


def _run_hidden_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


sys.meta_path.insert(0, _BindWhenImported())
_run_hidden_sitecustomize()
