"""The run of the offline script this process belongs to: what Run.get_context() returns in it.

Called from the runner's sitecustomize (script_path/sitecustomize.py), the one binding of the script
side; the notebook side never imports this module.
"""

import os

from ..backend import open_run_folder
from ..experiment import Experiment
from ..run import SubmittedRun
from ..state.layout import RUN_DIR_VARIABLE
from ..workspace import workspace_at


def current_run():
    """The Run of the folder in RUN_DIR_VARIABLE, which the runner set for the script."""
    backend, experiment, folder = open_run_folder(os.environ[RUN_DIR_VARIABLE])
    return SubmittedRun(Experiment(workspace_at(backend), experiment), folder.run_id)
