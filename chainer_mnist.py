#!/usr/bin/env python
"""Train a multi-layer perceptron on MNIST with Chainer, on Azure Machine Learning or offline.

The model and defaults are those of Chainer's examples/mnist/train_mnist.py; the command line
takes the classic Azure ML sample's script_params (--epochs, --batchsize, --output_dir).
Metrics go to the Azure ML run (the SDK's offline run outside Azure). The model lands in
<output_dir>/model.npz with its final metrics in model.json; checkpoint.npz lets a killed run
resume where it stopped.
"""
import argparse
import ctypes
import gzip
import hashlib
import http.client
import json
import math
import os
import platform
import secrets
import signal
import struct
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import chainer
import chainer.functions as F
import chainer.links as L
import numba
import numpy as np

# The four original files and their published SHA-256 sums.
SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
# Tried in order; yann.lecun.com, which chainer.datasets.get_mnist() uses, no longer serves them.
MIRRORS = (
    "https://azureopendatastorage.blob.core.windows.net/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
CHECKPOINT = "checkpoint.npz"  # Not "model*": the notebook downloads outputs/model* as the result.


class DataError(Exception):
    """A missing, damaged or undownloadable MNIST file; the message names it."""


class MLP(chainer.Chain):
    """784 -> n_units -> n_units -> n_out with ReLU, as in Chainer's MNIST example."""

    def __init__(self, n_units, n_out=10):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(None, n_units)
            self.l2 = L.Linear(None, n_units)
            self.l3 = L.Linear(None, n_out)

    def forward(self, x):
        h1 = F.relu(self.l1(x))
        h2 = F.relu(self.l2(h1))
        return self.l3(h2)


def adam_update(p, g, m, v, beta1, beta2, eps, step_size):
    """Chainer's Adam arithmetic for one flattened parameter, fused into one pass over memory."""
    for i in numba.prange(p.size):
        m[i] += (1 - beta1) * (g[i] - m[i])
        v[i] += (1 - beta2) * (g[i] * g[i] - v[i])
        p[i] -= step_size * m[i] / (np.sqrt(v[i]) + eps)


# Waking the other core pays off for the weight matrices only, not for the biases and the last layer.
PARALLEL_SIZE = 1 << 16
adam_update_serial = numba.njit(fastmath=True, cache=True)(adam_update)
adam_update_parallel = numba.njit(parallel=True, fastmath=True, cache=True)(adam_update)


class FusedAdamRule(chainer.optimizers.adam.AdamRule):
    """Adam with a fused CPU update: Chainer's NumPy update makes about ten temporaries the size of
    each weight matrix per step, which costs more than the backward pass. The GPU keeps Chainer's kernel."""

    def update_core_cpu(self, param):
        if param.grad is None:  # As Chainer's rule: a parameter that took no part in the loss stays.
            return
        hp = self.hyperparam
        cast = param.array.dtype.type
        update = adam_update_parallel if param.array.size >= PARALLEL_SIZE else adam_update_serial
        update(*(a.reshape(-1) for a in (param.array, param.grad, self.state["m"], self.state["v"])),
                        cast(hp.beta1), cast(hp.beta2), cast(hp.eps), cast(self.alpha_t * hp.eta))


class FusedAdam(chainer.optimizers.Adam):
    def create_update_rule(self):
        if self.hyperparam.weight_decay_rate or self.hyperparam.amsgrad or self.hyperparam.adabound:
            raise ValueError("FusedAdam computes plain Adam: no weight decay, AMSGrad or AdaBound")
        return FusedAdamRule(self.hyperparam)


def read_idx(path, ndim):
    """Return the uint8 array of an IDX file (gzip-compressed or not), checking header and length."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:  # Missing, truncated or corrupt gzip.
        raise DataError(f"{path}: cannot read it ({e})") from None
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated ({len(data)} bytes, shorter than an IDX header)")
    magic = struct.unpack(">I", data[:4])[0]
    if magic != 0x800 + ndim:  # 0x08: unsigned bytes; then the number of dimensions.
        raise DataError(f"{path}: not a {ndim}-dimensional IDX file of bytes (magic {magic:#010x}, "
                        f"expected {0x800 + ndim:#010x})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != math.prod(shape):
        raise DataError(f"{path}: {len(data) - header} bytes of data where its header announces "
                        f"{'x'.join(map(str, shape))} = {math.prod(shape)}; the file is truncated or corrupt")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read_split(directory, prefix):
    """Read <prefix>-images-idx3-ubyte and <prefix>-labels-idx1-ubyte (.gz or not) as model inputs."""
    def find(name):
        for candidate in (directory / f"{name}.gz", directory / name):
            if candidate.is_file():
                return candidate
        raise DataError(f"{directory / name}.gz not found (nor uncompressed): the data folder must hold "
                        f"the four MNIST files")

    images_path, labels_path = find(f"{prefix}-images-idx3-ubyte"), find(f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: images of 28x28 pixels expected, found "
                        f"{images.shape[1]}x{images.shape[2]}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    if len(images) == 0:
        raise DataError(f"{images_path} holds no images")
    if labels.max(initial=0) > 9:
        raise DataError(f"{labels_path}: label {labels.max()} found; digits 0-9 expected")
    x = np.divide(images.reshape(len(images), -1), np.float32(255), dtype=np.float32)
    return x, labels.astype(np.int32)


def cache_dir():
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chainer-mnist-azureml"


def save_atomically(path, write):
    """Call write(file) on a temporary file beside `path`, then rename it into place: readers see
    the old file or the complete new one, never a partial one. Hidden, so never taken for a model."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Not mkstemp, whose files are private whatever the umask: the model and the data cache are not.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def download(directory, mirrors=MIRRORS):
    """Make sure `directory` holds the four files with their published SHA-256 sums, fetching
    what is missing from the first mirror that serves it intact."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, digest in SHA256.items():
        path = directory / name
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
            continue
        failures = []
        for mirror in mirrors:
            url = mirror + name
            print(f"Downloading {url}", flush=True)
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    data = response.read()
            except (OSError, ValueError, http.client.HTTPException) as e:
                failures.append(f"{url}: {e}")
                continue
            if hashlib.sha256(data).hexdigest() != digest:
                failures.append(f"{url}: SHA-256 mismatch")
                continue
            save_atomically(path, lambda f: f.write(data))
            break
        else:
            raise DataError(f"cannot download {name} ({'; '.join(failures)}); put the four MNIST files in a "
                            f"folder and pass --data-dir FOLDER (or set MNIST_DIR)")
    return directory


def load_mnist(data_dir=None):
    """Return (train_x, train_y, test_x, test_y): float32 [N, 784] in [0, 1] and int32 labels.

    From data_dir, else the folder in $MNIST_DIR, else a download cache."""
    data_dir = data_dir or os.environ.get("MNIST_DIR")
    if data_dir:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise DataError(f"data folder {data_dir} does not exist")
    else:
        data_dir = download(cache_dir(), MIRRORS)
    return read_split(data_dir, "train") + read_split(data_dir, "t10k")


def tune_cpu():
    """Three fixes for the CPU, each a no-op where it does not apply.

    glibc maps and unmaps each multi-megabyte temporary on every step (seconds of system time and
    page faults per epoch): keep freed memory for reuse instead. Adam's first moment of weights
    whose inputs are always 0 (MNIST's border pixels) decays into denormal floats, which x86 CPUs
    multiply 100 times slower (an epoch grew from 5 s to 6.5 s): flush them to zero, as PyTorch's
    set_flush_denormal does, in this thread and the update's threads, which start later and inherit it.
    And the update's threads must sleep, not spin, between steps."""
    # Spinning, they hold the core that OpenBLAS needs for the next matrix product (forward passes took
    # twice as long); libgomp reads this when the first update loads it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        libc, libm = ctypes.CDLL("libc.so.6"), ctypes.CDLL("libm.so.6")
    except OSError:  # Not glibc.
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    libc.mallopt(M_MMAP_THRESHOLD, 64 << 20)
    libc.mallopt(M_TRIM_THRESHOLD, 512 << 20)
    libc.mallopt(M_TOP_PAD, 64 << 20)
    if platform.machine() == "x86_64":
        for dtype in (np.float32, np.float64):  # Computed now: NumPy warns if it first meets a CPU that flushes denormals.
            np.finfo(dtype)
        environment = (ctypes.c_uint32 * 8)()  # glibc's fenv_t on x86-64: 32 bytes, MXCSR last.
        libm.fegetenv(environment)
        environment[7] |= 0x8040  # MXCSR's flush-to-zero and denormals-are-zero bits.
        libm.fesetenv(environment)


def gpu_count():
    if not chainer.backends.cuda.available:  # CuPy is not installed or cannot load.
        return 0
    cupy = chainer.backends.cuda.cupy
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:  # No driver or no GPU.
        return 0


def select_device(number):
    """-1: the CPU through NumPy; N: GPU N through CuPy; None: GPU 0 if there is one, else the CPU."""
    gpus = gpu_count()
    if number is None:
        number = 0 if gpus else -1
    if number == -1:
        return chainer.get_device("@numpy")
    if number < -1:
        raise SystemExit(f"error: --device {number}: -1 (CPU) or a GPU number expected")
    if not chainer.backends.cuda.available:
        raise SystemExit(f"error: --device {number} asks for a GPU, but CuPy is not installed "
                         f"(pip install cupy-cuda11x) or cannot load; --device -1 runs on the CPU")
    if number >= gpus:
        raise SystemExit(f"error: --device {number}: CuPy sees {gpus} GPU(s); --device -1 runs on the CPU")
    return chainer.get_device(f"@cupy:{number}")


def save_checkpoint(path, model, optimizer, **values):
    """Model, optimizer state (Adam's moments and step count) and `values`, in one .npz."""
    state = chainer.serializers.DictionarySerializer()
    state["model"].save(model)
    state["optimizer"].save(optimizer)
    save_atomically(path, lambda f: np.savez(f, **values, **state.target))


def evaluate(model, x, t, batchsize=1000):
    """Mean loss and accuracy over (x, t) in large batches, without building a graph."""
    loss = accuracy = 0
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        for i in range(0, len(x), batchsize):
            n = len(x[i:i + batchsize])
            loss += model(x[i:i + batchsize], t[i:i + batchsize]).array * n
            accuracy += model.accuracy.array * n
    return float(loss) / len(x), float(accuracy) / len(x)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Chainer example: MNIST, on Azure ML or offline")
    parser.add_argument("--epochs", "-e", type=int, default=10, help="number of sweeps over the data")
    parser.add_argument("--batchsize", "-b", type=int, default=128, help="examples per minibatch")
    parser.add_argument("--unit", "-u", type=int, default=1000, help="units in each hidden layer")
    parser.add_argument("--output_dir", "-o", default="./outputs",
                        help="folder for model.npz, model.json and the checkpoint to resume from")
    parser.add_argument("--device", "-d", type=int, default=None,
                        help="-1: CPU (NumPy); N: GPU N (CuPy); default: GPU 0 if CuPy sees one, else CPU")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the four MNIST IDX files (.gz or not); default: $MNIST_DIR, "
                             "else a download into " + str(cache_dir()))
    parser.add_argument("--seed", type=int, default=0, help="seed of initial weights and shuffling")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help=f"start afresh even if the output folder holds {CHECKPOINT}")
    args = parser.parse_args(argv)
    for name in ("epochs", "batchsize", "unit"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    # Cancelling a run sends SIGTERM: leave through Python, so that a file being saved is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    from azureml.core.run import Run  # Here, so that importing this module stays cheap.

    tune_cpu()
    device = select_device(args.device)
    print(f"Device: {'CPU (NumPy)' if device.xp is np else f'GPU {device.device.id} (CuPy)'}")
    try:
        train_x, train_y, test_x, test_y = (device.send(a) for a in load_mnist(args.data_dir))
    except DataError as e:
        raise SystemExit(f"error: {e}") from None

    # Same seed, same initial weights and same shuffles; each epoch's order depends on the seed and
    # the epoch alone, so a resumed run goes on exactly as an uninterrupted one would.
    np.random.seed(args.seed)
    device.xp.random.seed(args.seed)
    model = L.Classifier(MLP(args.unit))
    model.to_device(device)
    device.use()
    optimizer = FusedAdam()
    optimizer.setup(model)
    # Adam's step size decays linearly to zero over the run: +0.2-0.3 points of test accuracy.
    alpha = optimizer.alpha
    steps_per_epoch = -(-len(train_x) // args.batchsize)
    total_steps = args.epochs * steps_per_epoch

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"epochs": args.epochs, "batchsize": args.batchsize, "units": args.unit, "seed": args.seed}
    checkpoint = out / CHECKPOINT
    first_epoch, metrics = 1, {}
    if args.resume and checkpoint.exists():
        with np.load(checkpoint) as saved:
            if json.loads(str(saved["settings"])) != settings:
                raise SystemExit(f"error: {checkpoint} is from a run with other settings "
                                 f"({saved['settings']}); use them, another --output_dir, or --no-resume")
            first_epoch, metrics = int(saved["epoch"]) + 1, json.loads(str(saved["metrics"]))
            chainer.serializers.NpzDeserializer(saved, path="model/").load(model)
            chainer.serializers.NpzDeserializer(saved, path="optimizer/").load(optimizer)
        print(f"Resuming after epoch {first_epoch - 1} from {checkpoint}")

    run = Run.get_context()
    run.log("Batch size", args.batchsize)
    run.log("Epochs", args.epochs)
    run.log("Units", args.unit)
    for epoch in range(first_epoch, args.epochs + 1):
        start = time.perf_counter()
        order = device.send(np.random.RandomState([args.seed, epoch]).permutation(len(train_x)))
        train_loss = train_accuracy = 0
        for i in range(0, len(train_x), args.batchsize):
            optimizer.alpha = alpha * (1 - optimizer.t / total_steps)
            batch = order[i:i + args.batchsize]
            loss = model(train_x[batch], train_y[batch])
            model.cleargrads()
            loss.backward()
            optimizer.update()
            train_loss += loss.array * len(batch)
            train_accuracy += model.accuracy.array * len(batch)
        test_loss, test_accuracy = evaluate(model, test_x, test_y)
        metrics = {"epoch": epoch, "train_loss": float(train_loss) / len(train_x),
                   "train_accuracy": float(train_accuracy) / len(train_x), "test_loss": test_loss,
                   "test_accuracy": test_accuracy, "seconds": time.perf_counter() - start}
        print(f"epoch {epoch:3d}  train loss {metrics['train_loss']:.4f} accuracy {metrics['train_accuracy']:.4f}"
              f"  test loss {test_loss:.4f} accuracy {test_accuracy:.4f}  {metrics['seconds']:.2f} s", flush=True)
        run.log("Loss", test_loss)
        run.log("Accuracy", test_accuracy)
        run.log("Train loss", metrics["train_loss"])
        run.log("Train accuracy", metrics["train_accuracy"])

        save_checkpoint(checkpoint, model, optimizer, epoch=epoch, settings=json.dumps(settings),
                        metrics=json.dumps(metrics))

    save_atomically(out / "model.npz", lambda f: chainer.serializers.save_npz(f, model))
    save_atomically(out / "model.json", lambda f: f.write(json.dumps({**settings, **metrics}, indent=2).encode()))
    print(f"Saved {out / 'model.npz'} (test accuracy {metrics['test_accuracy']:.4f})")


if __name__ == "__main__":
    main()
