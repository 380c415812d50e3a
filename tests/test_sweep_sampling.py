"""Each sampling of the SDK's parameter expressions: bounds, distributions (fixed seeds, generous statistical
tolerances), reproducibility, and the grid's and Bayesian sampler's own behaviour."""

import math

import numpy as np
import pytest
from azureml.train.hyperdrive import (
    BayesianParameterSampling,
    GridParameterSampling,
    RandomParameterSampling,
    choice,
    lognormal,
    loguniform,
    normal,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)

from azureml_offline.engine import sampling

N = 4000


def draws(expression, n=N, seed=0):
    """n values of one expression, through the sampler a sweep uses (the SDK's own JSON)."""
    sampler = sampling.sampler(
        RandomParameterSampling({"x": expression}, properties={"seed": seed}).to_json(), "maximize"
    )
    return [sampler.sample()["x"] for _ in range(n)]


def assert_uniform(values, low, high):
    values = np.asarray(values)
    assert values.min() >= low and values.max() <= high
    # Each tenth of the range holds about a tenth of the values (binomial sd ~ 0.5 %: 2 % is > 4 sd).
    counts = np.histogram(values, bins=10, range=(low, high))[0] / len(values)
    assert np.all(np.abs(counts - 0.1) < 0.02), counts


def test_choice_takes_each_option_itself_equally_often():
    values = draws(choice(16, 32.5, "relu"))
    assert set(map(type, values)) == {int, float, str}  # the options themselves, types kept
    for option in (16, 32.5, "relu"):
        assert abs(values.count(option) / N - 1 / 3) < 0.03


def test_randint_is_uniform_over_0_to_upper_exclusive():
    values = draws(randint(5))
    assert all(isinstance(v, int) for v in values) and set(values) == {0, 1, 2, 3, 4}
    for k in range(5):
        assert abs(values.count(k) / N - 0.2) < 0.025


def test_uniform_stays_within_its_bounds_evenly():
    assert_uniform(draws(uniform(-2, 3)), -2, 3)


def test_quniform_rounds_a_uniform_to_multiples_of_q():
    values = draws(quniform(0, 10, 2))
    assert set(values) == {0.0, 2.0, 4.0, 6.0, 8.0, 10.0}
    # round(uniform(0, 10) / 2) * 2: the ends get half the share of the inner values (0.1 against 0.2).
    assert abs(values.count(0.0) / N - 0.1) < 0.02 and abs(values.count(4.0) / N - 0.2) < 0.025


def test_loguniform_is_exp_of_a_uniform_between_its_arguments():
    values = draws(loguniform(math.log(1e-4), math.log(1e-1)))
    assert_uniform(np.log(values), math.log(1e-4), math.log(1e-1))


def test_qloguniform_rounds_exp_of_a_uniform_to_multiples_of_q():
    values = np.array(draws(qloguniform(0, math.log(100), 5)))
    assert np.all(values % 5 == 0) and values.min() >= 0 and values.max() <= 100
    assert abs(np.median(values) - 10) <= 5  # the median of exp(uniform(0, ln 100)) is 10


def test_normal_has_its_mean_and_standard_deviation():
    values = np.array(draws(normal(10, 2)))
    assert abs(values.mean() - 10) < 0.1 and abs(values.std() - 2) < 0.1  # standard error of the mean: 0.03


def test_qnormal_rounds_a_normal_to_multiples_of_q():
    values = np.array(draws(qnormal(10, 4, 3)))
    assert np.all(values % 3 == 0) and abs(values.mean() - 10) < 0.25


def test_lognormal_is_exp_of_a_normal():
    values = np.array(draws(lognormal(0, 0.5)))
    assert values.min() > 0
    assert abs(np.log(values).mean()) < 0.03 and abs(np.log(values).std() - 0.5) < 0.03


def test_qlognormal_rounds_exp_of_a_normal_to_multiples_of_q():
    values = np.array(draws(qlognormal(2, 0.5, 2)))
    assert np.all(values % 2 == 0) and values.min() >= 0
    assert abs(np.median(values) - math.exp(2)) < 1.5


def test_every_parameter_is_drawn_independently():
    sampler = sampling.sampler(
        RandomParameterSampling({"a": uniform(0, 1), "b": uniform(0, 1)}, properties={"seed": 3}).to_json(), "maximize"
    )
    pairs = np.array([[s["a"], s["b"]] for s in (sampler.sample() for _ in range(N))])
    assert abs(np.corrcoef(pairs.T)[0, 1]) < 0.05


def test_the_seed_property_makes_random_samples_reproducible():
    expression = loguniform(-9, -2)
    assert draws(expression, 20, seed=7) == draws(expression, 20, seed=7)
    assert draws(expression, 20, seed=7) != draws(expression, 20, seed=8)
    unseeded = RandomParameterSampling({"x": expression}).to_json()  # as on Azure: other samples every time
    first, second = (sampling.sampler(unseeded, "maximize") for _ in range(2))
    assert [first.sample() for _ in range(5)] != [second.sample() for _ in range(5)]


def test_grid_gives_every_combination_once_then_none():
    sampler = sampling.sampler(
        GridParameterSampling({"lr": choice(0.1, 0.01), "units": choice(range(3))}).to_json(), "maximize"
    )
    points = iter(sampler.sample, None)
    assert list(points) == [{"lr": lr, "units": units} for lr in (0.1, 0.01) for units in (0, 1, 2)]
    assert sampler.sample() is None


BAYESIAN_SPACE = {"x": uniform(0, 1), "k": quniform(0, 20, 5), "act": choice("relu", "tanh")}


def bayesian_samples(seed, n, objective=None):
    sampler = sampling.sampler(
        BayesianParameterSampling(BAYESIAN_SPACE, properties={"seed": seed}).to_json(), "maximize"
    )
    samples = []
    for index in range(n):
        samples.append(sampler.sample())
        sampler.tell(index, objective(samples[-1]) if objective else 0.0)
    return samples


def test_bayesian_samples_stay_in_the_space_and_follow_the_seed():
    samples = bayesian_samples(seed=1, n=15)
    assert all(
        0 <= s["x"] <= 1 and s["k"] in (0.0, 5.0, 10.0, 15.0, 20.0) and s["act"] in ("relu", "tanh") for s in samples
    )
    assert samples == bayesian_samples(seed=1, n=15)
    assert samples != bayesian_samples(seed=2, n=15)


def test_bayesian_sampling_learns_where_the_metric_is_best():
    samples = bayesian_samples(seed=0, n=40, objective=lambda s: -((s["x"] - 0.8) ** 2))
    distance = [abs(s["x"] - 0.8) for s in samples]
    # The first 10 are Optuna's random start; the last 10 are drawn from what the first 30 taught it.
    assert np.mean(distance[-10:]) < np.mean(distance[:10]) / 2


def test_a_failed_child_teaches_the_bayesian_sampler_nothing_but_does_not_stop_it():
    sampler = sampling.sampler(BayesianParameterSampling(BAYESIAN_SPACE, properties={"seed": 0}).to_json(), "minimize")
    sampler.sample()
    sampler.tell(0, None)
    assert set(sampler.sample()) == {"x", "k", "act"}


@pytest.mark.parametrize("value, text", [(0.001, "0.001"), (64.0, "64"), (32, "32"), ("relu", "relu")])
def test_hyperparameters_become_arguments_as_azure_passes_them(value, text):
    from azureml_offline.engine.sweep import argument

    assert argument(value) == text
