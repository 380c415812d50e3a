"""The offline stand-in for azureml.core.Experiment: submits a ScriptRunConfig, an estimator or a sweep to run here."""

from azureml._base_sdk_common.common import check_valid_resource_name
from azureml.exceptions import UserErrorException

from . import estimators, hyperdrive
from .backend import backend_of
from .run import Run


class Experiment:
    """A named group of runs in the workspace folder."""

    def __init__(self, workspace, name):
        if not isinstance(name, str):
            raise UserErrorException(f"Experiment name must be a string, not {type(name).__name__}")
        check_valid_resource_name(name, "Experiment")  # the SDK's own rule; it also keeps the name a plain folder name
        self._workspace = workspace
        self._name = name
        backend_of(workspace).add_experiment(name)

    @property
    def name(self):
        return self._name

    @property
    def workspace(self):
        return self._workspace

    def submit(self, config, tags=None, **kwargs):
        """Start a run on this machine and return its Run at once.

        `config`: a ScriptRunConfig; an estimator (Chainer, PyTorch, Estimator ...: its entry script runs with its
        script_params); or a HyperDriveConfig (a sweep: its HyperDriveRun).
        """
        from azureml.train.hyperdrive import HyperDriveConfig  # loaded with azureml.core.run: no cost

        if tags is not None and not isinstance(tags, dict):
            raise UserErrorException(f"tags must be a dict, not {type(tags).__name__}")
        if isinstance(config, HyperDriveConfig):
            if kwargs:
                raise UserErrorException(f"Experiment.submit(HyperDriveConfig) takes no {sorted(kwargs)}")
            return hyperdrive.submit(self, config, tags)
        backend = backend_of(self)
        if estimators.is_estimator(config):
            image = estimators.image(config)
            folder = backend.submit_run(self._name, estimators.script_run_config(config, **kwargs), tags)
            print(
                f"Offline run {folder.run_id}: this Python runs {folder.definition()['runDefinition']['script']} "
                f"with the estimator's script_params; the image it names ({image}) is not built."
            )
            return Run(self, folder.run_id)
        if kwargs:
            raise UserErrorException(f"Experiment.submit(ScriptRunConfig) takes no {sorted(kwargs)}")
        folder = backend.submit_run(self._name, config, tags)
        processes = folder.process_count()
        how = f"mpiexec runs {processes} processes of" if processes else "this Python runs"
        print(
            f"Offline run {folder.run_id}: {how} {config.script}; environment "
            f"{config.run_config.environment.name!r} (its conda file and Docker image) is not built."
        )
        return Run(self, folder.run_id)

    def get_runs(self):
        """This experiment's runs, newest first (a sweep as a HyperDriveRun)."""
        return (hyperdrive.open_run(self, folder.run_id) for folder in backend_of(self).runs(self._name))

    def __eq__(self, other):
        return isinstance(other, Experiment) and (other._workspace, other._name) == (self._workspace, self._name)

    def __repr__(self):
        return f"Experiment(Name: {self._name},\nWorkspace: {self._workspace.name})"
