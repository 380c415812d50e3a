"""Sweeps offline: Experiment.submit(HyperDriveConfig), and the stand-in for the SDK's HyperDriveRun.

The SDK's HyperDriveConfig, samplings and policies are taken as they are. submit() checks the sweep as the
SDK and the service do, records the parent run (the snapshot, the sweep's settings) and starts the sweep's
driver (sweep.py), a process of its own like a run's runner, which runs the children.
"""

import collections
import json
import uuid
import warnings

from azureml._common._error_definition.azureml_error import AzureMLError
from azureml.core.script_run_config import ScriptRunConfig
from azureml.exceptions import UserErrorException
from azureml.train.hyperdrive import HyperDriveConfig, PrimaryMetricGoal
from azureml.train.hyperdrive.error_definition import (
    HyperDriveNotImplemented,
    InvalidComputeTarget,
    InvalidConfigSetting,
    InvalidType,
)
from azureml.train.hyperdrive.exceptions import (
    HyperDriveConfigException,
    HyperDriveNotImplementedException,
    HyperDriveScenarioNotSupportedException,
)
from azureml.train.hyperdrive.policy import _policy_from_dict
from azureml.train.hyperdrive.run import HyperDriveRun as SdkHyperDriveRun
from azureml.train.hyperdrive.runconfig import MAX_DURATION_MINUTES
from azureml.train.hyperdrive.sampling import _sampling_from_dict

from . import estimators
from .backend import backend_of
from .engine import launch, policies
from .run import Run
from .state.layout import BEST_CHILD_TABLE, TERMINAL_STATES, metric_values

# Azure's documented limits (the SDK does not check them; the service refuses a sweep beyond them).
MAX_TOTAL_RUNS, MAX_CONCURRENT_RUNS = 1000, 100


def submit(experiment, config, tags):
    """Experiment.submit(HyperDriveConfig): check it as the SDK and service do, record the parent run, start
    the driver; return the HyperDriveRun."""
    script_config = script_run_config(config)
    launch.check_script_run_config(script_config)
    check(config, script_config)
    run_id = f"HD_{uuid.uuid4().hex}"  # Azure's: HD_<uuid4>; without hyphens offline, never mistaken for one
    settings = {
        "generator_config": config._generator_config,
        "policy_config": config._policy_config,
        "primary_metric_config": config._primary_metric_config,
        "max_total_runs": config._max_total_runs,
        "max_concurrent_runs": min(config._max_concurrent_runs, config._max_total_runs),
        "max_duration_minutes": min(config._max_duration_minutes, MAX_DURATION_MINUTES),  # as the SDK warned
    }
    backend_of(experiment).submit_sweep(
        experiment.name,
        run_id,
        script_config,
        settings,
        tags,
        properties={
            "primary_metric_config": json.dumps(config._primary_metric_config),
            "runTemplate": "HyperDrive",
            "azureml.runsource": "hyperdrive",
        },
    )
    run = HyperDriveRun(experiment, run_id, config)
    what = (
        "the estimator's image"
        if config.estimator is not None
        else f"environment {script_config.run_config.environment.name!r}"
    )
    print(
        f"Offline sweep {run_id}: up to {settings['max_total_runs']} runs of {script_config.script}, "
        f"{settings['max_concurrent_runs']} at a time on this machine; {what} is not built."
    )
    return run


def script_run_config(config):
    """What each child runs: the config's ScriptRunConfig, or its estimator's (whose script_params that the
    sweep also sets are dropped, with the SDK's warning)."""
    if config.pipeline is not None:
        raise UserErrorException("Offline sweeps run a ScriptRunConfig or an estimator, not a pipeline")
    if config.estimator is None:
        return config.run_config
    script_config = estimators.script_run_config(config.estimator)
    script_config.run_config = HyperDriveConfig._remove_duplicate_arguments(
        script_config.run_config, config._generator_config, True
    )
    script_config.arguments = script_config.run_config.arguments
    return script_config


def check(config, script_config):
    """The rules the SDK's search() and the HyperDrive service apply before a sweep starts."""
    target = script_config.run_config.target
    if target == "local":
        raise HyperDriveScenarioNotSupportedException._with_error(
            AzureMLError.create(InvalidComputeTarget, target="compute_target")
        )
    if config._resume_from or config._resume_child_runs:
        raise UserErrorException("Offline sweeps do not resume earlier sweeps (resume_from, resume_child_runs)")
    for name, value, most in (
        ("max_total_runs", config._max_total_runs, MAX_TOTAL_RUNS),
        ("max_concurrent_runs", config._max_concurrent_runs, MAX_CONCURRENT_RUNS),
    ):
        if not isinstance(value, int) or isinstance(value, bool):
            raise HyperDriveConfigException._with_error(
                AzureMLError.create(InvalidType, exp="int", obj=name, actual=repr(value), target=name)
            )
        if not 1 <= value <= most:
            raise HyperDriveConfigException._with_error(
                AzureMLError.create(
                    InvalidConfigSetting, obj=name, condition=f"a value between 1 and {most}", target=name
                )
            )
    # `not > 0` refuses NaN too, which would otherwise be no limit at all.
    if not isinstance(config._max_duration_minutes, (int, float)) or not config._max_duration_minutes > 0:
        raise HyperDriveConfigException._with_error(
            AzureMLError.create(
                InvalidConfigSetting,
                obj="max_duration_minutes",
                condition="a positive number",
                target="max_duration_minutes",
            )
        )
    bandit = config._policy_config.get("properties") or {}
    if config._policy_config["name"] == "Bandit" and not (bandit.get("slack_factor") or bandit.get("slack_amount")):
        # BanditPolicy(slack_factor=0) passes the SDK's truthiness check but records neither slack.
        raise HyperDriveConfigException._with_error(
            AzureMLError.create(
                InvalidConfigSetting,
                obj="Bandit termination policy",
                condition="exactly one of slack factor or slack amount to be set.",
                target="slack_factor, slack_amount",
            )
        )
    # The SDK's documentation of BayesianParameterSampling; its client does not check it, the service does.
    if config._generator_config["name"] == "BayesianOptimization" and config._policy_config["name"] != "Default":
        raise HyperDriveConfigException._with_error(
            AzureMLError.create(
                InvalidConfigSetting,
                obj="Bayesian sampling",
                condition="no early termination policy (NoTerminationPolicy or None)",
                target="policy",
            )
        )


def open_run(experiment, run_id):
    """The Run of run `run_id`: a HyperDriveRun for a sweep's parent."""
    run = Run(experiment, run_id)
    return HyperDriveRun(experiment, run_id) if run.type == SdkHyperDriveRun.RUN_TYPE else run


class HyperDriveRun(Run):
    """A sweep: the parent of its child runs. The SDK's own code answers the questions about its children."""

    def __init__(self, experiment, run_id, hyperdrive_config=None, **kwargs):
        if not isinstance(run_id, str):
            raise HyperDriveConfigException._with_error(
                AzureMLError.create(InvalidType, exp="str", obj="run_id", actual=repr(run_id), target="run_id")
            )
        super().__init__(experiment, run_id)
        if self.type != SdkHyperDriveRun.RUN_TYPE:
            raise UserErrorException(f"Run {run_id} is not a HyperDrive run (a sweep's parent)")
        self._hyperdrive_config = hyperdrive_config

    @property
    def hyperdrive_config(self):
        """The HyperDriveConfig that was submitted, or one rebuilt from the sweep's record, as the SDK does."""
        if self._hyperdrive_config is None:
            settings = backend_of(self).run(self.experiment.name, self.id).definition()["hyperdrive"]
            self._hyperdrive_config = HyperDriveConfig(
                hyperparameter_sampling=_sampling_from_dict(settings["generator_config"]),
                primary_metric_name=settings["primary_metric_config"]["name"],
                primary_metric_goal=PrimaryMetricGoal.from_str(settings["primary_metric_config"]["goal"]),
                max_total_runs=settings["max_total_runs"],
                max_concurrent_runs=settings["max_concurrent_runs"],
                max_duration_minutes=settings["max_duration_minutes"],
                policy=_policy_from_dict(settings["policy_config"]),
                run_config=ScriptRunConfig("."),
            )
        return self._hyperdrive_config

    # The SDK's methods, which use only the public Run API of this run and its children.
    get_hyperparameters = SdkHyperDriveRun.get_hyperparameters
    _is_valid_childrun_tag = SdkHyperDriveRun._is_valid_childrun_tag
    _get_best_run_id_by_primary_metric = SdkHyperDriveRun._get_best_run_id_by_primary_metric

    def get_children_sorted_by_primary_metric(self, top=0, reverse=False, discard_no_metric=False):
        """The SDK's ranking (best first; children without the metric after the others, or left out), by each
        child's best finite value: the SDK's max() or min() would rank a child that logged NaN or infinity
        anywhere, so one that logged nothing else counts as one without the metric."""
        assert isinstance(top, int) and top >= 0, "Value of parameter top should be 0 or a positive integer"
        assert isinstance(reverse, bool), "Type of parameter reverse should be bool"
        assert isinstance(discard_no_metric, bool), "Type of parameter discard_no_metric should be bool"
        metric = self.hyperdrive_config._primary_metric_config
        maximize = metric["goal"] == PrimaryMetricGoal.MAXIMIZE.value.lower()
        hyperparameters = self.get_hyperparameters()
        ranked, unranked = [], []
        for child in self.get_children():
            values = policies.usable(metric_values(child.get_metrics(metric["name"]).get(metric["name"])))
            entry = {
                "run_id": child.id,
                "hyperparameters": hyperparameters.get(child.id),
                "best_primary_metric": policies.best_of(values, maximize),
                "status": child.get_status(),
            }
            (ranked if values else unranked).append(entry)
        ranked.sort(key=lambda entry: entry["best_primary_metric"], reverse=maximize != reverse)
        children = ranked if discard_no_metric else ranked + unranked
        return children[:top] if top else children

    def get_best_run_by_primary_metric(self, include_failed=True, include_canceled=True, include_resume_from_runs=True):
        """The child with the best primary metric: the one the sweep recorded once it ended, else the best by
        the children's metrics so far. None if no child (of those included) logged it; a warning says why."""
        best = self._recorded_best(include_failed, include_canceled)
        if best is None:
            run_id, _ = self._get_best_run_id_by_primary_metric(include_failed, include_canceled)
            best = Run(self.experiment, run_id) if run_id else None
        if best is None:
            warnings.warn(self._why_no_best(include_failed, include_canceled), UserWarning, stacklevel=2)
        return best

    def _recorded_best(self, include_failed, include_canceled):
        """The SDK reads the parent's table BEST_CHILD_TABLE first, and trusts it once the sweep has ended
        only if it is final."""
        table = Run.get_metrics(self, BEST_CHILD_TABLE).get(BEST_CHILD_TABLE)
        if not table:
            return None
        last = {column: values[-1] if isinstance(values, list) else values for column, values in table.items()}
        if not last["final"] and self.get_status() in TERMINAL_STATES:
            return None
        best = Run(self.experiment, last["run_id"])
        excluded = [
            status for status, included in (("Failed", include_failed), ("Canceled", include_canceled)) if not included
        ]
        return None if best.get_status() in excluded else best

    def _why_no_best(self, include_failed, include_canceled):
        metric = self.hyperdrive_config._primary_metric_config["name"]
        children = list(self.get_children())
        if not children:
            return f"Sweep {self.id} has no child runs yet (status {self.get_status()}), so no best run."
        metrics = [child.get_metrics() for child in children]
        logged = sorted({name for each in metrics for name in each})
        statuses = collections.Counter(child.get_status() for child in children)
        counts = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        if any(metric in each for each in metrics):
            return (
                f"Every child of sweep {self.id} that logged the primary metric {metric!r} is excluded by "
                f"include_failed={include_failed}, include_canceled={include_canceled} ({counts})."
            )
        return (
            f"No child run of sweep {self.id} logged the primary metric {metric!r} ({counts}), so there is no "
            f"best run. The children logged: {', '.join(logged) or 'nothing'}. primary_metric_name must be "
            "exactly the name the script passes to run.log(); a child that fails before logging it (see its "
            "get_details()['error']) counts for nothing."
        )

    def get_metrics(self):
        """The metrics of each child run, by run id, as the SDK's HyperDriveRun.get_metrics() returns them."""
        return {child.id: child.get_metrics() for child in self.get_children()}

    def get_diagnostics(self):
        raise HyperDriveNotImplementedException._with_error(
            AzureMLError.create(HyperDriveNotImplemented, feature="Get diagnostics")
        )

    def fail(self):
        raise HyperDriveNotImplementedException._with_error(
            AzureMLError.create(HyperDriveNotImplemented, feature="Fail")
        )
