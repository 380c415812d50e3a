"""The run of the offline script this process belongs to: what Run.get_context() returns in it.

Called from the runner's sitecustomize (engine/script_path/sitecustomize.py), the one binding of the script
side; the notebook side never imports this module.
"""
import os

from ..experiment import Experiment
from ..run import Run
from ..state.layout import RUN_DIR_VARIABLE, WorkspaceFolder
from ..workspace import Workspace


def current_run():
    """The Run of the folder in RUN_DIR_VARIABLE, which the runner set for the script."""
    folder, experiment, number = WorkspaceFolder.of_run(os.environ[RUN_DIR_VARIABLE])
    experiment = Experiment(Workspace._at(folder), experiment)
    return Run._open(experiment, folder.run(experiment.name, number))
