"""In an offline run's script, and every Python process it starts: `Run.get_context()` returns that run.

Azure injects its run context into a job's Python; offline, the runner puts this folder first on the
script's PYTHONPATH. A sitecustomize because the script then runs exactly as `python script.py`, with
no wrapper, and its own Python subprocesses (workers, MPI ranks) inherit the binding through PYTHONPATH.
Python imports only the first sitecustomize on its path, so this one runs the one it hides, if any.
Only the standard library is imported here: the SDK, slow to import, is bound when the script imports
azureml.core (azureml_offline.engine.script_binding), and the run is looked up when the script asks for it.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys


class _BindWhenImported(importlib.abc.MetaPathFinder):
    """Finds azureml.core as usual, and binds the script to its offline run once the package has run."""

    def find_spec(self, name, path=None, target=None):
        if name != "azureml.core":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            import azureml_offline.engine.script_binding  # here, not above: only a script that uses the SDK pays

            azureml_offline.engine.script_binding.bind()

        spec.loader.exec_module = exec_module
        return spec


def _run_hidden_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


sys.meta_path.insert(0, _BindWhenImported())
_run_hidden_sitecustomize()
