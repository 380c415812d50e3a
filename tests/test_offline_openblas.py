"""The OpenBLAS kernel: every process the offline workspace starts gets the one the CPU supports (a stand-in CPU
description here), and an OPENBLAS_CORETYPE the user set wins."""

import os
import subprocess
import sys

import pytest
from azureml.core.compute import AmlCompute
from azureml.core.model import InferenceConfig
from azureml.core.runconfig import MpiConfiguration
from azureml.train.hyperdrive import choice
from helpers import script_config, sweep_config

from azureml_offline.compute import ComputeTarget
from azureml_offline.engine import openblas
from azureml_offline.engine.processes import child_environment
from azureml_offline.experiment import Experiment
from azureml_offline.model import Model
from azureml_offline.webservice import AciWebservice

# /proc/cpuinfo's lines as x86 Linux writes them; the avx512 set on a CPU that has AVX2 too.
HASWELL_FLAGS = "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2"
SKYLAKE_X_FLAGS = HASWELL_FLAGS + " avx512f avx512dq avx512cd avx512bw avx512vl"
PRINTS_KERNEL = "import os\nprint('kernel', os.environ.get('OPENBLAS_CORETYPE'), flush=True)\n"
SCORE = "import os\ndef init():\n    pass\ndef run(data):\n    return os.environ.get('OPENBLAS_CORETYPE')\n"


def cpuinfo(folder, flags):
    path = folder / "cpuinfo"
    path.write_text(
        f"processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\n"
        f"flags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n"
    )
    return path


@pytest.fixture
def stand_in_cpu(tmp_path, monkeypatch):
    """A CPU with AVX2 and FMA but no AVX-512: not this host's best kernel, so what children get comes from it."""
    monkeypatch.setenv(openblas.CPUINFO_VARIABLE, str(cpuinfo(tmp_path, HASWELL_FLAGS)))
    monkeypatch.delenv(openblas.VARIABLE, raising=False)
    return "Haswell"


@pytest.mark.parametrize(
    "flags, expected",
    [
        (SKYLAKE_X_FLAGS, "SkylakeX"),
        (HASWELL_FLAGS, "Haswell"),
        (HASWELL_FLAGS.replace(" fma", ""), None),  # AVX2 without FMA: OpenBLAS's own choice stands
        (SKYLAKE_X_FLAGS.replace(" avx512vl", "").replace(" avx2", ""), None),
        ("fpu sse sse2", None),
    ],
)
def test_the_kernel_follows_the_cpu_flags(tmp_path, flags, expected):
    assert openblas.kernel(openblas.cpu_flags(cpuinfo(tmp_path, flags))) == expected


def test_no_cpu_description_sets_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(openblas.CPUINFO_VARIABLE, str(tmp_path / "missing"))
    assert openblas.kernel() is None and openblas.setting({}) == {}


def test_a_child_gets_the_kernel_unless_the_user_chose_one(stand_in_cpu, monkeypatch):
    assert child_environment({"PATH": "/bin"}, EXTRA="1") == {
        "PATH": "/bin",
        "EXTRA": "1",
        "OPENBLAS_CORETYPE": "Haswell",
    }
    assert child_environment({"OPENBLAS_CORETYPE": "Prescott"})["OPENBLAS_CORETYPE"] == "Prescott"
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Prescott")
    assert child_environment()["OPENBLAS_CORETYPE"] == "Prescott"


def test_the_module_prints_what_to_set_for_a_jupyter_server(stand_in_cpu):
    command = [sys.executable, "-m", "azureml_offline.engine.openblas"]
    assert subprocess.run(command, capture_output=True, text=True, check=True).stdout == "OPENBLAS_CORETYPE=Haswell\n"
    user = dict(os.environ, OPENBLAS_CORETYPE="Prescott")
    assert subprocess.run(command, capture_output=True, text=True, check=True, env=user).stdout == ""


def test_this_process_gets_it_only_before_numpy_loads(stand_in_cpu):
    code = "import sys, os, azureml_offline\n{}azureml_offline.activate()\nprint(os.environ.get('OPENBLAS_CORETYPE'))"
    before = subprocess.run([sys.executable, "-c", code.format("")], capture_output=True, text=True, check=True)
    after = subprocess.run(
        [sys.executable, "-c", code.format("import numpy\n")], capture_output=True, text=True, check=True
    )
    assert (before.stdout, after.stdout) == ("Haswell\n", "None\n")


@pytest.fixture
def cluster(fresh_workspace):
    ComputeTarget.create(
        fresh_workspace, "cpu-cluster", AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=2)
    )
    return fresh_workspace


@pytest.mark.parametrize("user", [None, "Prescott"])
def test_a_run_gets_the_kernel_and_the_user_s_wins(cluster, stand_in_cpu, tmp_path, monkeypatch, user):
    if user:
        monkeypatch.setenv("OPENBLAS_CORETYPE", user)
    run = Experiment(cluster, "kernel").submit(script_config(tmp_path / "src", PRINTS_KERNEL))
    run.wait_for_completion()
    assert f"kernel {user or stand_in_cpu}" in run.get_details_with_logs()["logFiles"]["logs/std_log.txt"]


def test_each_rank_of_an_mpi_job_gets_it(cluster, stand_in_cpu, tmp_path):
    config = script_config(
        tmp_path / "src",
        PRINTS_KERNEL,
        compute_target="cpu-cluster",
        distributed_job_config=MpiConfiguration(process_count_per_node=1, node_count=2),
    )
    run = Experiment(cluster, "kernel").submit(config)
    run.wait_for_completion()
    logs = run.get_details_with_logs()["logFiles"]
    assert [logs[f"logs/std_log_process_{rank}.txt"].strip() for rank in (0, 1)] == [f"kernel {stand_in_cpu}"] * 2


def test_each_sweep_child_gets_it(cluster, stand_in_cpu, tmp_path):
    run = Experiment(cluster, "kernel").submit(sweep_config(tmp_path, {"--values": choice("0.5", "0.6")}))
    run.wait_for_completion()
    children = list(run.get_children())
    assert len(children) == 2
    for child in children:
        assert f"OPENBLAS_CORETYPE={stand_in_cpu}" in child.get_details_with_logs()["logFiles"]["logs/std_log.txt"]


def test_the_web_service_s_workers_get_it(cluster, stand_in_cpu, tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "score.py").write_text(SCORE)
    config = InferenceConfig(entry_script="score.py", source_directory=str(tmp_path / "app"))
    service = Model.deploy(cluster, "kernel", [], config, AciWebservice.deploy_configuration())
    try:
        service.wait_for_deployment()
        assert service.run("{}") == stand_in_cpu  # answered by a gunicorn worker, not its master
    finally:
        service.delete()
