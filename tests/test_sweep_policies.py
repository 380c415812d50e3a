"""Each early termination policy's decisions on constructed metric sequences, with the SDK's own policy objects."""

import pytest
from azureml.train.hyperdrive import BanditPolicy, MedianStoppingPolicy, NoTerminationPolicy, TruncationSelectionPolicy

from azureml_offline.engine.policies import applies, reason_to_stop, usable


def stops(policy, histories, run, interval, maximize=True):
    return reason_to_stop(policy.to_json(), maximize, histories, run, interval) is not None


def test_bandit_slack_factor_as_in_azures_example():
    # The documentation: best 0.8 at an interval, slack_factor 0.2: runs below 0.8 / 1.2 = 0.667 stop.
    policy = BanditPolicy(evaluation_interval=1, slack_factor=0.2)
    assert stops(policy, {"best": [0.8], "low": [0.66]}, "low", 1)
    assert not stops(policy, {"best": [0.8], "low": [0.67]}, "low", 1)
    assert not stops(policy, {"best": [0.8], "low": [0.66]}, "best", 1)


def test_bandit_slack_amount():
    policy = BanditPolicy(evaluation_interval=1, slack_amount=0.05)
    assert stops(policy, {"a": [0.9], "b": [0.84]}, "b", 1)
    assert not stops(policy, {"a": [0.9], "b": [0.86]}, "b", 1)


def test_bandit_when_minimizing():
    factor, amount = BanditPolicy(slack_factor=0.5), BanditPolicy(slack_amount=0.1)
    assert stops(factor, {"a": [0.2], "b": [0.31]}, "b", 1, maximize=False)  # above 0.2 * 1.5
    assert not stops(factor, {"a": [0.2], "b": [0.29]}, "b", 1, maximize=False)
    assert stops(amount, {"a": [0.2], "b": [0.31]}, "b", 1, maximize=False)  # above 0.2 + 0.1
    assert not stops(amount, {"a": [0.2], "b": [0.29]}, "b", 1, maximize=False)


def test_bandit_compares_the_runs_best_so_far_with_everyones_best_up_to_the_same_interval():
    policy = BanditPolicy(slack_factor=0.1)
    histories = {"leader": [0.5, 0.99], "follower": [0.8, 0.6, 0.5]}
    # Interval 1: the leader had 0.5, so 0.8 leads; the leader's later 0.99 does not count yet.
    assert not stops(policy, histories, "follower", 1)
    assert stops(policy, histories, "leader", 1)  # 0.5 < 0.8 / 1.1
    # Interval 2: best 0.99; the follower's best so far is 0.8 (not its latest 0.6): 0.8 < 0.9 stops it.
    assert stops(policy, histories, "follower", 2)


def test_evaluation_interval_and_delay_decide_when_a_policy_looks():
    policy = BanditPolicy(evaluation_interval=2, slack_factor=0.1, delay_evaluation=3).to_json()
    assert [interval for interval in range(1, 9) if applies(policy, interval)] == [4, 6, 8]
    histories = {"good": [0.9] * 8, "bad": [0.1] * 8}
    assert [i for i in range(1, 9) if reason_to_stop(policy, True, histories, "bad", i)] == [4, 6, 8]


def test_median_stopping_against_the_median_of_running_averages():
    policy = MedianStoppingPolicy(evaluation_interval=1, delay_evaluation=1)
    # Averages over intervals 1-2: a 0.9, b 0.825, c 0.55; median 0.825.
    histories = {"a": [0.9, 0.9], "b": [0.8, 0.85], "c": [0.5, 0.6]}
    assert stops(policy, histories, "c", 2)  # best 0.6 < 0.825
    assert not stops(policy, histories, "b", 2)  # best 0.85 >= 0.825
    assert not stops(policy, {"alone": [0.1, 0.2]}, "alone", 2)  # its best is never below its own average


def test_median_stopping_when_minimizing():
    histories = {"a": [0.1, 0.1], "b": [0.2, 0.2], "c": [0.5, 0.4]}
    assert stops(MedianStoppingPolicy(), histories, "c", 2, maximize=False)
    assert not stops(MedianStoppingPolicy(), histories, "a", 2, maximize=False)


def test_truncation_selection_stops_the_lowest_percentage_at_each_interval():
    policy = TruncationSelectionPolicy(truncation_percentage=50)
    histories = {"a": [0.9], "b": [0.8], "c": [0.7], "d": [0.6], "late": []}
    assert [run for run in histories if histories[run] and stops(policy, histories, run, 1)] == ["c", "d"]
    # 20 % of the 4 runs that reached interval 1 is less than one run: nobody stops.
    assert not any(stops(TruncationSelectionPolicy(20), histories, run, 1) for run in "abcd")
    # Minimizing, the highest values are the worst.
    assert stops(policy, histories, "a", 1, maximize=False) and not stops(policy, histories, "d", 1, maximize=False)


def test_truncation_selection_compares_only_runs_that_reached_the_interval():
    policy = TruncationSelectionPolicy(truncation_percentage=50)
    histories = {"ahead": [0.1, 0.2], "behind": [0.9]}
    assert not stops(policy, histories, "ahead", 2)  # alone at interval 2 (50 % of one run is none)
    assert stops(policy, histories, "ahead", 1)  # at interval 1 it is the lower half of two


def test_no_termination_policy_never_stops():
    histories = {"a": [1.0] * 5, "b": [0.0] * 5}
    assert not any(stops(NoTerminationPolicy(), histories, "b", i) for i in range(1, 6))


def test_the_reason_says_what_was_compared():
    reason = reason_to_stop(BanditPolicy(slack_factor=0.1).to_json(), True, {"a": [0.99], "b": [0.5]}, "b", 1)
    assert reason == "its best 0.5 is below best 0.99 / (1 + 0.1) = 0.9"


@pytest.mark.parametrize(
    "policy", [BanditPolicy(slack_factor=0.1), MedianStoppingPolicy(), TruncationSelectionPolicy(10)]
)
def test_a_run_that_logged_nothing_yet_is_not_judged(policy):
    assert not applies(policy.to_json(), 0)


def test_only_finite_numbers_are_ranked_or_decide():
    # A script may log NaN or infinity (a diverged run), a string or a bool (log() takes any of them).
    logged = [0.5, float("nan"), float("inf"), -float("inf"), "0.9", True, None, 2]
    assert usable(logged) == [0.5, 2]
