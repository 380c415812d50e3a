"""The offline stand-in for azureml.core.Experiment: submits a ScriptRunConfig, an estimator or a sweep to run here."""
import sys
import time
import uuid
from pathlib import Path

from azureml._base_sdk_common.common import check_valid_resource_name
from azureml.exceptions import UserErrorException

from . import estimators, hyperdrive
from .engine import launch, mpi
from .state import files as store
from .compute import ComputeTarget
from .run import Run

RUNNER = [sys.executable, "-m", "azureml_offline.engine.runner"]  # + the run folder, this pid, the runner lock's fd


class Experiment:
    """A named group of runs in the workspace folder."""

    def __init__(self, workspace, name):
        if not isinstance(name, str):
            raise UserErrorException(f"Experiment name must be a string, not {type(name).__name__}")
        check_valid_resource_name(name, "Experiment")  # the SDK's own rule; it also keeps the name a plain folder name
        self._workspace = workspace
        self._name = name
        workspace._backend.add_experiment(name)

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
        if estimators.is_estimator(config):
            image = estimators.image(config)
            run = self._submit_script(estimators.script_run_config(config, **kwargs), tags)
            print(f"Offline run {run.id}: this Python runs {run._folder.definition()['runDefinition']['script']} with the "
                  f"estimator's script_params; the image it names ({image}) is not built.")
            return run
        if kwargs:
            raise UserErrorException(f"Experiment.submit(ScriptRunConfig) takes no {sorted(kwargs)}")
        run = self._submit_script(config, tags)
        processes = run._folder.process_count()
        how = f"mpiexec runs {processes} processes of" if processes else "this Python runs"
        print(f"Offline run {run.id}: {how} {config.script}; environment "
              f"{config.run_config.environment.name!r} (its conda file and Docker image) is not built.")
        return run

    def _submit_script(self, config, tags, run_id=None, parent_id=None, arguments=()):
        """Snapshot config.source_directory and start config.script in a runner process.

        A sweep's child has run_id and parent_id, and its hyperparameters as more `arguments`.
        """
        launch.check_script_run_config(config)
        mpi_job = distribution(config.run_config)
        if mpi_job:
            mpi.find_mpiexec()  # a clear error now, rather than a failed run
        target = config.run_config.target
        if target != "local":
            compute = ComputeTarget(self._workspace, target)  # raises ComputeTargetNotFound as Azure's submit does
            nodes = compute._max_nodes
            if config.run_config.node_count > nodes:
                raise UserErrorException(f"node_count {config.run_config.node_count} is more than the "
                                         f"{nodes} nodes of compute target {target!r}")
        definition = {
            "runId": run_id or f"{self._name}_{int(time.time())}_{uuid.uuid4().hex[:8]}",
            "target": target,
            "submitted": store.utc_now(),
            "runDefinition": {
                "script": config.script,
                # Azure passes every argument as a string; so does the runner.
                "arguments": [str(argument) for argument in [*(config.arguments or []), *arguments]],
                "environment": config.run_config.environment.name,
                **mpi_job,
            },
        }
        if parent_id:
            definition["parentRunId"] = parent_id
        folder, lock = self._workspace._backend.new_run(self._name, definition, tags,
                                                        source=Path(config.source_directory))
        run = Run._open(self, folder)
        run._runner = launch.start(folder, lock, RUNNER)
        return run

    def get_runs(self):
        """This experiment's runs, newest first (a sweep as a HyperDriveRun)."""
        return (hyperdrive.open_run(self, folder) for folder in self._workspace._backend.runs(self._name))

    def __eq__(self, other):
        return isinstance(other, Experiment) and (other._workspace, other._name) == (self._workspace, self._name)

    def __repr__(self):
        return f"Experiment(Name: {self._name},\nWorkspace: {self._workspace.name})"


def distribution(run_config):
    """What the run definition says of an MPI job, as Azure records it; {} for a one-process run.

    ScriptRunConfig(distributed_job_config=MpiConfiguration(...)) sets the communicator, node_count and mpi.
    """
    if run_config.communicator in (None, "None"):
        return {}
    if run_config.communicator not in ("IntelMpi", "OpenMpi"):
        raise UserErrorException(f"Offline runs support MpiConfiguration, not the {run_config.communicator} "
                                 f"communicator of {run_config.framework}")
    counts = {"node_count": run_config.node_count, "process_count_per_node": run_config.mpi.process_count_per_node}
    for name, count in counts.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise UserErrorException(f"MpiConfiguration {name} must be a positive integer, not {count!r}")
    return {"framework": run_config.framework, "communicator": run_config.communicator,
            "nodeCount": counts["node_count"], "mpi": {"processCountPerNode": counts["process_count_per_node"]}}
