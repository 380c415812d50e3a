"""Estimators offline: the SDK's Chainer, PyTorch, TensorFlow and Estimator (deprecated, still in azureml-train-core)
run as what they configure, their entry script with their script_params.

The estimator itself is the SDK's, unchanged: it has already turned script_params into the run configuration's
arguments and named its compute target and image. Offline the image is not built; its name is reported.
"""

import copy
import sys

from azureml.core.script_run_config import ScriptRunConfig
from azureml.exceptions import TrainingException

ESTIMATOR_MODULE = "azureml.train.estimator._mml_base_estimator"
# What Experiment.submit(estimator, ...) may change for one run, as the SDK's _estimator_submit_method allows.
OVERRIDABLE = {"script_params", "inputs", "source_directory_data_store"}


def is_estimator(config):
    """Whether `config` is an SDK estimator. Its module is loaded only if the user made one (it takes seconds)."""
    module = sys.modules.get(ESTIMATOR_MODULE)
    return module is not None and isinstance(config, module.MMLBaseEstimator)


def script_run_config(estimator, **overrides):
    """The ScriptRunConfig of `estimator` (entry script, arguments, target), as the SDK submits it; script_params
    given to submit() change this run only, as in the SDK."""
    unexpected = set(overrides) - OVERRIDABLE
    if unexpected:
        raise TrainingException(
            f"{sorted(unexpected)} parameters cannot be overridden. Allowed parameters are: "
            "script_params, inputs and source_directory_data_store."
        )
    if any(value is not None for value in overrides.values()):
        estimator = copy.deepcopy(estimator)
        estimator._override_params(**overrides)
    run_config = estimator.run_config
    # The SDK's own _get_script_run_config() passes script and arguments twice and logs two warnings about it.
    return ScriptRunConfig(source_directory=estimator.source_directory, run_config=run_config)


def image(estimator):
    """The Docker image the estimator names, e.g. 'Chainer 5.1.0, mcr.microsoft.com/azureml/base-gpu:...'."""
    docker = estimator.run_config.environment.docker
    registry = docker.base_image_registry.address
    name = f"{registry}/{docker.base_image}" if registry else docker.base_image
    framework = getattr(estimator, "_framework_name", None)
    return f"{framework} {estimator.framework_version}, {name}" if framework else name
