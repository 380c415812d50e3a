"""The script side of an offline run: the SDK in the script, and in every Python process it starts, is the
offline workspace's, as a job's SDK on Azure is its workspace's. Run.get_context() returns the run, and the
stand-ins answer the SDK calls that the script makes with its run's workspace (run.experiment.workspace), such
as Model.register.

Called from the runner's sitecustomize (script_path/sitecustomize.py) when the script imports azureml.core;
the notebook side never imports this module.
"""

import os

from azureml.core.run import Run as SdkRun

import azureml_offline

from ..backend import open_run_folder
from ..experiment import Experiment
from ..run import SubmittedRun
from ..state.layout import RUN_DIR_VARIABLE
from ..workspace import workspace_at


def bind():
    """Bind the SDK's Run.get_context to the run, and switch the stand-ins on (but the notebook's live view)."""
    SdkRun.get_context = classmethod(lambda cls, *args, **kwargs: current_run())
    azureml_offline.activate(live_view=False)


def current_run():
    """The Run of the folder in RUN_DIR_VARIABLE, which the runner set for the script."""
    backend, experiment, folder = open_run_folder(os.environ[RUN_DIR_VARIABLE])
    return SubmittedRun(Experiment(workspace_at(backend), experiment), folder.run_id)
