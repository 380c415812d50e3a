"""A sweep's driver: `python -m azureml_offline.engine.sweep <parent run folder> <submitter pid> <lock fd>`.

One process per sweep, started by Backend.submit_sweep(), like a run's runner. It samples hyperparameters
(sampling.py), submits each child to the backend as an ordinary run with its own runner, applies the early termination
policy to the primary metric the children log (policies.py), keeps max_concurrent_runs of them going with
the machine's cores shared out, and records the best child. Cancelling the parent, or the notebook's
kernel going away, cancels every child; were the driver itself killed, each child's runner sees its
parent gone and stops its script.
"""

import json
import os
import time

from azureml.core.environment import Environment
from azureml.core.script_run_config import ScriptRunConfig

from ..backend import open_run_folder
from ..state import files
from ..state.layout import BEST_CHILD_TABLE, TERMINAL_STATES, run_error
from . import driver, policies, processes, sampling
from .policies import best_of
from .processes import THREAD_VARIABLES

POLL_SECONDS = 0.25


class Child:
    """One child run as the driver follows it."""

    def __init__(self, index, folder, parameters):
        self.index, self.folder, self.parameters = index, folder, parameters
        self.run_id = folder.run_id
        self.values = []  # of the primary metric, as logged
        self.evaluated = 0  # intervals the policy has looked at
        self.status = "Queued"
        self.stopped_by_policy = False
        self.told = False  # whether the sampler has been told how it ended

    @property
    def ended(self):
        return self.status in TERMINAL_STATES


class Sweep:
    """The sweep recorded in the parent run folder `folder`, driven to its end by run()."""

    def __init__(self, folder):
        self.backend, self.experiment, _ = open_run_folder(folder.path)
        self.parent = folder
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
        files.append_line(self.log_file, f"<START>[{files.utc_now()}][{source}][INFO]{message}<END>")

    def run(self, stop_requested):
        """Start, watch and stop children until the sweep ends; return its final status record."""
        sampling_name = self.settings["generator_config"]["name"]
        space = self.settings["generator_config"]["parameter_space"]
        self.log(
            "API",
            f"Sweep {self.parent.run_id}: {sampling_name} sampling of {', '.join(space)}; policy "
            f"{self.policy['name']}; primary metric {self.metric} ({'maximize' if self.maximize else 'minimize'}); "
            f"{self.settings['max_total_runs']} runs, {self.settings['max_concurrent_runs']} at a time",
        )
        self.share_cores()
        deadline = time.monotonic() + 60 * self.settings["max_duration_minutes"]
        exhausted = False
        while True:
            if stop_requested():
                self.log("CONTROLLER", "The sweep was canceled: canceling its running children")
                self.stop_children()
                return {"status": "Canceled"}
            if time.monotonic() > deadline:
                self.log(
                    "CONTROLLER",
                    f"max_duration_minutes ({self.settings['max_duration_minutes']}) reached: "
                    "canceling the running children",
                )
                self.stop_children()
                break
            self.watch()
            while (
                not exhausted
                and self.running() < self.settings["max_concurrent_runs"]
                and len(self.children) < self.settings["max_total_runs"]
            ):
                parameters = self.sampler.sample()
                if parameters is None:
                    exhausted = True
                    self.log("GENERATOR", f"All {len(self.children)} points of the grid are taken")
                else:
                    self.start_child(parameters)
            if not self.running() and (exhausted or len(self.children) >= self.settings["max_total_runs"]):
                break
            self.backend.wait_for_end([child.folder for child in self.children if not child.ended], POLL_SECONDS)
        self.watch()
        return self.finish()

    def share_cores(self):
        """Concurrent children share this machine's cores: each gets cores // max_concurrent_runs threads."""
        cores = len(os.sched_getaffinity(0))
        threads = processes.thread_environment(self.settings["max_concurrent_runs"], cores)
        os.environ.update(threads)  # inherited by each child
        self.log(
            "SCHEDULER",
            f"Each child runs {threads[THREAD_VARIABLES[0]]} thread(s) per pool "
            f"({', '.join(THREAD_VARIABLES)}): {cores} cores, "
            f"{self.settings['max_concurrent_runs']} children at a time",
        )

    def running(self):
        return sum(not child.ended for child in self.children)

    def start_child(self, parameters):
        """Submit child number len(children) with `parameters` appended to the script's arguments."""
        index = len(self.children)
        run_id = f"{self.parent.run_id}_{index}"
        arguments = []
        for name, value in parameters.items():
            arguments += [name if name.startswith("-") else f"--{name}", argument(value)]
        config = ScriptRunConfig(
            source_directory=str(self.parent.snapshot),
            script=self.template["script"],
            arguments=self.template["arguments"],
        )
        config.run_config.target = self.parent.definition()["target"]
        config.run_config.environment = Environment._deserialize_and_add_to_object(self.template["environment"])
        config.run_config.environment_variables = self.template["environmentVariables"]
        # The parent's tags hold each child's hyperparameters, which get_hyperparameters() reads, as on Azure.
        self.parent.append_tag(run_id, json.dumps(parameters))
        folder = self.backend.submit_run(
            self.experiment, config, None, run_id=run_id, parent_id=self.parent.run_id, arguments=arguments
        )
        self.children.append(Child(index, folder, parameters))
        self.log("GENERATOR", f"{run_id}: {json.dumps(parameters)}")

    def watch(self):
        """Read each running child's status and primary metric; apply the policy to each new interval."""
        for child in self.children:
            if not child.ended:
                child.status = self.status(child)  # before the metrics: an ended run has logged all of them
                child.values = policies.usable(child.folder.metric_values(self.metric))
        histories = {child.run_id: child.values for child in self.children}
        for child in self.children:
            for interval in range(child.evaluated + 1, len(child.values) + 1):
                child.evaluated = interval
                reason = (
                    None
                    if child.ended or child.stopped_by_policy
                    else policies.reason_to_stop(self.policy, self.maximize, histories, child.run_id, interval)
                )
                if reason:
                    child.stopped_by_policy = True
                    child.folder.request_cancel()  # its runner stops the script at once: Canceled
                    self.log(
                        "ENFORCER",
                        f"Canceling {child.run_id} at interval {interval} ({self.policy['name']} policy): {reason}",
                    )
                    break
            if child.ended and not child.told:
                child.told = True
                self.sampler.tell(child.index, best_of(child.values, self.maximize))
                if child.status == "Failed":
                    self.log("CONTROLLER", f"{child.run_id} Failed; the sweep goes on. {self.error_message(child)}")
        self.record_best(final=False)

    def record_best(self, final):
        """Log the best child so far to the parent's BEST_CHILD_TABLE when it changes (and once, final)."""
        scored = [child for child in self.children if child.values]
        if not scored:
            return
        best = best_of(scored, self.maximize, key=lambda child: best_of(child.values, self.maximize))
        value = best_of(best.values, self.maximize)
        if final or best is not self.best or value != self.best_value:
            self.best, self.best_value = best, value
            self.parent.append_metric(
                {
                    "name": BEST_CHILD_TABLE,
                    "description": None,
                    "row": {
                        "metric_name": self.metric,
                        "timestamp": files.utc_now(),
                        "run_id": best.run_id,
                        "metric_value": value,
                        "final": final,
                    },
                }
            )

    def stop_children(self):
        """Cancel every running child and wait until each has ended."""
        for child in self.children:
            if not child.ended:
                child.folder.request_cancel()
        for child in self.children:
            if not child.ended:
                self.backend.cancel_run(child.folder)  # waits for its runner to end it
                child.status = self.status(child)

    def status(self, child):
        return self.backend.reconcile_status(child.folder)["status"]

    def error_message(self, child):
        """The message of a failed child's error (from its status), or ''."""
        return self.backend.reconcile_status(child.folder).get("error", {}).get("error", {}).get("message", "")

    def finish(self):
        """Record the best child and end the sweep: Completed, or Failed if every child failed."""
        self.record_best(final=True)
        counts = {status: sum(child.status == status for child in self.children) for status in TERMINAL_STATES}
        by_policy = sum(child.stopped_by_policy and child.status == "Canceled" for child in self.children)
        summary = (
            f"{len(self.children)} child runs: {counts['Completed']} completed, {counts['Canceled']} canceled "
            f"({by_policy} by the policy), {counts['Failed']} failed"
        )
        if self.best is not None:
            self.parent.add_property("best_child_run_id", self.best.run_id)
            self.parent.add_property("score", str(self.best_value))
            self.log(
                "CONTROLLER", f"Best child run: {self.best.run_id}, {self.metric} {self.best_value:.4g}; {summary}"
            )
        else:
            self.log("CONTROLLER", f"No child logged {self.metric}; {summary}")
        if self.children and counts["Failed"] == len(self.children):
            first = self.error_message(self.children[0])
            return {
                "status": "Failed",
                "error": run_error("UserError", f"All {len(self.children)} child runs failed; the first: {first}"),
            }
        return {"status": "Completed"}


def argument(value):
    """A hyperparameter as a command-line argument. Azure passes strings; an integral float (quniform's 64.0)
    was seen passed as '64', which a script's int argument accepts."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def run_sweep(folder, stop_requested):
    """Drive the sweep to its end; what its final status adds. A failure here still stops its children."""
    sweep = Sweep(folder)
    try:
        return sweep.run(stop_requested)
    except BaseException:
        sweep.stop_children()
        raise


if __name__ == "__main__":
    driver.main("sweep driver", run_sweep)
