"""The offline stand-in for azureml.core.Experiment: submits a ScriptRunConfig, an estimator or a sweep to run here,
starts interactive runs, and keeps the experiment's tags and archived state."""

from azureml._base_sdk_common.common import check_valid_resource_name
from azureml._base_sdk_common.tracking import global_tracking_info_registry
from azureml._logging import ChainedIdentity
from azureml.core._docs import get_docs_url
from azureml.core.experiment import Experiment as SdkExperiment
from azureml.core.experiment import ViewType
from azureml.core.script_run_config import ScriptRunConfig
from azureml.exceptions import UserErrorException

from . import estimators, hyperdrive
from .azure_only import needs_azure
from .backend import backend_of
from .run import Run, start_logging
from .state.layout import HYPERDRIVE_RUN_TYPE

# A sweep's parent, when runs are listed, is a HyperDriveRun, as the SDK registers it.
Run.add_type_provider(HYPERDRIVE_RUN_TYPE, lambda experiment, dto: hyperdrive.HyperDriveRun(experiment, dto.run_id))


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
    def id(self):
        return backend_of(self).experiment_id(self._name)

    @property
    def workspace(self):
        return self._workspace

    @property
    def workspace_object(self):
        """Deprecated in the SDK for `workspace`."""
        return self._workspace

    @property
    def identity(self):
        """The SDK's logging identity of the experiment."""
        return f"Experiment{ChainedIdentity.DELIM}{self._name}"

    @property
    def tags(self):
        return backend_of(self).experiment(self._name)["tags"]

    def tag(self, key, value=None):
        self.set_tags({key: value})

    def set_tags(self, tags):
        """Add or change the experiment's tags ({name: value})."""
        backend_of(self).set_experiment_tags(self._name, tags)

    def remove_tags(self, tags):
        """Remove the experiment's tags named in the list `tags`."""
        backend_of(self).remove_experiment_tags(self._name, tags)

    @property
    def archived_time(self):
        """When the experiment was archived, or None while it is active."""
        return backend_of(self).experiment(self._name)["archivedTime"]

    def archive(self):
        """Archive the experiment: Experiment.list leaves it out unless asked for archived experiments."""
        backend_of(self).archive_experiment(self._name)

    def reactivate(self, new_name=None):
        if new_name is not None:
            raise UserErrorException(
                "Cannot rename an experiment. If the archived experiment name conflicts with an active experiment "
                "name, you can delete the active experiment before unarchiving this experiment."
            )
        backend_of(self).archive_experiment(self._name, archived=False)

    def refresh(self):
        """Offline every property is read from the workspace when asked for: nothing to refresh."""

    @staticmethod
    def list(workspace, experiment_name=None, view_type=ViewType.ActiveOnly, tags=None):
        """The workspace's experiments: those named experiment_name, if given; active, archived or all of them
        (view_type); with the tag name `tags`, or all of its {name: value} pairs."""
        names = backend_of(workspace).select_experiments(experiment_name, view_type, tags)
        return [Experiment(workspace, name) for name in names]

    @staticmethod
    def delete(workspace, experiment_id):
        """Delete the experiment with id `experiment_id` and its runs (which must have ended)."""
        backend_of(workspace).delete_experiment(experiment_id)

    def submit(self, config, tags=None, **kwargs):
        """Start a run on this machine and return its Run at once.

        `config`: a ScriptRunConfig; an estimator (Chainer, PyTorch, Estimator ...: its entry script runs with its
        script_params); or a HyperDriveConfig (a sweep: its HyperDriveRun). `run_id` and the SDK's internal
        `_parent_run_id` (Run.submit_child's) name the new run and its parent.
        """
        from azureml.train.hyperdrive import HyperDriveConfig  # loaded with azureml.core.run: no cost

        if tags is not None and not isinstance(tags, dict):
            raise UserErrorException(f"tags must be a dict, not {type(tags).__name__}")
        if isinstance(config, HyperDriveConfig):
            if kwargs:
                raise UserErrorException(f"Experiment.submit(HyperDriveConfig) takes no {sorted(kwargs)}")
            return hyperdrive.submit(self, config, tags)
        backend = backend_of(self)
        named = {"run_id": kwargs.pop("run_id", None), "parent_id": kwargs.pop("_parent_run_id", None)}
        if estimators.is_estimator(config):
            image = estimators.image(config)
            folder = backend.submit_run(self._name, estimators.script_run_config(config, **kwargs), tags, **named)
            print(
                f"Offline run {folder.run_id}: this Python runs {folder.definition()['runDefinition']['script']} "
                f"with the estimator's script_params; the image it names ({image}) is not built."
            )
            return Run(self, folder.run_id)
        if kwargs:
            raise UserErrorException(f"Experiment.submit(ScriptRunConfig) takes no {sorted(kwargs)}")
        # As the SDK's ScriptRunConfig submit: the source directory's git state as the run's properties.
        is_script_run = isinstance(config, ScriptRunConfig)  # else the backend says what it takes
        properties = global_tracking_info_registry.gather_all(config.source_directory) if is_script_run else None
        folder = backend.submit_run(self._name, config, tags, **named, properties=properties)
        processes = folder.process_count()
        how = f"mpiexec runs {processes} processes of" if processes else "this Python runs"
        print(
            f"Offline run {folder.run_id}: {how} {config.script}; environment "
            f"{config.run_config.environment.name!r} (its conda file and Docker image) is not built."
        )
        return Run(self, folder.run_id)

    def start_logging(self, *args, **kwargs):
        """An interactive run, Running at once in this process (run.start_logging: outputs, snapshot_directory,
        name, run_id, tags, display_name, description); `with experiment.start_logging() as run:` completes it
        at the end of the block, or fails it if the block raises."""
        return start_logging(self, *args, **kwargs)

    def get_runs(self, type=None, tags=None, properties=None, include_children=False):
        """This experiment's runs that match the filters, newest first (a sweep as a HyperDriveRun), as Run.list."""
        return Run.list(self, type=type, tags=tags, properties=properties, include_children=include_children)

    @classmethod
    def get_docs_url(cls):
        return get_docs_url(SdkExperiment)

    from_directory = needs_azure(
        SdkExperiment, "from_directory", "there is no project configuration: use Experiment(workspace, name)"
    )
    get_portal_url = needs_azure(SdkExperiment, "get_portal_url", "an experiment has no portal page: use get_runs()")
    portal_url = needs_azure(SdkExperiment, "portal_url", "an experiment has no portal page: use get_runs()")

    def __eq__(self, other):
        return isinstance(other, Experiment) and (other._workspace, other._name) == (self._workspace, self._name)

    def __repr__(self):
        return f"Experiment(Name: {self._name},\nWorkspace: {self._workspace.name})"
