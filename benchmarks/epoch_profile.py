"""Where an epoch of chainer_mnist.py goes on this host's CPU: forward, backward, Adam's update and the test set.

The training loop of chainer_mnist.train() with a clock between its parts (the same model, optimizer and CPU
settings), on real MNIST with the defaults; the second epoch is reported, after one that warms up numba and the
allocator. Compare with benchmark_epoch.py's GEMM limit, the matrix products' share of the forward and backward.

    python benchmarks/epoch_profile.py [--data-dir DIR]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import chainer
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import chainer_mnist  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batchsize", type=int, default=128)
    parser.add_argument("--unit", type=int, default=1000)
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR") or str(REPO.parent / "shared/data/mnist"))
    args = parser.parse_args()
    train_x, train_y, test_x, test_y = chainer_mnist.load_mnist(args.data_dir)
    chainer_mnist.tune_cpu()
    model, optimizer = chainer_mnist.build(args.unit, 0, chainer.get_device("@numpy"))
    for epoch in (1, 2):
        seconds = dict.fromkeys(("forward", "backward", "Adam's update", "test set"), 0.0)
        order = np.random.RandomState([0, epoch]).permutation(len(train_x))
        start = time.perf_counter()
        for i in range(0, len(order), args.batchsize):
            batch = order[i : i + args.batchsize]
            t0 = time.perf_counter()
            loss = model(train_x[batch], train_y[batch])
            t1 = time.perf_counter()
            model.cleargrads()
            loss.backward()
            t2 = time.perf_counter()
            optimizer.update()
            t3 = time.perf_counter()
            seconds["forward"] += t1 - t0
            seconds["backward"] += t2 - t1
            seconds["Adam's update"] += t3 - t2
        t4 = time.perf_counter()
        chainer_mnist.test(model, test_x, test_y)
        seconds["test set"] = time.perf_counter() - t4
        total = time.perf_counter() - start
    print(
        f"epoch {total:.2f} s: "
        + ", ".join(f"{name} {s:.2f} s" for name, s in seconds.items())
        + f", the rest {total - sum(seconds.values()):.2f} s"
    )


if __name__ == "__main__":
    main()
