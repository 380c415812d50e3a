"""Early termination: whether a sweep's child should stop, by the SDK's policies as Azure ML documents them.

A policy arrives as the SDK serialises it (EarlyTerminationPolicy.to_json()): {"name": "Bandit",
"MedianStopping", "TruncationSelection" or "Default", "properties": {...}}. Each time a child logs the
primary metric is one interval; the policy is applied at every multiple of evaluation_interval that is
at least delay_evaluation, comparing each run's values up to that interval only, so a decision does not
depend on how far the other runs have got since. Runs that have ended (completed, canceled or failed)
count as well: Azure's TruncationSelectionPolicy has exclude_finished_jobs=False.
"""

import math
import statistics


def usable(values):
    """The values a sweep ranks and decides by: finite numbers. NaN, infinities and anything else a script logs
    as its primary metric (a diverged loss, a string) never win and never decide, as if they were not there."""
    return [
        value
        for value in values
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ]


def best_of(items, maximize, key=None):
    """The best of `items` by the primary metric's goal (the largest if maximize, else the smallest), or None if
    there are none; `key` as max() takes it."""
    if not items:
        return None
    return (max if maximize else min)(items, key=key) if key else (max if maximize else min)(items)


def applies(policy, interval):
    """Whether `policy` is evaluated when a run logs its interval-th value (from 1)."""
    properties = policy.get("properties") or {}
    if policy["name"] == "Default":
        return False
    every, delay = properties.get("evaluation_interval", 1), properties.get("delay_evaluation", 0)
    return interval >= max(delay, 1) and interval % every == 0


def reason_to_stop(policy, maximize, histories, run_id, interval):
    """Why run `run_id` should stop at `interval` (a sentence), or None to let it go on.

    `histories` maps each run of the sweep to the primary metric's values it has logged so far, in order.
    """
    if not applies(policy, interval):
        return None
    properties = policy["properties"]
    worse = (lambda a, b: a < b) if maximize else (lambda a, b: a > b)
    # Each run's best value over its first `interval` values (runs that have logged nothing yet take no part).
    bests = {run: best_of(values[:interval], maximize) for run, values in histories.items() if values}
    mine = bests[run_id]
    name = policy["name"]
    if name == "Bandit":
        leader = best_of(list(bests.values()), maximize)
        if properties.get("slack_factor"):
            factor = 1 + properties["slack_factor"]
            # Maximize: stop below best / (1 + slack_factor); minimize: above best * (1 + slack_factor).
            limit, how = (leader / factor, "/") if maximize else (leader * factor, "*")
            formula = f"best {leader:.4g} {how} (1 + {properties['slack_factor']})"
        else:
            amount = properties["slack_amount"]
            limit = leader - amount if maximize else leader + amount
            formula = f"best {leader:.4g} {'-' if maximize else '+'} {amount}"
        if worse(mine, limit):
            return f"its best {mine:.4g} is {'below' if maximize else 'above'} {formula} = {limit:.4g}"
    elif name == "MedianStopping":
        # The median, over all runs, of each one's average over its first `interval` values.
        median = statistics.median(statistics.fmean(values[:interval]) for values in histories.values() if values)
        if worse(mine, median):
            return f"its best {mine:.4g} is worse than the median {median:.4g} of the runs' running averages"
    elif name == "TruncationSelection":
        # The runs that have reached this interval, worst first: the lowest truncation_percentage % of them stop.
        reached = sorted(
            (run for run, values in histories.items() if len(values) >= interval),
            key=lambda run: bests[run],
            reverse=not maximize,
        )
        cut = math.floor(len(reached) * properties["truncation_percentage"] / 100)
        if run_id in reached[:cut]:
            return (
                f"its best {mine:.4g} is among the lowest {properties['truncation_percentage']}% "
                f"({cut} of {len(reached)}) of the runs at this interval"
            )
    else:
        raise ValueError(f"unknown early termination policy {name!r}")
    return None
