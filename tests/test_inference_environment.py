"""The web service's conda file serves the model with the packages that trained it, at the offline server's
version."""

import re
import tomllib

import yaml
from helpers import REPO

SHARED = ("python", "numpy", "setuptools", "chainer", "numba")


def conda_pins(path):
    """{package: spec} of a conda file: its conda dependencies and its pip list."""
    spec = yaml.safe_load(path.read_text())
    pins = {}
    for dependency in spec["dependencies"]:
        for requirement in dependency["pip"] if isinstance(dependency, dict) else [dependency]:
            name, version = re.match(r"([\w.-]+)(.*)", requirement).groups()
            pins[name.lower()] = version.lstrip("=")  # python=3.11 and x==1.0 give the version; >=, < stay
    return pins


def test_inference_environment_pins_what_the_training_job_pins():
    inference = conda_pins(REPO / "inference-environment.yml")
    training = conda_pins(REPO / "job-environment.yml")
    assert {name: inference.get(name) for name in SHARED} == {name: training[name] for name in SHARED}


def test_inference_environment_runs_the_offline_server_version():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (server,) = [r for r in project if r.startswith("azureml-inference-server-http")]
    assert conda_pins(REPO / "inference-environment.yml")["azureml-inference-server-http"] == server.split("==")[1]


def test_a_different_pin_is_detected(tmp_path):
    changed = tmp_path / "env.yml"
    changed.write_text((REPO / "inference-environment.yml").read_text().replace("chainer=7.8.1", "chainer=7.2.0"))
    assert conda_pins(changed)["chainer"] != conda_pins(REPO / "job-environment.yml")["chainer"]
