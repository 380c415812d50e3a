"""Offline sweeps end to end, with a stand-in script that logs the metric values it is given: the concurrency
limit, the policy stopping a child at once, failing children, cancellation and the kernel dying, and the rules
the SDK and the service apply before a sweep starts."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest
from azureml.core.compute import AmlCompute
from azureml.train.hyperdrive import BanditPolicy, BayesianParameterSampling, RandomParameterSampling, choice, uniform
from azureml.train.hyperdrive.exceptions import HyperDriveConfigException, HyperDriveScenarioNotSupportedException
from helpers import STAND_IN, alive, eventually, sweep_config

from azureml_offline.backend import backend_of
from azureml_offline.compute import ComputeTarget
from azureml_offline.engine.processes import THREAD_VARIABLES
from azureml_offline.experiment import Experiment
from azureml_offline.hyperdrive import HyperDriveRun
from azureml_offline.run import metric_values
from azureml_offline.state.layout import WorkspaceFolder


@pytest.fixture
def experiment(fresh_workspace):
    ComputeTarget.create(
        fresh_workspace, "cpu-cluster", AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=2)
    )
    return Experiment(fresh_workspace, "sweep")


def running_children(run):
    return sum(child.get_status() == "Running" for child in run.get_children())


def test_children_run_their_hyperparameters_never_more_than_max_concurrent_runs_at_once(experiment, tmp_path):
    config = sweep_config(
        tmp_path,
        {"--values": choice("0.5,0.6", "0.7,0.9", "0.8,0.6", "0.2")},
        arguments=["--seconds", "0.3"],
        max_concurrent_runs=2,
    )
    run = experiment.submit(config)
    most = 0
    while run.get_status() not in ("Completed", "Failed", "Canceled"):
        most = max(most, running_children(run))
        time.sleep(0.05)
    assert most == 2 and run.get_status() == "Completed"

    children = list(run.get_children())
    assert [child.id for child in children] == [f"{run.id}_{n}" for n in range(4)]
    assert all(child.get_status() == "Completed" for child in children)
    # Start and end times, as each child's runner recorded them: at no moment were 3 children running.
    spans = [(child.get_details()["startTimeUtc"], child.get_details()["endTimeUtc"]) for child in children]
    assert max(sum(start <= moment < end for start, end in spans) for moment, _ in spans) <= 2
    # Each child gets its hyperparameter after the script's own arguments, and its share of the cores.
    assert children[1].get_details()["runDefinition"]["arguments"] == ["--seconds", "0.3", "--values", "0.7,0.9"]
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert all(
        f"{name}={threads}" in children[0].get_details_with_logs()["logFiles"]["logs/std_log.txt"]
        for name in THREAD_VARIABLES
    )

    assert run.get_hyperparameters() == {
        f"{run.id}_{n}": f'{{"--values": "{values}"}}'
        for n, values in enumerate(["0.5,0.6", "0.7,0.9", "0.8,0.6", "0.2"])
    }
    ranked = run.get_children_sorted_by_primary_metric()
    assert [(child["run_id"], child["best_primary_metric"]) for child in ranked] == [
        (f"{run.id}_1", 0.9),
        (f"{run.id}_2", 0.8),
        (f"{run.id}_0", 0.6),
        (f"{run.id}_3", 0.2),
    ]
    assert run.get_best_run_by_primary_metric().id == f"{run.id}_1"
    assert run.get_properties()["best_child_run_id"] == f"{run.id}_1" and run.get_properties()["score"] == "0.9"
    assert run.get_metrics()[f"{run.id}_2"] == {"Accuracy": [0.8, 0.6]}
    # The experiment lists the sweep as a HyperDriveRun, and its children as runs.
    assert isinstance(next(r for r in experiment.get_runs() if r.id == run.id), HyperDriveRun)


def test_a_child_gets_the_run_configuration_s_variables_which_win_over_its_share_of_the_cores(experiment, tmp_path):
    config = sweep_config(tmp_path, {"--values": choice("0.5")}, variables={"MKL_NUM_THREADS": "5"}, max_total_runs=1)
    run = experiment.submit(config)
    run.wait_for_completion()
    child = next(iter(run.get_children()))
    assert "MKL_NUM_THREADS=5 " in child.get_details_with_logs()["logFiles"]["logs/std_log.txt"]


def bandit_sweep(experiment, tmp_path, first, second):
    """A sweep of two children that log `first` and `second` (--values), one at a time so that the first's values
    are all known when the second is judged, under a Bandit policy (slack factor 0.1, every interval); it has ended."""
    config = sweep_config(
        tmp_path,
        {"--values": choice(first, second)},
        arguments=["--seconds", "0.1"],
        max_concurrent_runs=1,
        policy=BanditPolicy(evaluation_interval=1, slack_factor=0.1),
    )
    run = experiment.submit(config)
    run.wait_for_completion()
    return run


def test_the_policy_cancels_a_child_at_the_interval_it_falls_behind(experiment, tmp_path):
    run = bandit_sweep(experiment, tmp_path, "0.9,0.95", ",".join(["0.1"] * 40))
    leader, follower = run.get_children()
    assert (run.get_status(), leader.get_status(), follower.get_status()) == ("Completed", "Completed", "Canceled")
    assert len(metric_values(follower.get_metrics()["Accuracy"])) < 10  # of 40: stopped at once, not at the end
    log = run.get_details_with_logs()["logFiles"]["azureml-logs/hyperdrive.txt"]
    assert f"[ENFORCER][INFO]Canceling {follower.id} at interval 1 (Bandit policy)" in log


def test_max_duration_minutes_cancels_the_running_children_and_ends_the_sweep(experiment, tmp_path):
    config = sweep_config(
        tmp_path,
        {"--values": choice("0.5,0.6", "0.7,0.8", "0.9")},
        arguments=["--seconds", "60"],
        max_concurrent_runs=2,
        max_duration_minutes=0.05,
    )  # 3 s
    run = experiment.submit(config)
    run.wait_for_completion()
    assert run.get_status() == "Completed"
    assert [child.get_status() for child in run.get_children()] == ["Canceled", "Canceled"]  # the third never ran
    assert (
        "max_duration_minutes (0.05) reached" in run.get_details_with_logs()["logFiles"]["azureml-logs/hyperdrive.txt"]
    )


def test_a_metric_that_is_not_a_finite_number_never_wins_and_never_decides(experiment, tmp_path):
    # A diverged child logs inf, then NaN. Run first, it would set the bar that the policy holds the other to
    # (which logs long enough to be judged), and then be the sweep's best.
    run = bandit_sweep(experiment, tmp_path, "inf,nan", ",".join(["0.5"] * 20))
    diverged, sound = run.get_children()
    assert (diverged.get_status(), sound.get_status()) == ("Completed", "Completed")
    assert len(metric_values(sound.get_metrics()["Accuracy"])) == 20
    assert run.get_best_run_by_primary_metric().id == sound.id
    # The ranking the SDK's fallback picks from while a sweep runs: the diverged child counts as one without it.
    ranked = run.get_children_sorted_by_primary_metric()
    assert [(child["run_id"], child["best_primary_metric"]) for child in ranked] == [
        (sound.id, 0.5),
        (diverged.id, None),
    ]
    assert [child["run_id"] for child in run.get_children_sorted_by_primary_metric(discard_no_metric=True)] == [
        sound.id
    ]


def test_a_failing_child_does_not_stop_the_sweep(experiment, tmp_path):
    config = sweep_config(
        tmp_path, {"--exit": choice(3, 0)}, arguments=["--values", "0.5"], max_concurrent_runs=1, max_total_runs=2
    )
    run = experiment.submit(config)
    run.wait_for_completion()
    failed, completed = run.get_children()
    assert (run.get_status(), failed.get_status(), completed.get_status()) == ("Completed", "Failed", "Completed")
    assert run.get_best_run_by_primary_metric(include_failed=False).id == completed.id
    assert (
        f"{failed.id} Failed; the sweep goes on"
        in run.get_details_with_logs()["logFiles"]["azureml-logs/hyperdrive.txt"]
    )


def test_no_best_run_only_when_no_child_logged_the_primary_metric_and_the_warning_says_why(experiment, tmp_path):
    config = sweep_config(
        tmp_path, {"--exit": choice(0, 2)}, arguments=["--values", "0.5", "--metric", "accuracy"], max_total_runs=2
    )
    run = experiment.submit(config)
    run.wait_for_completion()
    with pytest.warns(
        UserWarning,
        match=r"No child run of sweep HD_\w+ logged the primary metric 'Accuracy' "
        r"\(1 Completed, 1 Failed\).* The children logged: accuracy\.",
    ):
        assert run.get_best_run_by_primary_metric() is None


def test_every_child_failing_fails_the_sweep_with_the_first_error(experiment, tmp_path):
    run = experiment.submit(sweep_config(tmp_path, {"--exit": choice(4, 5)}, max_total_runs=2))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    assert "All 2 child runs failed; the first: Script exited with code 4" in details["error"]["error"]["message"]


def pids_in(folder):
    return [int(name) for name in os.listdir(folder)]


def test_cancelling_the_sweep_stops_every_child_and_starts_no_more(experiment, tmp_path, monkeypatch):
    monkeypatch.setenv("PID_DIR", str(tmp_path / "pids"))
    (tmp_path / "pids").mkdir()
    run = experiment.submit(
        sweep_config(
            tmp_path,
            {"--values": choice("0.5,0.6", "0.7,0.8", "0.9", "1")},
            arguments=["--seconds", "60"],
            max_concurrent_runs=2,
        )
    )
    eventually(lambda: len(pids_in(tmp_path / "pids")) == 2)
    run.cancel()
    assert run.get_status() == "Canceled"
    assert [child.get_status() for child in run.get_children()] == ["Canceled", "Canceled"]
    assert not any(alive(pid) for pid in pids_in(tmp_path / "pids"))
    assert backend_of(run).runner(run.id).wait(timeout=10) == 0  # the driver, too, has ended


KERNEL = """
import sys
from azureml.core import ScriptRunConfig
from azureml.train.hyperdrive import GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal, choice
from azureml_offline.experiment import Experiment
from azureml_offline.workspace import Workspace

src = ScriptRunConfig(sys.argv[1], "train.py", arguments=["--seconds", "60"])
src.run_config.target = "cpu-cluster"
config = HyperDriveConfig(run_config=src, hyperparameter_sampling=GridParameterSampling({"--values": choice("1", "2")}),
                          primary_metric_name="Accuracy", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                          max_total_runs=2)
run = Experiment(Workspace.from_config(), "sweep").submit(config)
sys.stdin.read()  # until the test kills this process
"""


def test_the_kernel_dying_stops_the_sweep_and_its_children(experiment, tmp_path, monkeypatch):
    monkeypatch.setenv("PID_DIR", str(tmp_path / "pids"))
    (tmp_path / "pids").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(STAND_IN)
    kernel = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KERNEL), str(tmp_path / "src")],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: len(pids_in(tmp_path / "pids")) == 2, seconds=60)
    finally:
        kernel.send_signal(signal.SIGKILL)
        kernel.wait()
    run = next(run for run in experiment.get_runs() if isinstance(run, HyperDriveRun))
    eventually(lambda: run.get_status() == "Canceled")
    assert [child.get_status() for child in run.get_children()] == ["Canceled", "Canceled"]
    assert not any(alive(pid) for pid in pids_in(tmp_path / "pids"))


@pytest.mark.parametrize(
    "change, error, message",
    [
        (
            dict(target="local"),
            HyperDriveScenarioNotSupportedException,
            "Automated hyperparameter tuning is not supported for types DatabricksCompute and local.",
        ),
        (dict(max_total_runs=0), HyperDriveConfigException, "max_total_runs expects a value between 1 and 1000"),
        (
            dict(max_concurrent_runs=101),
            HyperDriveConfigException,
            "max_concurrent_runs expects a value between 1 and 100",
        ),
        (
            dict(policy=BanditPolicy(slack_factor=0)),
            HyperDriveConfigException,
            "Bandit termination policy expects exactly one of slack factor or slack amount to be set.",
        ),
        (
            dict(max_duration_minutes=float("nan")),
            HyperDriveConfigException,
            "max_duration_minutes expects a positive number",
        ),
        (
            dict(sampling=BayesianParameterSampling, policy=BanditPolicy(slack_factor=0.1)),
            HyperDriveConfigException,
            "Bayesian sampling expects no early termination policy",
        ),
    ],
)
def test_the_sdks_and_services_rules_are_enforced_before_anything_starts(experiment, tmp_path, change, error, message):
    space = {"--values": choice("0.5", "0.6")}
    if change.get("sampling") is BayesianParameterSampling:
        # The SDK's own advice for a Bayesian sweep of fewer than 20 runs per parameter: expected, not printed.
        with pytest.warns(UserWarning, match="For best results with Bayesian Sampling"):
            # pytest.warns records every warning and shows the others again: the SDK's YAML deprecations
            # too, which pyproject's filters ignore everywhere else.
            warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
            config = sweep_config(tmp_path, space, **change)
    else:
        config = sweep_config(tmp_path, space, **change)
    with pytest.raises(error, match=message.replace(".", r"\.").replace("(", r"\(")):
        experiment.submit(config)
    assert list(experiment.get_runs()) == []
    assert list(WorkspaceFolder.open().runs("sweep")) == []


def test_random_sampling_with_a_seed_gives_the_same_children_every_time(experiment, tmp_path):
    def seeded(space):
        return RandomParameterSampling(space, properties={"seed": 5})

    runs = [
        experiment.submit(sweep_config(tmp_path, {"--seconds": uniform(0, 0.01)}, sampling=seeded, max_total_runs=2))
        for _ in range(2)
    ]
    for run in runs:
        run.wait_for_completion()
    first, second = ([json for _, json in sorted(run.get_hyperparameters().items())] for run in runs)
    assert first == second and len(set(first)) == 2


def test_a_killed_driver_leaves_no_child_running_and_the_sweep_failed(experiment, tmp_path, monkeypatch):
    monkeypatch.setenv("PID_DIR", str(tmp_path / "pids"))
    (tmp_path / "pids").mkdir()
    run = experiment.submit(
        sweep_config(tmp_path, {"--values": choice("1", "2")}, arguments=["--seconds", "60"], max_total_runs=2)
    )
    eventually(lambda: len(pids_in(tmp_path / "pids")) == 2)
    backend_of(run).runner(run.id).send_signal(signal.SIGKILL)  # each child's runner sees its parent, the driver, gone
    backend_of(run).runner(run.id).wait()
    eventually(lambda: all(child.get_status() == "Canceled" for child in run.get_children()))
    assert not any(alive(pid) for pid in pids_in(tmp_path / "pids"))
    assert run.get_status() == "Failed"
    assert "runner process was killed by signal 9" in run.get_details()["error"]["error"]["message"]
