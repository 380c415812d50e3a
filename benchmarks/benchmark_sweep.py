"""The tuning lesson's sweep (notebooks/02-tune-hyperparameters.ipynb) on real MNIST, with its early termination
policy and without: wall time, child-epochs run, how busy the cores were, and the best accuracy found.

Both sweeps sample the same hyperparameters (the same seed), each in a fresh offline workspace, one after the
other. Core use is the CPU time of the sweep's processes (the driver, runners and scripts, all waited for) over
wall time x cores; the whole machine's is from /proc/stat, for the load of anything else running meanwhile.

    python benchmarks/benchmark_sweep.py [--data-dir DIR] [--only policy|none]
"""

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RUN_ACCURACY = 0.9861  # lesson 01's run: 10 epochs, 1000 units, batch 128, lr 0.001 (README)


def lesson_config(project_folder, compute_target, with_policy):
    """The lesson's HyperDriveConfig (keep in step with the notebook's cells)."""
    from azureml.core import Environment, ScriptRunConfig
    from azureml.train.hyperdrive import (
        BanditPolicy,
        HyperDriveConfig,
        PrimaryMetricGoal,
        RandomParameterSampling,
        choice,
        loguniform,
    )

    src = ScriptRunConfig(
        source_directory=project_folder,
        script="chainer_mnist.py",
        arguments=["--epochs", 5, "--output_dir", "./outputs"],
        compute_target=compute_target,
        environment=Environment("chainer-mnist-gpu"),
    )
    sampling = RandomParameterSampling(
        {
            "--lr": loguniform(math.log(1e-5), math.log(1e-1)),
            "--unit": choice(256, 512, 1024),
            "--batchsize": choice(64, 128, 256),
        },
        properties={"seed": 42},
    )
    policy = BanditPolicy(evaluation_interval=1, slack_factor=0.01, delay_evaluation=1) if with_policy else None
    return HyperDriveConfig(
        run_config=src,
        hyperparameter_sampling=sampling,
        policy=policy,
        primary_metric_name="Accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=8,
        max_concurrent_runs=2,
    )


def busy_jiffies():
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def sweep(folder, with_policy):
    from azureml.core.compute import AmlCompute

    from azureml_offline.backend import backend_of
    from azureml_offline.compute import ComputeTarget
    from azureml_offline.experiment import Experiment
    from azureml_offline.run import metric_values
    from azureml_offline.workspace import Workspace

    os.environ["AZUREML_OFFLINE_DIR"] = str(folder / "workspace")
    (folder / "project").mkdir()
    (folder / "project" / "chainer_mnist.py").write_bytes((REPO / "chainer_mnist.py").read_bytes())
    ws = Workspace.from_config()
    target = ComputeTarget.create(
        ws, "gpu-cluster", AmlCompute.provisioning_configuration(vm_size="STANDARD_NC4AS_T4_V3", max_nodes=4)
    )
    config = lesson_config(str(folder / "project"), target, with_policy)
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before = busy_jiffies()
    start = time.perf_counter()
    run = Experiment(ws, "chainer-mnist-hyperdrive").submit(config)
    run.wait_for_completion()
    backend_of(run).runner(
        run.id
    ).wait()  # the driver: its CPU time (and, waited for in turn, its children's) is counted once it ends
    wall = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_after = busy_jiffies()
    children = list(run.get_children())
    curves = [metric_values(child.get_metrics().get("Accuracy")) for child in children]
    epochs = [len(curve) for curve in curves]
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    cores = len(os.sched_getaffinity(0))
    best = run.get_children_sorted_by_primary_metric(top=1)[0]
    return {
        "policy": "Bandit(slack_factor=0.01, delay_evaluation=1)" if with_policy else "none",
        "wall_seconds": round(wall, 1),
        "child_epochs": sum(epochs),
        "epochs_per_child": epochs,
        "statuses": [child.get_status() for child in children],
        "sweep_cpu_seconds": round(cpu, 1),
        "sweep_core_use": round(cpu / (wall * cores), 3),
        "machine_core_use": round((busy_after[0] - busy_before[0]) / (busy_after[1] - busy_before[1]), 3),
        "best_accuracy": best["best_primary_metric"],
        "best_hyperparameters": json.loads(best["hyperparameters"]),
        "curves": curves,
        "hyperparameters": [json.loads(run.get_hyperparameters()[child.id]) for child in children],
        "default_run_accuracy": DEFAULT_RUN_ACCURACY,
        "load_average_after": os.getloadavg(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR") or str(REPO.parent / "shared/data/mnist"))
    parser.add_argument("--only", choices=["policy", "none"])
    args = parser.parse_args()
    os.environ["MNIST_DIR"] = str(Path(args.data_dir).resolve())
    print(f"host: {os.cpu_count()} CPUs, {cpu_model()}; load average before: {os.getloadavg()}", flush=True)
    results = []
    for with_policy in (True, False):
        if args.only and args.only != ("policy" if with_policy else "none"):
            continue
        with tempfile.TemporaryDirectory() as folder:
            results.append(sweep(Path(folder), with_policy))
        print(json.dumps(results[-1]), flush=True)
    if len(results) == 2:
        saved = 1 - results[0]["child_epochs"] / results[1]["child_epochs"]
        print(
            f"early termination ran {results[0]['child_epochs']} child-epochs instead of "
            f"{results[1]['child_epochs']}: {saved:.0%} saved; wall time {results[0]['wall_seconds']} s "
            f"instead of {results[1]['wall_seconds']} s"
        )


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
