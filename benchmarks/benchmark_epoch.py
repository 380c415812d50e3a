"""Seconds per epoch of chainer_mnist.py against the same MLP in PyTorch's CPU build, on this host, in one run.

Target (issue 8): chainer_mnist.py's s/epoch <= 0.95 x PyTorch's. Both train on real MNIST with the defaults
(784-1000-1000-10, batch 128, Adam with a decaying step size; an epoch includes the test set), each in its own
process, interleaved round by round (ABBA order) so that a shared machine's load falls on both alike. Beside them,
the host's GEMM limit: the matrix products of one epoch alone, timed with NumPy's OpenBLAS in the script's
environment. Prints the host's CPU, OpenBLAS's kernels and the load average before and after.

    python benchmarks/benchmark_epoch.py [--rounds 3] [--epochs 4] [--data-dir DIR]

PyTorch is an optional dependency: `make benchmark` installs it (see pyproject.toml's "bench").
"""

import argparse
import ctypes
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import chainer_mnist  # noqa: E402
from azureml_offline.engine.processes import THREAD_VARIABLES  # noqa: E402

CONTENDERS = {
    "chainer_mnist.py": lambda settings, out: [
        str(REPO / "chainer_mnist.py"),
        *settings,
        "--device",
        "-1",
        "--no-resume",
        "--output_dir",
        out,
    ],
    "PyTorch": lambda settings, out: [str(REPO / "benchmarks" / "pytorch_mnist.py"), *settings],
}


def epoch_products(n_train, n_test, units, batchsize):
    """The (a, b) operand shapes of every matrix product in one epoch, as Chainer's Linear computes them:
    forward x W^T; backward gW = gy^T x for each layer, gx = gy W for all but the first; then the test set."""
    layers = [(784, units), (units, units), (units, 10)]
    products = []
    for batch in [batchsize] * (n_train // batchsize) + [n_train % batchsize] * bool(n_train % batchsize):
        products += [((batch, n_in), (n_in, n_out)) for n_in, n_out in layers]
        products += [((n_out, batch), (batch, n_in)) for n_in, n_out in layers]
        products += [((batch, n_out), (n_out, n_in)) for n_in, n_out in layers[1:]]
    for batch in [1000] * (n_test // 1000) + [n_test % 1000] * bool(n_test % 1000):
        products += [((batch, n_in), (n_in, n_out)) for n_in, n_out in layers]
    return products


def gemm_limit(n_train, n_test, units, batchsize, repeats=3):
    """Seconds and GFLOP/s of one epoch's matrix products alone (the best of `repeats`)."""
    rng = np.random.default_rng(0)
    products = epoch_products(n_train, n_test, units, batchsize)
    operands = {shape: rng.random(shape, dtype=np.float32) for pair in products for shape in pair}
    flops = sum(2 * a[0] * a[1] * b[1] for a, b in products)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for a, b in products:
            np.dot(operands[a], operands[b])
        best = min(best, time.perf_counter() - start)
    return best, flops / best / 1e9


def epoch_seconds(command, env=None):
    """Run a contender; return the seconds of its epochs, from its printed epoch lines."""
    result = subprocess.run([sys.executable, *command], capture_output=True, text=True, env=env)
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    return [float(s) for s in re.findall(r"^epoch .* ([\d.]+) s$", result.stdout, re.MULTILINE)]


def cpu_name():
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = dict(re.findall(r"^(model name|cpu family|model)\s*:\s*(.*)$", info, re.MULTILINE)[:3])
    return f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')})"


def openblas_in_use():
    """The kernel set NumPy's OpenBLAS chose ("SkylakeX", "Prescott", ...), or None where NumPy uses another BLAS."""
    maps = Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else ""
    for library in sorted({line.split()[-1] for line in maps.splitlines() if "openblas" in line.rsplit("/", 1)[-1]}):
        for symbol in ("openblas_get_corename64_", "openblas_get_corename", "scipy_openblas_get_corename64_"):
            corename = getattr(ctypes.CDLL(library), symbol, None)
            if corename is not None:
                corename.restype = ctypes.c_char_p
                return corename().decode()
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each contender, interleaved")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run; the first is a warm-up")
    parser.add_argument("--batchsize", type=int, default=128)
    parser.add_argument("--unit", type=int, default=1000)
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR") or str(REPO.parent / "shared/data/mnist"))
    parser.add_argument(
        "--threads",
        type=int,
        help="threads of each contender (default: all cores); on a busy "
        "machine, 1 keeps either from waiting for a thread that the other processes hold",
    )
    parser.add_argument("--gemm-only", action="store_true", help=argparse.SUPPRESS)  # The child process.
    args = parser.parse_args()
    if args.gemm_only:
        train_x, _, test_x, _ = chainer_mnist.load_mnist(args.data_dir)
        seconds, gflops = gemm_limit(len(train_x), len(test_x), args.unit, args.batchsize)
        return print(f"{seconds} {gflops}")
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is a warm-up")

    print(
        f"Host: {os.cpu_count()} cores of {cpu_name()}; NumPy's OpenBLAS kernels: "
        f"{openblas_in_use()} (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})"
    )
    print(f"Load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    env = None if args.threads is None else dict(os.environ, **{name: str(args.threads) for name in THREAD_VARIABLES})
    settings = [
        "--epochs",
        str(args.epochs),
        "--batchsize",
        str(args.batchsize),
        "--unit",
        str(args.unit),
        "--data-dir",
        args.data_dir,
    ]
    medians = {name: [] for name in CONTENDERS}
    with tempfile.TemporaryDirectory() as out:
        for round_ in range(args.rounds):
            names = list(CONTENDERS) if round_ % 2 == 0 else list(reversed(CONTENDERS))
            for name in names:
                seconds = epoch_seconds(CONTENDERS[name](settings, out), env)
                medians[name].append(statistics.median(seconds[1:]))
                print(
                    f"round {round_ + 1} {name:17} s/epoch after the warm-up: "
                    f"{' '.join(f'{s:.2f}' for s in seconds[1:])}",
                    flush=True,
                )
    gemm = subprocess.run(
        [sys.executable, __file__, "--gemm-only", *settings[2:]], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    print(f"Load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    ratios = [ours / theirs for ours, theirs in zip(medians["chainer_mnist.py"], medians["PyTorch"], strict=True)]
    print(
        f"\nMNIST, {args.unit} units, batch {args.batchsize}, CPU, {args.threads or 'all'} thread(s); "
        f"median s/epoch of each run after a warm-up epoch"
    )
    for name, values in medians.items():
        print(f"{name:17} {statistics.median(values):6.2f} s/epoch  (runs: {' '.join(f'{v:.2f}' for v in values)})")
    print(
        f"{'GEMM limit':17} {float(gemm[0]):6.2f} s/epoch  (the epoch's matrix products alone, "
        f"{float(gemm[1]):.0f} GFLOP/s)"
    )
    ratio = statistics.median(ratios)
    print(
        f"chainer_mnist.py / PyTorch: {ratio:.2f} (runs: {' '.join(f'{r:.2f}' for r in ratios)}); "
        f"target <= 0.95: {'met' if ratio <= 0.95 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
