#!/usr/bin/env python
"""Train a multi-layer perceptron on MNIST with Chainer, on Azure Machine Learning or offline.

Chainer's examples/mnist/train_mnist.py with the Azure ML sample's command line: metrics go to the Azure ML run, the
model to <output_dir>/model.npz and model.json, and a killed run resumes from checkpoint.npz. Under mpiexec, the ranks
share each minibatch (ChainerMN). The core comes first (the model, an epoch, main()); the machinery follows it.
"""

import argparse
import contextlib
import ctypes
import fcntl
import gzip
import hashlib
import io
import json
import math
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import chainer
import chainer.functions as F
import chainer.links as L
import numba
import numpy as np

CHECKPOINT = "checkpoint.npz"  # Not "model*": the notebook downloads outputs/model* as the result.
CHECKPOINT_FORMAT = 2  # 2: with the fingerprint of the data it was trained on.
FLAGS = {"epochs": "--epochs", "batchsize": "--batchsize", "units": "--unit", "lr": "--lr", "seed": "--seed"}


class UsageError(Exception):
    """Something the user can put right, said in one line: the script exits with it, no traceback."""


class DataError(UsageError):
    """A missing, damaged or undownloadable MNIST file; the message names it."""


class MLP(chainer.Chain):
    """784 -> n_units -> n_units -> n_out with ReLU, as in Chainer's MNIST example."""

    def __init__(self, n_units, n_out=10):
        super().__init__()
        # Input sizes given, so the weights are drawn now, on the CPU: the same on every device.
        with self.init_scope():
            self.l1 = L.Linear(784, n_units)
            self.l2 = L.Linear(n_units, n_units)
            self.l3 = L.Linear(n_units, n_out)

    def forward(self, x):
        h1 = F.relu(self.l1(x))
        h2 = F.relu(self.l2(h1))
        return self.l3(h2)


def build(n_units, seed, device, lr=0.001):
    np.random.seed(seed)
    device.xp.random.seed(seed)
    model = L.Classifier(MLP(n_units))
    model.to_device(device)
    device.use()
    optimizer = FusedAdam(alpha=lr)
    optimizer.setup(model)
    return model, optimizer


def train(model, optimizer, x, t, order, batchsize, alpha_at, share=lambda batch: (batch, 1)):
    """One pass over (x, t) in `order`: the mean loss and accuracy, and over how many examples. alpha_at(step) is
    Adam's step size at each step; share(batch), this process's part of a minibatch and its loss's weight."""
    loss_sum = accuracy_sum = count = 0
    for i in range(0, len(order), batchsize):
        part, weight = share(order[i : i + batchsize])
        optimizer.alpha = alpha_at(optimizer.t)
        model.cleargrads()
        if len(part):  # A rank has no part of a minibatch smaller than the number of ranks.
            loss = model(x[part], t[part])
            (loss * weight if weight != 1 else loss).backward()
            loss_sum += loss.array * len(part)
            accuracy_sum += model.accuracy.array * len(part)
            count += len(part)
        optimizer.update()
    return (float(loss_sum) / max(count, 1), float(accuracy_sum) / max(count, 1)), count


def test(model, x, t, batchsize=1000):
    loss = accuracy = 0
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        for i in range(0, len(x), batchsize):
            n = len(x[i : i + batchsize])
            loss += model(x[i : i + batchsize], t[i : i + batchsize]).array * n
            accuracy += model.accuracy.array * n
    return float(loss) / len(x), float(accuracy) / len(x)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Chainer example: MNIST, on Azure ML or offline")
    arg = parser.add_argument
    arg("--epochs", "-e", type=int, default=10, help="number of sweeps over the data")
    arg("--batchsize", "-b", type=int, default=128, help="examples per minibatch")
    # Saved as "units" in model.json, so --units is accepted too.
    arg("--unit", "--units", "-u", dest="units", type=int, default=1000, help="units in each hidden layer")
    arg("--output_dir", "-o", default="./outputs", help="folder for model.npz, model.json and the checkpoint")
    arg("--device", "-d", type=int, help="-1: CPU (NumPy); N: GPU N (CuPy); default: GPU 0 if CuPy sees one, else CPU")
    arg("--data-dir", help=f"folder of the four MNIST files; default: $MNIST_DIR, else a download into {cache_dir()}")
    arg("--lr", type=float, default=0.001, help="Adam's initial step size, decayed linearly to 0 over the run")
    arg("--seed", type=int, default=0, help="seed of initial weights and shuffling")
    arg("--no-resume", dest="resume", action="store_false", help=f"start afresh even if there is a {CHECKPOINT}")
    args = parser.parse_args(argv)
    for name in ("epochs", "batchsize", "units"):
        if getattr(args, name) < 1:
            parser.error(f"{FLAGS[name]} must be at least 1")
    if not 0 < args.lr < float("inf"):
        parser.error("--lr must be a positive number")
    return args


def train_and_save(args):
    from azureml.core.run import Run  # Here, so that importing this module stays cheap.

    tune_cpu()
    ranks = Ranks(args.device)
    check_memory(args.units, args.batchsize, ranks.device)
    settings = {name: getattr(args, name) for name in FLAGS}
    # Rank 0 alone writes the output folder, reads the checkpoint and the data, and sends them to the others.
    with output_folder(args.output_dir, args.units) if ranks.lead else contextlib.nullcontext() as out:
        saved = ranks.broadcast(read_checkpoint(out / CHECKPOINT, settings) if args.resume and ranks.lead else None)
        if ranks.lead:
            device = "CPU (NumPy)" if ranks.device.xp is np else f"GPU {ranks.device.device.id} (CuPy)"
            across = f"; {ranks.size} MPI ranks, ChainerMN's {ranks.communicator} communicator" if ranks.comm else ""
            print(f"Device: {device}{across}")
        data = ranks.broadcast(load_mnist(args.data_dir) if ranks.lead else None)
        if args.batchsize > len(data[0]):
            raise UsageError(f"--batchsize {args.batchsize} is more than the {len(data[0])} training examples")
        digest = hashlib.blake2b(digest_size=16)  # What the data was, for the checkpoint and model.json.
        for array in data:
            digest.update(np.ascontiguousarray(array).data)
        data_record = {"train_examples": len(data[0]), "test_examples": len(data[2]), "fingerprint": digest.hexdigest()}
        train_x, train_y, test_x, test_y = (ranks.device.send(array) for array in data)

        # Same seed, same initial weights and same shuffles; each epoch's order depends on the seed and the epoch
        # alone, so a resumed run goes on exactly as an uninterrupted one would.
        model, optimizer = build(args.units, args.seed, ranks.device, args.lr)
        first_epoch, metrics = resume(saved, model, optimizer, data_record) if saved else (1, {})
        if saved and ranks.lead:
            print(f"Resuming after epoch {first_epoch - 1} from {out / CHECKPOINT}")
        optimizer = ranks.multi_node(optimizer)
        # Adam's step size decays linearly to zero over the run, for a little more test accuracy.
        total_steps = args.epochs * -(-len(train_x) // args.batchsize)
        alpha_at = lambda step, alpha=optimizer.alpha: alpha * (1 - step / total_steps)  # noqa: E731

        run = Run.get_context()
        hyperparameters = {"Batch size": args.batchsize, "Epochs": args.epochs, "Units": args.units}
        for name, value in {**hyperparameters, "Learning rate": args.lr}.items() if ranks.lead else ():
            run.log(name, value)
        (test_x, _), (test_y, _) = ranks.share(test_x), ranks.share(test_y)  # Each rank tests its part.
        for epoch in range(first_epoch, args.epochs + 1):
            start = time.perf_counter()
            order = ranks.device.send(np.random.RandomState([args.seed, epoch]).permutation(len(train_x)))
            means, count = train(model, optimizer, train_x, train_y, order, args.batchsize, alpha_at, ranks.share)
            train_loss, train_accuracy = ranks.mean(means, count)
            test_loss, test_accuracy = ranks.mean(test(model, test_x, test_y), len(test_x))
            metrics = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy}
            metrics.update(test_loss=test_loss, test_accuracy=test_accuracy, seconds=time.perf_counter() - start)
            if not ranks.lead:
                continue
            losses = f"train loss {train_loss:.4f} accuracy {train_accuracy:.4f}  test loss {test_loss:.4f}"
            print(f"epoch {epoch:3d}  {losses} accuracy {test_accuracy:.4f}  {metrics['seconds']:.2f} s", flush=True)
            logged = {"Loss": test_loss, "Accuracy": test_accuracy, "Train loss": train_loss}
            for name, value in {**logged, "Train accuracy": train_accuracy}.items():
                run.log(name, value)
            record = {"settings": settings, "metrics": metrics, "data": data_record}
            checkpoint = {"format": CHECKPOINT_FORMAT, "epoch": epoch} | {k: json.dumps(v) for k, v in record.items()}
            save_npz(out / CHECKPOINT, checkpoint | state_of(model, "model/") | state_of(optimizer, "optimizer/"))
        if ranks.lead:
            save_model(out, model, {**settings, **metrics, "data": data_record})
            print(f"Saved {out / 'model.npz'} (test accuracy {metrics['test_accuracy']:.4f})")


def main(argv=None):
    args = parse_args(argv)
    # Cancelling a run sends SIGTERM: leave through Python, so that a file being saved is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        train_and_save(args)
    except BaseException as e:
        if "mpi4py.MPI" in sys.modules:  # A failed rank aborts the job (mpi4py calls MPI_Abort): no rank waits.
            import mpi4py.run

            mpi4py.run.set_abort_status(e)
        if isinstance(e, UsageError):
            raise SystemExit(f"error: {e}") from None
        raise


# The data: the four original files, from a folder or downloaded once into a cache.

SHA256 = {  # As published.
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
MAX_EXAMPLES = 1_000_000  # More examples than this in one file is no MNIST: refused before they are read.


def read_idx(path, ndim):
    """The uint8 array of an IDX file (.gz or not), read no further than its header announces (a gzip bomb stops)."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            header = f.read(4 + 4 * ndim)
            if len(header) < 4 + 4 * ndim:
                raise DataError(f"{path}: truncated ({len(header)} bytes, shorter than an IDX header)")
            magic, *shape = np.frombuffer(header, ">u4").tolist()
            size, dims = math.prod(shape), "x".join(map(str, shape))  # Python's ints: no overflow.
            if magic != 0x800 + ndim:  # 0x08: unsigned bytes; then the number of dimensions.
                raise DataError(f"{path}: not a {ndim}-dimensional IDX file of bytes (magic {magic:#010x})")
            if size > MAX_EXAMPLES * 28 * 28:
                raise DataError(f"{path}: its header announces {dims} = {size} bytes, far more than MNIST; not read")
            data = f.read(size + 1)  # A byte more than announced: the file is longer.
            if len(data) != size:
                less = "less" if len(data) < size else "more"
                raise DataError(f"{path}: {less} data than its header announces ({dims}); truncated or corrupt")
    except FileNotFoundError:
        raise DataError(f"{path} not found (nor uncompressed): the data folder must hold the 4 MNIST files") from None
    except (OSError, EOFError, zlib.error) as e:  # Truncated or corrupt gzip.
        raise DataError(f"{path}: cannot read it ({e})") from None
    return np.frombuffer(data, np.uint8).reshape(shape)


def read_split(folder, prefix):
    """<prefix>-images-idx3-ubyte and <prefix>-labels-idx1-ubyte, .gz or not, as model inputs."""
    images_path, labels_path = (
        next((path for path in (folder / f"{name}.gz", folder / name) if path.is_file()), folder / f"{name}.gz")
        for name in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    )
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: images of 28x28 pixels expected, found {images.shape[1]}x{images.shape[2]}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    if len(images) == 0:
        raise DataError(f"{images_path} holds no images")
    if labels.max(initial=0) > 9:
        raise DataError(f"{labels_path}: label {labels.max()} found; digits 0-9 expected")
    x = np.divide(images.reshape(len(images), -1), np.float32(255), dtype=chainer.get_dtype())  # As the weights.
    return x, labels.astype(np.int32)


def cache_dir():
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chainer-mnist-azureml"


def download(folder, mirrors):
    """Make sure `folder` holds the four files, each from the first mirror that serves it with its SHA-256."""
    import pooch  # Here: scoring imports this module for the MLP alone, and downloads nothing.

    pooch.get_logger().setLevel("WARNING")  # Its lines would go to stderr; the script says what it fetches.
    folder.mkdir(parents=True, exist_ok=True)
    for name, digest in SHA256.items():
        if (folder / name).is_file() and pooch.file_hash(folder / name) == digest:
            continue
        failures = []
        for url in (mirror + name for mirror in mirrors):
            print(f"Downloading {url}", flush=True)
            try:  # Into a temporary file, kept only once its hash is checked.
                pooch.retrieve(url, f"sha256:{digest}", fname=name, path=folder)
                break
            except ValueError:  # Pooch's hash check (the URLs are ours: no other ValueError).
                failures.append(f"{url}: SHA-256 mismatch")
            except OSError as e:  # Requests' errors are OSErrors: not found, refused, timed out.
                failures.append(f"{url}: {e}")
        else:
            fix = "put the four MNIST files in a folder and pass --data-dir FOLDER (or set MNIST_DIR)"
            raise DataError(f"cannot download {name} ({'; '.join(failures)}); {fix}")
    return folder


def load_mnist(data_dir=None):
    """(train_x, train_y, test_x, test_y) from data_dir, else $MNIST_DIR, else the download cache: [N, 784] in [0, 1]
    in Chainer's dtype (float32 unless set otherwise), and int32 labels."""
    data_dir = Path(data_dir or os.environ.get("MNIST_DIR") or download(cache_dir(), MIRRORS))
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist")
    return read_split(data_dir, "train") + read_split(data_dir, "t10k")


# The output folder: model.npz, model.json and the checkpoint, each written whole or not at all.


@contextlib.contextmanager
def output_folder(path, units):
    """Create the folder, check that it takes the model and its checkpoint, and hold it for this run alone until the
    block ends: all before any data is read."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:  # A file there (File exists) or on the way (Not a directory), a read-only parent, ...
        raise UsageError(f"cannot create the output folder {path}: {e.strerror}") from None
    try:
        try:  # On the folder itself: no lock file, and the kernel releases it however the process ends.
            fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            busy = f"another run is writing to the output folder {path}; wait or pass another --output_dir"
            raise UsageError(busy) from None
        except OSError:  # A file system without locks: go on without.
            pass
        try:
            tempfile.TemporaryFile(dir=path).close()
        except OSError as e:
            raise UsageError(f"cannot write in the output folder {path}: {e.strerror}") from None
        room = 4 * np.dtype(chainer.get_dtype()).itemsize * parameter_count(units)  # The model, 3 in the checkpoint.
        if (free := shutil.disk_usage(path).free) < room:
            need = f"the model and its checkpoint need {room / 2**20:.0f} MiB"
            raise UsageError(f"the output folder {path} has {free / 2**20:.0f} MiB free; {need}")
        yield path
    finally:
        os.close(folder)


def save_atomically(path, write):
    """Call write(file) on a hidden temporary file beside `path`, then rename it into place: readers see the old
    file or the whole new one, never a partial one, nor a temporary file taken for a model."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        with open(temporary, "xb") as f:  # Not mkstemp, whose files are private whatever the umask.
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except OSError as e:  # Disk full, file too large, read-only, ...: the old file, if any, stays.
        raise UsageError(f"cannot save {path}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def save_npz(path, arrays, compress=False):
    """np.savez, atomically; into memory first, since np.savez leaves its zip file open when a write fails."""
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    save_atomically(path, lambda f: f.write(buffer.getbuffer()))


def state_of(target, path=""):
    """A link's or an optimizer's arrays by name, as chainer.serializers.save_npz saves them."""
    state = chainer.serializers.DictionarySerializer(path=path)
    state.save(target)
    return state.target


def read_checkpoint(path, settings):
    """The checkpoint's arrays, checked to be whole, of this format and of these settings; None if there is none."""
    if not path.exists():
        return None
    afresh = "start afresh with --no-resume, or pass another --output_dir"
    try:
        with np.load(path) as f:
            saved = dict(f)
        if int(saved.get("format", 1)) != CHECKPOINT_FORMAT:
            raise UsageError(f"{path} was written by an older version of this script; {afresh}")
        was = json.loads(str(saved["settings"]))
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise UsageError(f"{path} is damaged ({str(e) or type(e).__name__}); {afresh}") from None
    if was != settings:
        differences = [f"{FLAGS[k]} {v} here, {was.get(k)} there" for k, v in settings.items() if v != was.get(k)]
        raise UsageError(f"{path} is from a run with other settings ({', '.join(differences)}); use them, or {afresh}")
    return saved


def resume(saved, model, optimizer, data):
    """Load the checkpoint's model and Adam state; return the first epoch to train and the last one's metrics."""
    if (was := json.loads(str(saved["data"]))) != data:
        raise UsageError(
            f"{CHECKPOINT} was trained on other data ({was['train_examples']} training examples, fingerprint "
            f"{was['fingerprint']}; these are {data['train_examples']}, {data['fingerprint']}): pass the same "
            "--data-dir, another --output_dir, or --no-resume"
        )
    chainer.serializers.NpzDeserializer(saved, path="model/").load(model)
    chainer.serializers.NpzDeserializer(saved, path="optimizer/").load(optimizer)
    return int(saved["epoch"]) + 1, json.loads(str(saved["metrics"]))


def save_model(folder, model, record):
    """model.npz, then model.json with its SHA-256. The old model.json goes first, so that a model.json always
    describes the model.npz beside it (a resumed run writes both again)."""
    try:
        (folder / "model.json").unlink(missing_ok=True)
    except OSError as e:
        raise UsageError(f"cannot replace {folder / 'model.json'}: {e.strerror}") from None
    save_npz(folder / "model.npz", state_of(model), compress=True)
    with open(folder / "model.npz", "rb") as f:
        record = {**record, "model_sha256": hashlib.file_digest(f, "sha256").hexdigest()}
    save_atomically(folder / "model.json", lambda f: f.write(json.dumps(record, indent=2).encode()))


# The ranks of an MPI job, each with the whole model and data and a share of every minibatch; and the device.


class Ranks:
    """This process, alone or as a rank of an MPI job (then through ChainerMN, so mpi4py, imported only then)."""

    def __init__(self, device_number):
        # As mpiexec sets them (Open MPI; MPICH and Intel MPI): read here, so that one process never needs mpi4py.
        self.size = int(os.environ.get("OMPI_COMM_WORLD_SIZE") or os.environ.get("PMI_SIZE") or 1)
        local_rank = os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK") or os.environ.get("MPI_LOCALRANKID") or 0
        self.device = select_device(device_number, gpu=int(local_rank))  # One GPU per rank on a node.
        self.rank, self.comm = 0, None
        if self.size > 1:
            import chainermn

            self.chainermn = chainermn
            self.communicator = "naive" if self.device.xp is np else "pure_nccl"  # Naive needs no CUDA.
            self.comm = chainermn.create_communicator(self.communicator)
            self.rank = self.comm.rank
        self.lead = self.rank == 0

    def share(self, batch):
        """This rank's part of a minibatch (or any array), and the weight that makes the ranks' mean its gradient."""
        part = batch[self.rank * len(batch) // self.size : (self.rank + 1) * len(batch) // self.size]
        return part, len(part) * self.size / len(batch)

    def broadcast(self, value):
        """Rank 0's value in every rank; the whole data set too, so that the minibatches are those of one process."""
        return self.comm.mpi_comm.bcast(value) if self.comm else value

    def mean(self, means, count):
        """The means over all ranks' examples, from this rank's means over its `count` examples."""
        if not self.comm:
            return means
        sums = self.comm.allreduce_obj(np.array([*means, 1.0]) * count)
        return tuple(float(total / sums[-1]) for total in sums[:-1])

    def multi_node(self, optimizer):
        """ChainerMN's optimizer, which averages the ranks' gradients; its first update only sends rank 0's weights."""
        if not self.comm:
            return optimizer
        optimizer = self.chainermn.create_multi_node_optimizer(optimizer, self.comm)
        optimizer.update()
        return optimizer


def gpu_count():
    """The GPUs CuPy sees: none where it is not installed or cannot load, or where there is no driver or GPU."""
    try:
        return chainer.backends.cuda.cupy.cuda.runtime.getDeviceCount() if chainer.backends.cuda.available else 0
    except chainer.backends.cuda.cupy.cuda.runtime.CUDARuntimeError:
        return 0


def select_device(number, gpu):
    """-1: the CPU through NumPy; N: GPU N through CuPy; None: GPU `gpu` if there is a GPU, else the CPU."""
    gpus = gpu_count()
    number = (gpu if gpus else -1) if number is None else number
    if number == -1:
        return chainer.get_device("@numpy")
    if number < -1:
        raise UsageError(f"--device {number}: -1 (CPU) or a GPU number expected")
    if not chainer.backends.cuda.available:
        why = "CuPy is not installed (pip install cupy-cuda11x) or cannot load; --device -1 runs on the CPU"
        raise UsageError(f"--device {number} asks for a GPU, but {why}")
    if number >= gpus:
        raise UsageError(f"--device {number}: CuPy sees {gpus} GPU(s); --device -1 runs on the CPU")
    warnings.filterwarnings("ignore", "cuDNN is not enabled")  # CuPy 13 has none; an MLP needs cuBLAS only.
    return chainer.get_device(f"@cupy:{number}")


def parameter_count(n_units):
    return (784 + 1) * n_units + (n_units + 1) * n_units + (n_units + 1) * 10


def check_memory(units, batchsize, device):
    # Weights, gradients and Adam's two moments; each layer's output and its gradient, about 3 times.
    values = 4 * parameter_count(units) + 3 * min(batchsize, MAX_EXAMPLES) * (784 + 2 * units + 10)
    needed = values * np.dtype(chainer.get_dtype()).itemsize
    if device.xp is np:
        memory, where = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine"
    else:
        memory, where = device.device.mem_info[1], f"GPU {device.device.id}"
    if needed > memory:
        settings = f"--unit {units} with --batchsize {batchsize}"
        raise UsageError(f"{settings} needs about {needed / 2**30:.1f} GiB; {where} has {memory / 2**30:.1f} GiB")


# Speed on the CPU: Adam's arithmetic in one pass over memory; Chainer's NumPy Adam makes a temporary per operation.


def adam_update(p, g, m, v, one_minus_beta1, one_minus_beta2, eps, step_size):
    for i in numba.prange(p.size):
        m[i] += one_minus_beta1 * (g[i] - m[i])
        v[i] += one_minus_beta2 * (g[i] * g[i] - v[i])
        p[i] -= step_size * m[i] / (np.sqrt(v[i]) + eps)


PARALLEL_SIZE = 1 << 16  # Waking the other cores pays off for the weight matrices only.
adam_update_serial = numba.njit(fastmath=True, cache=True)(adam_update)
adam_update_parallel = numba.njit(parallel=True, fastmath=True, cache=True)(adam_update)


class FusedAdamRule(chainer.optimizers.adam.AdamRule):
    """Plain Adam (no weight decay, AMSGrad or AdaBound) with the fused CPU update; the GPU keeps Chainer's kernel."""

    def update_core_cpu(self, param):
        if param.grad is None:  # As Chainer's rule: a parameter that took no part in the loss stays.
            return
        hp, cast = self.hyperparam, param.array.dtype.type
        update = adam_update_parallel if param.array.size >= PARALLEL_SIZE else adam_update_serial
        arrays = (a.reshape(-1) for a in (param.array, param.grad, self.state["m"], self.state["v"]))
        # 1 - beta in float64, as Chainer does, then in the parameter's dtype: 1 - float32(0.9) is not 0.1.
        update(*arrays, cast(1 - hp.beta1), cast(1 - hp.beta2), cast(hp.eps), cast(self.alpha_t * hp.eta))


class FusedAdam(chainer.optimizers.Adam):
    def create_update_rule(self):
        return FusedAdamRule(self.hyperparam)


def tune_cpu():
    """Three fixes for the CPU, each a no-op where it does not apply."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # Threads sleep between steps, leaving the cores to OpenBLAS.
    try:
        libc, libm = ctypes.CDLL("libc.so.6"), ctypes.CDLL("libm.so.6")
    except OSError:  # Not glibc.
        return
    # Keep freed memory for reuse (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD), not unmapped at every step.
    for option, value in ((-3, 64 << 20), (-1, 512 << 20), (-2, 64 << 20)):
        libc.mallopt(option, value)
    # Flush denormals to zero: Adam's moments of always-blank pixels decay into them, and x86 is slow on them.
    if os.uname().machine == "x86_64":
        np.finfo(np.float32), np.finfo(np.float64)  # Computed now: NumPy warns if it first meets a CPU that flushes.
        environment = (ctypes.c_uint32 * 8)()  # glibc's fenv_t on x86-64: 32 bytes, MXCSR last.
        libm.fegetenv(environment)
        environment[7] |= 0x8040  # MXCSR's flush-to-zero and denormals-are-zero bits.
        libm.fesetenv(environment)


if __name__ == "__main__":
    main()
