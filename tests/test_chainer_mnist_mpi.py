"""chainer_mnist.py data-parallel: started by mpiexec, its ranks train with ChainerMN the model one process trains."""

import os
import subprocess
import sys
import time

import numpy as np
from azureml.core import ScriptRunConfig
from azureml.core.runconfig import MpiConfiguration
from helpers import REPO

from azureml_offline.engine import mpi
from azureml_offline.experiment import Experiment

SCRIPT = str(REPO / "chainer_mnist.py")
# 2,000 training examples in minibatches of 333: seven steps, the last of two examples; each splits unevenly.
SETTINGS = ["--epochs", "1", "--batchsize", "333", "--unit", "50", "--device", "-1"]
# Ranks sum a minibatch's gradient in another order than one process, and by how much that moves a float32 sum
# depends on the host's BLAS kernel: the parity tests train in float64, where the same orders stay far apart from a bug.
FLOAT64 = {"CHAINER_DTYPE": "float64"}


def assert_same_up_to_rounding(actual, expected, name):
    """Equal to 1e-9 of the array's largest value: float64 rounding over a run, not a gradient share, stays below."""
    assert actual.dtype == expected.dtype == np.float64, name
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-9 * np.abs(expected).max(), err_msg=name)


def test_one_process_and_two_ranks_train_the_same_parameters_and_adam_moments(
    mnist_dir, fresh_workspace, tmp_path, monkeypatch
):
    for name, value in FLOAT64.items():
        monkeypatch.setenv(name, value)
    # One process, which must not need mpi4py.
    alone = tmp_path / "alone"
    code = (
        "import sys, chainer_mnist; chainer_mnist.main(sys.argv[1:]); "
        "assert not {'mpi4py', 'chainermn'} & set(sys.modules), 'a single process imported MPI'"
    )
    one = subprocess.Popen(
        [sys.executable, "-c", code, "--data-dir", str(mnist_dir), "-o", str(alone), *SETTINGS],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # Two ranks, as the lesson submits them, beside the one process.
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    source = tmp_path / "source"
    source.mkdir()
    (source / "chainer_mnist.py").write_bytes((REPO / "chainer_mnist.py").read_bytes())
    config = ScriptRunConfig(
        source_directory=str(source),
        script="chainer_mnist.py",
        arguments=SETTINGS,
        distributed_job_config=MpiConfiguration(process_count_per_node=1, node_count=2),
    )
    run = Experiment(fresh_workspace, "chainer-mnist-mpi").submit(config)
    assert run.wait_for_completion()["status"] == "Completed"
    assert one.wait() == 0, one.stderr.read().decode()
    run.download_file("outputs/checkpoint.npz", str(tmp_path / "ranks.npz"))

    with np.load(alone / "checkpoint.npz") as one, np.load(tmp_path / "ranks.npz") as two:
        assert sorted(one.files) == sorted(two.files) and int(two["optimizer/t"]) == 7
        for name in one.files:  # the weights, and Adam's moments: the mean gradients of each step
            if one[name].dtype.kind == "f":
                assert_same_up_to_rounding(two[name], one[name], name)
    # Rank 0 alone logs: each hyperparameter once, each metric once per epoch.
    metrics = run.get_metrics()
    assert (metrics["Epochs"], metrics["Batch size"]) == (1, 333) and isinstance(metrics["Accuracy"], float)
    logs = run.get_details_with_logs()["logFiles"]
    assert "2 MPI ranks, ChainerMN's naive communicator" in logs["logs/std_log_process_0.txt"]
    assert "epoch   1" in logs["logs/std_log_process_0.txt"] and logs["logs/std_log_process_1.txt"] == ""


def test_a_rank_that_fails_under_plain_mpiexec_stops_the_job(tmp_path):
    """As Azure starts it (python chainer_mnist.py, no `-m mpi4py`): rank 0 finds no data while rank 1 waits for
    it; the job must end, not hang."""
    mpiexec = mpi.find_mpiexec()
    command = mpi.command(
        mpiexec,
        2,
        [tmp_path / "rank0.txt", tmp_path / "rank1.txt"],
        [sys.executable, SCRIPT, "--data-dir", str(tmp_path / "missing"), "-o", str(tmp_path / "out")],
    )
    result = subprocess.run(command, env=mpi.environment(os.environ, 2), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "error: data folder" in (tmp_path / "rank0.txt").read_text()


def test_two_ranks_resume_a_killed_run_where_it_stopped(mnist_dir, tmp_path):
    """Rank 0 reads the checkpoint and sends it to the other rank: both go on from the killed run's weights and
    Adam state, and end where the uninterrupted run ends."""
    args = [
        SCRIPT,
        "--data-dir",
        str(mnist_dir),
        "--epochs",
        "6",
        "--batchsize",
        "50",
        "--unit",
        "50",
        "--device",
        "-1",
    ]
    env = dict(os.environ, **FLOAT64)
    # The uninterrupted run, beside the one that is killed: they share nothing.
    whole = subprocess.Popen(
        [sys.executable, *args, "-o", str(tmp_path / "whole")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, *args, "-o", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while not (killed / "checkpoint.npz").exists() and process.poll() is None:
        time.sleep(0.001)
    process.kill()
    process.wait()
    assert whole.wait() == 0, whole.stderr.read().decode()
    assert not (killed / "model.npz").exists(), "the run ended before it could be killed"

    logs = [tmp_path / "rank0.txt", tmp_path / "rank1.txt"]
    command = mpi.command(mpi.find_mpiexec(), 2, logs, [sys.executable, *args, "-o", str(killed)])
    subprocess.run(command, env=mpi.environment(env, 2), check=True, capture_output=True, timeout=120)
    assert "Resuming after epoch" in logs[0].read_text()
    with np.load(tmp_path / "whole" / "model.npz") as whole, np.load(killed / "model.npz") as resumed:
        for name in whole.files:
            assert_same_up_to_rounding(resumed[name], whole[name], name)
