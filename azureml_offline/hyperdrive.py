"""Sweeps offline: the SDK's HyperDriveConfig run on this machine, and the stand-in for its HyperDriveRun.

    python -m azureml_offline.hyperdrive <parent run folder> <submitter pid> <lock fd>

Experiment.submit(HyperDriveConfig) records the parent run (the snapshot, the sweep's settings) and starts
this module, the sweep's driver: a process of its own, like a run's runner. It samples hyperparameters
(sampling.py), submits each child as an ordinary run with its own runner, applies the early termination
policy to the primary metric the children log (policies.py), keeps max_concurrent_runs of them going with
the machine's cores shared out, and records the best child. Cancelling the parent, or the notebook's
kernel going away, cancels every child; were the driver itself killed, each child's runner sees its
parent gone and stops its script.
"""
import json
import os
import signal
import sys
import time
import uuid
import warnings

from azureml._common._error_definition.azureml_error import AzureMLError
from azureml.core.script_run_config import ScriptRunConfig
from azureml.exceptions import UserErrorException
from azureml.train.hyperdrive import HyperDriveConfig, PrimaryMetricGoal
from azureml.train.hyperdrive.error_definition import HyperDriveNotImplemented, InvalidComputeTarget, \
    InvalidConfigSetting, InvalidType
from azureml.train.hyperdrive.exceptions import HyperDriveConfigException, HyperDriveNotImplementedException, \
    HyperDriveScenarioNotSupportedException
from azureml.train.hyperdrive.policy import _policy_from_dict
from azureml.train.hyperdrive.run import HyperDriveRun as SdkHyperDriveRun
from azureml.train.hyperdrive.runconfig import MAX_DURATION_MINUTES
from azureml.train.hyperdrive.sampling import _sampling_from_dict

from . import estimators, policies, sampling, store
from .backend import SWEEP_LOG, RunFolder, WorkspaceFolder
from .compute import ComputeTarget
from .run import TERMINAL_STATES, Run, metric_values

POLL_SECONDS = 0.25
# Azure's documented limits (the SDK does not check them; the service refuses a sweep beyond them).
MAX_TOTAL_RUNS, MAX_CONCURRENT_RUNS = 1000, 100
# Each of a child's thread pools is sized by one of these: together, concurrent children use the machine's cores.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
BEST_CHILD_TABLE = "best_child_by_primary_metric"  # the parent's metric that the SDK reads the best child from


def submit(experiment, config, tags):
    """Experiment.submit(HyperDriveConfig): check it as the SDK and service do, record the parent run, start
    the driver; return the HyperDriveRun."""
    from .experiment import SWEEP_DRIVER, check_script_run_config, start  # experiment.py imports this module

    script_config = script_run_config(config)
    check_script_run_config(script_config)
    check(config, script_config)
    target = script_config.run_config.target
    ComputeTarget(experiment.workspace, target)  # raises ComputeTargetNotFound as Azure's submit does
    run_id = f"HD_{uuid.uuid4().hex}"  # Azure's: HD_<uuid4>; without hyphens offline, never mistaken for one
    settings = {
        "generator_config": config._generator_config,
        "policy_config": config._policy_config,
        "primary_metric_config": config._primary_metric_config,
        "max_total_runs": config._max_total_runs,
        "max_concurrent_runs": min(config._max_concurrent_runs, config._max_total_runs),
        "max_duration_minutes": min(config._max_duration_minutes, MAX_DURATION_MINUTES),  # as the SDK warned
    }
    folder, lock = experiment.workspace._backend.new_run(experiment.name, {
        "runId": run_id,
        "runType": SdkHyperDriveRun.RUN_TYPE,
        "target": target,
        "submitted": store.utc_now(),
        # What each child runs, before its hyperparameters are added to the arguments.
        "runDefinition": {"script": script_config.script,
                          "arguments": [str(argument) for argument in script_config.arguments or []],
                          "environment": script_config.run_config.environment.name},
        "hyperdrive": settings,
    }, tags, source=script_config.source_directory, properties={
        "primary_metric_config": json.dumps(config._primary_metric_config),
        "runTemplate": "HyperDrive",
        "azureml.runsource": "hyperdrive",
    })
    run = HyperDriveRun._open(experiment, folder)
    run._hyperdrive_config = config
    run._runner = start(folder, lock, SWEEP_DRIVER)
    what = "the estimator's image" if config.estimator is not None else \
        f"environment {script_config.run_config.environment.name!r}"
    print(f"Offline sweep {run_id}: up to {settings['max_total_runs']} runs of {script_config.script}, "
          f"{settings['max_concurrent_runs']} at a time on this machine; {what} is not built.")
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
        script_config.run_config, config._generator_config, True)
    script_config.arguments = script_config.run_config.arguments
    return script_config


def check(config, script_config):
    """The rules the SDK's search() and the HyperDrive service apply before a sweep starts."""
    target = script_config.run_config.target
    if target == "local":
        raise HyperDriveScenarioNotSupportedException._with_error(
            AzureMLError.create(InvalidComputeTarget, target="compute_target"))
    if config._resume_from or config._resume_child_runs:
        raise UserErrorException("Offline sweeps do not resume earlier sweeps (resume_from, resume_child_runs)")
    for name, value, most in (("max_total_runs", config._max_total_runs, MAX_TOTAL_RUNS),
                              ("max_concurrent_runs", config._max_concurrent_runs, MAX_CONCURRENT_RUNS)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise HyperDriveConfigException._with_error(
                AzureMLError.create(InvalidType, exp="int", obj=name, actual=repr(value), target=name))
        if not 1 <= value <= most:
            raise HyperDriveConfigException._with_error(
                AzureMLError.create(InvalidConfigSetting, obj=name, condition=f"a value between 1 and {most}",
                                    target=name))
    if not isinstance(config._max_duration_minutes, (int, float)) or config._max_duration_minutes <= 0:
        raise HyperDriveConfigException._with_error(
            AzureMLError.create(InvalidConfigSetting, obj="max_duration_minutes", condition="a positive number",
                                target="max_duration_minutes"))
    bandit = config._policy_config.get("properties") or {}
    if config._policy_config["name"] == "Bandit" and not (bandit.get("slack_factor") or bandit.get("slack_amount")):
        # BanditPolicy(slack_factor=0) passes the SDK's truthiness check but records neither slack.
        raise HyperDriveConfigException._with_error(
            AzureMLError.create(InvalidConfigSetting, obj="Bandit termination policy",
                                condition="exactly one of slack factor or slack amount to be set.",
                                target="slack_factor, slack_amount"))
    # The SDK's documentation of BayesianParameterSampling; its client does not check it, the service does.
    if config._generator_config["name"] == "BayesianOptimization" and config._policy_config["name"] != "Default":
        raise HyperDriveConfigException._with_error(
            AzureMLError.create(InvalidConfigSetting, obj="Bayesian sampling",
                                condition="no early termination policy (NoTerminationPolicy or None)",
                                target="policy"))


def open_run(experiment, folder):
    """The Run of `folder`: a HyperDriveRun for a sweep's parent."""
    is_sweep = folder.definition().get("runType") == SdkHyperDriveRun.RUN_TYPE
    return (HyperDriveRun if is_sweep else Run)._open(experiment, folder)


class HyperDriveRun(Run):
    """A sweep: the parent of its child runs. The SDK's own code answers the questions about its children."""

    _STREAMED = SWEEP_LOG

    def __init__(self, experiment, run_id, hyperdrive_config=None, **kwargs):
        if not isinstance(run_id, str):
            raise HyperDriveConfigException._with_error(
                AzureMLError.create(InvalidType, exp="str", obj="run_id", actual=repr(run_id), target="run_id"))
        super().__init__(experiment, run_id)
        if self._folder.definition().get("runType") != SdkHyperDriveRun.RUN_TYPE:
            raise UserErrorException(f"Run {run_id} is not a HyperDrive run (a sweep's parent)")
        self._hyperdrive_config = hyperdrive_config

    def _bind(self, experiment, folder):
        super()._bind(experiment, folder)
        self._hyperdrive_config = None

    @property
    def hyperdrive_config(self):
        """The HyperDriveConfig that was submitted, or one rebuilt from the sweep's record, as the SDK does."""
        if self._hyperdrive_config is None:
            settings = self._folder.definition()["hyperdrive"]
            self._hyperdrive_config = HyperDriveConfig(
                hyperparameter_sampling=_sampling_from_dict(settings["generator_config"]),
                primary_metric_name=settings["primary_metric_config"]["name"],
                primary_metric_goal=PrimaryMetricGoal.from_str(settings["primary_metric_config"]["goal"]),
                max_total_runs=settings["max_total_runs"], max_concurrent_runs=settings["max_concurrent_runs"],
                max_duration_minutes=settings["max_duration_minutes"],
                policy=_policy_from_dict(settings["policy_config"]), run_config=ScriptRunConfig("."))
        return self._hyperdrive_config

    # The SDK's methods, which use only the public Run API of this run and its children.
    get_hyperparameters = SdkHyperDriveRun.get_hyperparameters
    get_children_sorted_by_primary_metric = SdkHyperDriveRun.get_children_sorted_by_primary_metric
    _is_valid_childrun_tag = SdkHyperDriveRun._is_valid_childrun_tag
    _get_best_run_id_by_primary_metric = SdkHyperDriveRun._get_best_run_id_by_primary_metric

    def get_best_run_by_primary_metric(self, include_failed=True, include_canceled=True,
                                       include_resume_from_runs=True):
        """The child with the best primary metric: the one the sweep recorded once it ended, else the best by
        the children's metrics so far. None if no child (of those included) logged it; a warning says why."""
        best = self._recorded_best(include_failed, include_canceled)
        if best is None:
            run_id, _ = self._get_best_run_id_by_primary_metric(include_failed, include_canceled)
            best = Run(self._experiment, run_id) if run_id else None
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
        best = Run(self._experiment, last["run_id"])
        excluded = [status for status, included in (("Failed", include_failed), ("Canceled", include_canceled))
                    if not included]
        return None if best.get_status() in excluded else best

    def _why_no_best(self, include_failed, include_canceled):
        metric = self.hyperdrive_config._primary_metric_config["name"]
        children = list(self.get_children())
        if not children:
            return f"Sweep {self.id} has no child runs yet (status {self.get_status()}), so no best run."
        logged = sorted({name for child in children for name in child.get_metrics()})
        statuses = {}
        for child in children:
            statuses[child.get_status()] = statuses.get(child.get_status(), 0) + 1
        counts = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        if any(metric in child.get_metrics() for child in children):
            return (f"Every child of sweep {self.id} that logged the primary metric {metric!r} is excluded by "
                    f"include_failed={include_failed}, include_canceled={include_canceled} ({counts}).")
        return (f"No child run of sweep {self.id} logged the primary metric {metric!r} ({counts}), so there is no "
                f"best run. The children logged: {', '.join(logged) or 'nothing'}. primary_metric_name must be "
                "exactly the name the script passes to run.log(); a child that fails before logging it (see its "
                "get_details()['error']) counts for nothing.")

    def get_metrics(self):
        """The metrics of each child run, by run id, as the SDK's HyperDriveRun.get_metrics() returns them."""
        return {child.id: child.get_metrics() for child in self.get_children()}

    def get_diagnostics(self):
        raise HyperDriveNotImplementedException._with_error(
            AzureMLError.create(HyperDriveNotImplemented, feature="Get diagnostics"))

    def fail(self):
        raise HyperDriveNotImplementedException._with_error(AzureMLError.create(HyperDriveNotImplemented,
                                                                                feature="Fail"))


# The driver: one process per sweep.

class Child:
    """One child run as the driver follows it."""

    def __init__(self, index, run, parameters):
        self.index, self.run, self.parameters = index, run, parameters
        self.values = []  # of the primary metric, as logged
        self.evaluated = 0  # intervals the policy has looked at
        self.status = "Queued"
        self.stopped_by_policy = False

    @property
    def ended(self):
        return self.status in TERMINAL_STATES


class Sweep:
    """The sweep recorded in the parent run folder `folder`, driven to its end by run()."""

    def __init__(self, folder):
        from .experiment import Experiment  # the driver's own process: no import circle at run time
        from .workspace import Workspace

        workspace, experiment_name, _ = WorkspaceFolder.of_run(folder.path)
        self.experiment = Experiment(Workspace._at(workspace), experiment_name)
        self.parent = HyperDriveRun._open(self.experiment, folder)
        definition = folder.definition()
        self.settings = definition["hyperdrive"]
        self.template = definition["runDefinition"]
        metric = self.settings["primary_metric_config"]
        self.metric, self.maximize = metric["name"], metric["goal"] == "maximize"
        self.policy = self.settings["policy_config"]
        self.sampler = sampling.sampler(self.settings["generator_config"], metric["goal"])
        self.children = []
        self.best, self.best_value = None, None  # the Child with the best primary metric so far, and that value
        self.log_file = folder.sweep_log
        self.log_file.parent.mkdir(parents=True, exist_ok=True)

    def log(self, source, message):
        """An entry of the sweep's log, in HyperDrive's format."""
        store.append_line(self.log_file, f"<START>[{store.utc_now()}][{source}][INFO]{message}<END>")

    def run(self, stop_requested):
        """Start, watch and stop children until the sweep ends; return its final status record."""
        sampling_name = self.settings["generator_config"]["name"]
        space = self.settings["generator_config"]["parameter_space"]
        self.log("API", f"Sweep {self.parent.id}: {sampling_name} sampling of {', '.join(space)}; policy "
                        f"{self.policy['name']}; primary metric {self.metric} ({'maximize' if self.maximize else 'minimize'}); "
                        f"{self.settings['max_total_runs']} runs, {self.settings['max_concurrent_runs']} at a time")
        self.share_cores()
        deadline = time.monotonic() + 60 * self.settings["max_duration_minutes"]
        exhausted = False
        while True:
            if stop_requested():
                self.log("CONTROLLER", "The sweep was canceled: canceling its running children")
                self.stop_children()
                return {"status": "Canceled"}
            if time.monotonic() > deadline:
                self.log("CONTROLLER", f"max_duration_minutes ({self.settings['max_duration_minutes']}) reached: "
                                       "canceling the running children")
                self.stop_children()
                break
            self.watch()
            while not exhausted and self.running() < self.settings["max_concurrent_runs"] \
                    and len(self.children) < self.settings["max_total_runs"]:
                parameters = self.sampler.sample()
                if parameters is None:
                    exhausted = True
                    self.log("GENERATOR", f"All {len(self.children)} points of the grid are taken")
                else:
                    self.start_child(parameters)
            if not self.running() and (exhausted or len(self.children) >= self.settings["max_total_runs"]):
                break
            time.sleep(POLL_SECONDS)
        self.watch()
        return self.finish()

    def share_cores(self):
        """Concurrent children share this machine's cores: each gets cores // max_concurrent_runs threads."""
        cores = len(os.sched_getaffinity(0))
        threads = max(1, cores // self.settings["max_concurrent_runs"])
        os.environ.update({variable: str(threads) for variable in THREAD_VARIABLES})  # inherited by each child
        self.log("SCHEDULER", f"Each child runs {threads} thread(s) per pool ({', '.join(THREAD_VARIABLES)}): "
                              f"{cores} cores, {self.settings['max_concurrent_runs']} children at a time")

    def running(self):
        return sum(not child.ended for child in self.children)

    def start_child(self, parameters):
        """Submit child number len(children) with `parameters` appended to the script's arguments."""
        index = len(self.children)
        run_id = f"{self.parent.id}_{index}"
        arguments = []
        for name, value in parameters.items():
            arguments += [name if name.startswith("-") else f"--{name}", argument(value)]
        config = ScriptRunConfig(source_directory=str(self.parent._folder.snapshot), script=self.template["script"],
                                 arguments=self.template["arguments"])
        config.run_config.target = self.parent.get_details()["target"]
        config.run_config.environment.name = self.template["environment"]
        # The parent's tags hold each child's hyperparameters, which get_hyperparameters() reads, as on Azure.
        self.parent.tag(run_id, json.dumps(parameters))
        run = self.experiment._submit_script(config, None, run_id=run_id, parent_id=self.parent.id,
                                             arguments=arguments)
        self.children.append(Child(index, run, parameters))
        self.log("GENERATOR", f"{run_id}: {json.dumps(parameters)}")

    def watch(self):
        """Read each running child's status and primary metric; apply the policy to each new interval."""
        for child in self.children:
            if not child.ended:
                child.status = child.run.get_status()  # before the metrics: an ended run has logged all of them
                child.values = metric_values(child.run.get_metrics(self.metric).get(self.metric))
        histories = {child.run.id: child.values for child in self.children}
        for child in self.children:
            for interval in range(child.evaluated + 1, len(child.values) + 1):
                child.evaluated = interval
                reason = None if child.ended or child.stopped_by_policy else \
                    policies.reason_to_stop(self.policy, self.maximize, histories, child.run.id, interval)
                if reason:
                    child.stopped_by_policy = True
                    child.run._folder.request_cancel()  # its runner stops the script at once: Canceled
                    self.log("ENFORCER", f"Canceling {child.run.id} at interval {interval} "
                                         f"({self.policy['name']} policy): {reason}")
                    break
            if child.ended and child.run._runner is not None:
                child.run._runner.wait()  # it has written the status and is exiting: reap it
                child.run._runner = None
                self.sampler.tell(child.index, best_of(child.values, self.maximize))
                if child.status == "Failed":
                    error = child.run.get_details().get("error", {}).get("error", {}).get("message", "")
                    self.log("CONTROLLER", f"{child.run.id} Failed; the sweep goes on. {error}")
        self.record_best(final=False)

    def record_best(self, final):
        """Log the best child so far to the parent's BEST_CHILD_TABLE when it changes (and once, final)."""
        scored = [child for child in self.children if child.values]
        if not scored:
            return
        pick = max if self.maximize else min
        best = pick(scored, key=lambda child: best_of(child.values, self.maximize))
        value = best_of(best.values, self.maximize)
        if final or best is not self.best or value != self.best_value:
            self.best, self.best_value = best, value
            self.parent.log_row(BEST_CHILD_TABLE, metric_name=self.metric, timestamp=store.utc_now(),
                                run_id=best.run.id, metric_value=value, final=final)

    def stop_children(self):
        """Cancel every running child and wait until each has ended."""
        for child in self.children:
            if not child.ended:
                child.run._folder.request_cancel()
        for child in self.children:
            if not child.ended:
                child.run.cancel()  # waits for its runner to end it
                child.status = child.run.get_status()

    def finish(self):
        """Record the best child and end the sweep: Completed, or Failed if every child failed."""
        self.record_best(final=True)
        counts = {status: sum(child.status == status for child in self.children) for status in TERMINAL_STATES}
        by_policy = sum(child.stopped_by_policy and child.status == "Canceled" for child in self.children)
        summary = (f"{len(self.children)} child runs: {counts['Completed']} completed, {counts['Canceled']} canceled "
                   f"({by_policy} by the policy), {counts['Failed']} failed")
        if self.best is not None:
            self.parent.add_properties({"best_child_run_id": self.best.run.id, "score": str(self.best_value)})
            self.log("CONTROLLER", f"Best child run: {self.best.run.id}, {self.metric} {self.best_value:.4g}; "
                                   f"{summary}")
        else:
            self.log("CONTROLLER", f"No child logged {self.metric}; {summary}")
        if self.children and counts["Failed"] == len(self.children):
            first = self.children[0].run.get_details().get("error", {}).get("error", {}).get("message", "")
            return {"status": "Failed", "error": {"error": {
                "code": "UserError", "message": f"All {len(self.children)} child runs failed; the first: {first}"}}}
        return {"status": "Completed"}


def argument(value):
    """A hyperparameter as a command-line argument. Azure passes strings; an integral float (quniform's 64.0)
    was seen passed as '64', which a script's int argument accepts."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def best_of(values, maximize):
    return (max if maximize else min)(values) if values else None


def main(folder, submitter_pid):
    # Terminating the driver cancels the sweep, as terminating a runner cancels its run.
    signal.signal(signal.SIGTERM, lambda signum, frame: folder.request_cancel())
    status = {"status": "Running", "startTimeUtc": store.utc_now(), "runnerPid": os.getpid()}
    folder.write_status(status)
    sweep = None
    try:
        sweep = Sweep(folder)
        status.update(sweep.run(lambda: folder.cancel_requested() or os.getppid() != submitter_pid))
    except BaseException as error:  # a bug here must still end the sweep and its children
        status.update(status="Failed", error={"error": {"code": "SystemError", "message": f"sweep driver: {error!r}"}})
        if sweep is not None:
            sweep.stop_children()
    status["endTimeUtc"] = store.utc_now()
    folder.write_status(status)


if __name__ == "__main__":
    driver_lock = int(sys.argv[3])  # held, never used: it is closed when this process ends
    main(RunFolder(sys.argv[1]), int(sys.argv[2]))
