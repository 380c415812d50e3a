"""A sweep's samplers: random, grid and Bayesian sampling of the SDK's parameter expressions, as HyperDrive does.

The sampling arrives as the SDK serialises it (HyperParameterSampling.to_json()): {"name": "RANDOM", "GRID" or
"BayesianOptimization", "parameter_space": {name: [kind, [arguments]]}, "properties": {...}}, each expression
as azureml.train.hyperdrive.parameter_expressions builds it (and has already checked it).

Seeds: v1's RandomParameterSampling has no seed argument, but it passes `properties` through unchanged, so
`RandomParameterSampling(space, properties={"seed": 42})` makes a sweep's samples the same every time. The
key is SDK v2's name for it (azure.ai.ml.sweep.RandomSamplingAlgorithm(seed=...)). Without it, each sweep
draws other samples, as on Azure. BayesianParameterSampling takes the same property.
"""

import itertools
import math

import numpy as np

SEED_PROPERTY = "seed"


def sampler(sampling, goal):
    """The sampler for `sampling` (the SDK's JSON); `goal` is "maximize" or "minimize" (for Bayesian sampling)."""
    space = sampling["parameter_space"]
    seed = (sampling.get("properties") or {}).get(SEED_PROPERTY)
    kind = sampling["name"]
    if kind == "RANDOM":
        return RandomSampler(space, seed)
    if kind == "GRID":
        return GridSampler(space)
    if kind == "BayesianOptimization":
        return BayesianSampler(space, seed, goal)
    raise ValueError(f"unknown sampling {kind!r}")


def draw(expression, rng):
    """One value of a parameter expression, drawn with the NumPy Generator `rng`, by the SDK's definitions."""
    kind, arguments = expression
    if kind == "choice":
        options = arguments[0]
        return options[rng.integers(len(options))]  # the option itself: an int stays an int
    if kind == "randint":
        return int(rng.integers(arguments[0]))  # [0, upper)
    if kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        value = rng.uniform(arguments[0], arguments[1])
        if kind.endswith("loguniform"):  # exp(uniform(min, max)): min and max are logarithms
            value = math.exp(value)
    elif kind in ("normal", "qnormal", "lognormal", "qlognormal"):
        value = rng.normal(arguments[0], arguments[1])
        if kind.endswith("lognormal"):
            value = math.exp(value)
    else:
        raise ValueError(f"unknown parameter expression {kind!r}")
    return quantize(value, arguments[2]) if kind.startswith("q") else float(value)


def quantize(value, q):
    """round(value / q) * q, the SDK's q-expressions; a float, as HyperDrive reports them (e.g. 64.0)."""
    return float(round(value / q) * q)


class RandomSampler:
    """Independent draws from each expression, for ever: max_total_runs ends the sweep."""

    def __init__(self, space, seed=None):
        self.space = space
        self.rng = np.random.default_rng(seed)

    def sample(self):
        return {name: draw(expression, self.rng) for name, expression in self.space.items()}

    def tell(self, index, value):
        pass


class GridSampler:
    """Every combination of the choices, the first parameter varying slowest; None once all are taken."""

    def __init__(self, space):
        names = list(space)
        self.combinations = (
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(space[name][1][0] for name in names))
        )

    def sample(self):
        return next(self.combinations, None)

    def tell(self, index, value):
        pass


class BayesianSampler:
    """Optuna's TPE sampler, asked for each child and told each child's best primary metric.

    TPE models good and bad regions of the space from the runs so far (after 10 random starts, Optuna's default),
    over the expressions Bayesian sampling allows: choice, uniform and quniform (ints, checked by the SDK).
    """

    def __init__(self, space, seed, goal):
        import optuna  # only a Bayesian sweep needs it (and it takes a second to import)

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.study = optuna.create_study(direction=goal, sampler=optuna.samplers.TPESampler(seed=seed))
        self.space = space
        self.distributions = {name: self._distribution(expression) for name, expression in space.items()}
        self.trials = []  # in the order of the samples

    def _distribution(self, expression):
        kind, arguments = expression
        if kind == "choice":
            return self.optuna.distributions.CategoricalDistribution(arguments[0])
        if kind == "uniform":
            return self.optuna.distributions.FloatDistribution(arguments[0], arguments[1])
        if kind == "quniform":  # the multiples k * q that round(uniform(min, max) / q) * q can give
            low, high, q = arguments
            return self.optuna.distributions.IntDistribution(round(low / q), round(high / q))
        raise ValueError(f"Bayesian sampling does not take {kind!r}")

    def sample(self):
        trial = self.study.ask(self.distributions)
        parameters = {}
        for name, (kind, arguments) in self.space.items():
            value = trial.params[name]
            parameters[name] = float(value * arguments[2]) if kind == "quniform" else value
        self.trials.append(trial)
        return parameters

    def tell(self, index, value):
        """Sample number `index` (from 0) ended with best primary metric `value` (None: it logged none)."""
        trial = self.trials[index]
        if value is None or not math.isfinite(value):
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)
