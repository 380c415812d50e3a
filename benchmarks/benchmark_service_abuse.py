#!/usr/bin/env python
"""The offline web service's one-image latency while other clients hold connections: idle ones, ones that send
their body or their headers at a byte a second, and kept-alive ones (tests/test_service_abuse.py's clients); and
more slow clients than the server has threads, each held until the server's read deadline cuts it off.

    PYTHONPATH=. .venv/bin/python benchmarks/benchmark_service_abuse.py

For each load, prints the latency of --requests one-image requests (each on a new connection, as a new client
would) and the service's state meanwhile; a request without an answer within --timeout seconds counts as timed
out. The server imports azureml_offline from PYTHONPATH, else where it is installed: to compare two versions, run
this file from each checkout with PYTHONPATH set to that checkout.
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from benchmark_service import cpu_name, deploy, test_images  # noqa: E402
from test_service_abuse import ABUSERS, SCORE, dripping  # noqa: E402

from azureml_offline.engine import server  # noqa: E402

BEYOND = server.WORKERS * server.THREADS + 4  # slow clients: more than the server's threads
LOADS = {
    **ABUSERS,
    f"{BEYOND} sending their body at a byte a second": (
        BEYOND,
        dripping(SCORE + b"Content-Length: 99\r\n\r\n", b"{" * 99),
    ),
}


def latencies(service, body, count, timeout):
    """Seconds of each of `count` one-image requests (None: no answer within `timeout`), each on a new connection."""
    key = service.get_keys()[0]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    times = []
    for _ in range(count):
        start = time.perf_counter()
        try:
            response = requests.post(service.scoring_uri, data=body, headers=headers, timeout=timeout)
            assert response.status_code == 200, response.text
            times.append(time.perf_counter() - start)
        except requests.Timeout:
            times.append(None)
    return times


def under(service, load, body, args):
    """The latencies while the clients of `load` (a LOADS key, or None) hold their connections, and the state."""
    count, abuser = LOADS[load] if load else (0, None)
    stop = threading.Event()
    threads = [threading.Thread(target=abuser, args=(service, stop)) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1 if threads else 0)  # the clients are connected
        times = latencies(service, body, args.requests, args.timeout)
        service.update_deployment_state()
        return times, service.state
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20, help="one-image requests under each load")
    parser.add_argument("--timeout", type=float, default=10, help="seconds a request waits for its answer")
    args = parser.parse_args()
    body = json.dumps({"data": test_images()[:1].tolist()})
    print(f"Host: {cpu_name()}, {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the start")
    with tempfile.TemporaryDirectory() as folder:
        _, service = deploy(Path(folder), 2)
        try:
            latencies(service, body, 20, args.timeout)  # warm-up
            for load in (None, *LOADS):
                times, state = under(service, load, body, args)
                answered = np.array([t for t in times if t is not None])
                figures = (
                    f"p50 {np.percentile(answered, 50) * 1e3:.1f} ms, max {answered.max() * 1e3:.1f} ms"
                    if len(answered)
                    else "no answer"
                )
                print(
                    f"{load or 'no other client'}: {figures}; {times.count(None)} of {len(times)} timed out "
                    f"({args.timeout:g} s); state {state}"
                )
        finally:
            service.delete()
    print(f"Load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
