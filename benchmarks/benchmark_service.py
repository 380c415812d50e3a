#!/usr/bin/env python
"""The offline web service (score.py in azmlinfsrv) against the same model called in-process.

    MNIST_DIR=/path/to/mnist .venv/bin/python benchmarks/benchmark_service.py

Prints the latency of one image over HTTP (p50, p99; goal <= 5 ms / <= 20 ms on a 2-core machine) and the
throughput of batches of 100 images with 1 and 8 concurrent clients, as a share of the in-process forward
throughput (goal >= 50 %). The model is the lesson's 784-1000-1000-10 MLP (untrained: the weights' values do not
change the time); the images are MNIST's test images if MNIST_DIR is set, else random grey levels.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
import requests
from azureml.core.model import InferenceConfig

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from azureml_offline.engine import server  # noqa: E402
from azureml_offline.model import Model  # noqa: E402
from azureml_offline.webservice import AciWebservice  # noqa: E402
from azureml_offline.workspace import workspace_at  # noqa: E402
from chainer_mnist import MLP, load_mnist  # noqa: E402


def test_images():
    if os.environ.get("MNIST_DIR"):
        return np.rint(load_mnist()[2][:1000] * 255).astype(int)
    return np.random.RandomState(0).randint(0, 256, (1000, 784))


def deploy(root, workers):
    """A service of the lesson's model in a fresh offline workspace under `root`."""
    classifier = L.Classifier(MLP(1000))
    classifier(np.zeros((1, 784), np.float32), np.zeros(1, np.int32))
    chainer.serializers.save_npz(root / "model.npz", classifier)
    workspace = workspace_at(root / "workspace")
    model = Model.register(workspace, str(root / "model.npz"), "chainer-dnn-mnist")
    (root / "source").mkdir()
    for name in ("score.py", "chainer_mnist.py"):
        shutil.copy(REPO / name, root / "source")
    server.WORKERS = workers
    service = Model.deploy(
        workspace,
        "benchmark",
        [model],
        InferenceConfig(entry_script="score.py", source_directory=str(root / "source")),
        AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1, auth_enabled=True),
    )
    service.wait_for_deployment()
    return classifier.predictor, service


def in_process(predictor, images, repeats):
    """Seconds per call of score.py's forward pass (scaling, MLP, softmax) on `images`, best of `repeats`."""
    x = images.astype(np.float32)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            F.softmax(predictor(x / np.float32(255))).array.argmax(axis=1)
        times.append(time.perf_counter() - start)
    return min(times)


def decode_and_check(bodies, repeats):
    """Seconds per batch of what the server does besides the forward pass: its json.loads and score.py's checks."""
    from score import to_images

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        to_images(json.loads(bodies[0])["data"])
        times.append(time.perf_counter() - start)
    return min(times)


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def clients(service, bodies, count, requests_each):
    """Run `count` concurrent clients, each posting `requests_each` bodies; return the latencies and the wall time."""
    key = service.get_keys()[0]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    latencies, failures = [], []

    def client(number):
        with requests.Session() as session:
            for i in range(requests_each):
                body = bodies[(number * requests_each + i) % len(bodies)]
                start = time.perf_counter()
                response = session.post(service.scoring_uri, data=body, headers=headers, timeout=60)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    failures.append(response.status_code)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(count)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    assert not failures, f"{len(failures)} requests failed: {set(failures)}"
    return np.array(latencies), wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=server.WORKERS, help="server worker processes")
    parser.add_argument("--requests", type=int, default=500, help="single-image requests for the latency")
    parser.add_argument("--batches", type=int, default=40, help="batches of 100 per client")
    args = parser.parse_args()
    images = test_images()
    singles = [json.dumps({"data": images[i : i + 1].tolist()}) for i in range(len(images))]
    batches = [json.dumps({"data": images[i : i + 100].tolist()}) for i in range(0, len(images), 100)]
    print(
        f"Host: {cpu_name()}, {os.cpu_count()} CPUs; load average "
        f"{os.getloadavg()[0]:.2f} at the start; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}"
    )
    with tempfile.TemporaryDirectory() as folder:
        predictor, service = deploy(Path(folder), args.workers)
        try:
            print(
                f"Server: azmlinfsrv, {args.workers} worker(s); body of one image {len(singles[0])} bytes, "
                f"of 100 images {len(batches[0]) / 1e3:.0f} kB"
            )
            clients(service, singles, 1, 50)  # warm-up
            latency, _ = clients(service, singles, 1, args.requests)
            one = in_process(predictor, images[:1], 200)
            print(
                f"One image over HTTP: p50 {np.percentile(latency, 50) * 1e3:.2f} ms, "
                f"p99 {np.percentile(latency, 99) * 1e3:.2f} ms (goal 5 / 20 ms); "
                f"in-process forward {one * 1e3:.2f} ms"
            )
            forward = 100 / in_process(predictor, images[:100], 50)
            print(
                f"Batches of 100, in-process forward: {forward:.0f} images/s; decoding the request's JSON and "
                f"checking it take {decode_and_check(batches, 20) * 1e3:.1f} ms a batch, the forward "
                f"{100 / forward * 1e3:.1f} ms"
            )
            for count in (1, 8):
                latency, wall = clients(service, batches, count, args.batches)
                rate = count * args.batches * 100 / wall
                print(
                    f"Batches of 100 over HTTP, {count} client(s): {rate:.0f} images/s = {rate / forward:.0%} of "
                    f"in-process (goal 50 %); p50 {np.percentile(latency, 50) * 1e3:.1f} ms a request"
                )
        finally:
            service.delete()
    print(f"Load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
