"""Seconds per epoch, test accuracy and peak memory of chainer_mnist.py against a seed-style loop.

The seed-style loop is how the original sample trained: a SerialIterator over a TupleDataset and
concat_examples, one Python tuple per example, Chainer's own Adam at a constant step size. Each
contender runs in its own process on real MNIST (--data-dir, else $MNIST_DIR, else
../shared/data/mnist) with the same model and batch size; an epoch includes evaluating the test set.

    python benchmarks/benchmark_epoch.py [--epochs 10] [--data-dir DIR]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import chainer
import chainer.links as L
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import chainer_mnist  # noqa: E402


def seed_style_loop(data_dir, epochs, batchsize, units):
    """Train as the original sample did; print one JSON line with per-epoch seconds and accuracy."""
    train_x, train_y, test_x, test_y = chainer_mnist.load_mnist(data_dir)
    train, test = chainer.datasets.TupleDataset(train_x, train_y), chainer.datasets.TupleDataset(test_x, test_y)
    np.random.seed(0)
    model = L.Classifier(chainer_mnist.MLP(units))
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    train_iter = chainer.iterators.SerialIterator(train, batchsize)
    seconds, accuracy = [], 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        while True:
            x, t = chainer.dataset.concat_examples(train_iter.next())
            optimizer.update(model, x, t)
            if train_iter.is_new_epoch:
                break
        correct = 0.0
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            for batch in chainer.iterators.SerialIterator(test, batchsize, repeat=False, shuffle=False):
                x, t = chainer.dataset.concat_examples(batch)
                model(x, t)
                correct += float(model.accuracy.array) * len(t)
        accuracy = correct / len(test)
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"seconds": seconds, "test_accuracy": accuracy}))


def measure(command):
    """Run `command`; return its stdout, CPU times and peak resident memory."""
    with tempfile.TemporaryFile("w+") as stdout:
        process = subprocess.Popen(command, stdout=stdout)
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status):
            sys.exit(f"{' '.join(command)} failed")
        stdout.seek(0)
        return stdout.read(), usage


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batchsize", type=int, default=128)
    parser.add_argument("--unit", type=int, default=1000)
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR") or str(REPO.parent / "shared/data/mnist"))
    parser.add_argument("--seed-loop", action="store_true", help=argparse.SUPPRESS)  # The child process.
    args = parser.parse_args()
    if args.seed_loop:
        return seed_style_loop(args.data_dir, args.epochs, args.batchsize, args.unit)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is a warm-up")

    settings = ["--epochs", str(args.epochs), "--batchsize", str(args.batchsize), "--unit", str(args.unit),
                "--data-dir", args.data_dir]
    results = {}
    with tempfile.TemporaryDirectory() as output_dir:
        stdout, usage = measure([sys.executable, str(REPO / "chainer_mnist.py"), *settings, "--device", "-1",
                                 "--output_dir", output_dir])
        seconds = [float(s) for s in re.findall(r"^epoch .* ([\d.]+) s$", stdout, re.MULTILINE)]
        accuracy = json.loads((Path(output_dir) / "model.json").read_text())["test_accuracy"]
        results["chainer_mnist.py"] = seconds, accuracy, usage
    stdout, usage = measure([sys.executable, __file__, *settings, "--seed-loop"])
    seed = json.loads(stdout.splitlines()[-1])
    results["seed-style loop"] = seed["seconds"], seed["test_accuracy"], usage

    print(f"MNIST, {args.unit} units, batch {args.batchsize}, {args.epochs} epochs, CPU, "
          f"{os.cpu_count()} cores; median seconds per epoch after a warm-up epoch")
    print(f"{'':18} {'s/epoch':>8} {'test accuracy':>14} {'peak memory':>12} {'user s/epoch':>13} {'system s/epoch':>15}")
    medians = {}
    for name, (seconds, accuracy, usage) in results.items():
        medians[name] = statistics.median(seconds[1:])
        print(f"{name:18} {medians[name]:8.2f} {accuracy:14.2%} {usage.ru_maxrss / 1024:8.0f} MiB "
              f"{usage.ru_utime / len(seconds):13.2f} {usage.ru_stime / len(seconds):15.2f}")
    print(f"chainer_mnist.py is {medians['seed-style loop'] / medians['chainer_mnist.py']:.2f} times as fast")


if __name__ == "__main__":
    main()
