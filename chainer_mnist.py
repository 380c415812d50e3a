#!/usr/bin/env python
"""Train a multi-layer perceptron on MNIST with Chainer, on Azure Machine Learning or offline.

The model and defaults are those of Chainer's examples/mnist/train_mnist.py; the command line
takes the classic Azure ML sample's script_params (--epochs, --batchsize, --output_dir).
Metrics go to the Azure ML run (the SDK's offline run outside Azure). The model lands in
<output_dir>/model.npz with its final metrics in model.json; checkpoint.npz lets a killed run
resume where it stopped.

Started by mpiexec with more than one process, it trains data-parallel with ChainerMN: each rank
takes its share of every minibatch and the gradients are averaged across ranks, so N ranks train
the model one process trains; rank 0 alone prints, logs metrics and saves.

Read from the top: the model, an epoch of training and the test, the data, the output folder
and its checkpoint, the ranks of an MPI job, main(); then, in their own section at the end, what
makes the same code fast on the machine at hand (a fused Adam update, the CPU's settings).
"""
import argparse
import contextlib
import ctypes
import fcntl
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
import tempfile
import time
import urllib.request
import warnings
import zipfile
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
# More examples than this in one file is no MNIST (60,000): the reader refuses before reading them.
MAX_EXAMPLES = 1_000_000
CHECKPOINT = "checkpoint.npz"  # Not "model*": the notebook downloads outputs/model* as the result.
CHECKPOINT_FORMAT = 2  # 2: with the fingerprint of the data it was trained on.
FLAGS = {"epochs": "--epochs", "batchsize": "--batchsize", "units": "--unit", "lr": "--lr", "seed": "--seed"}


class UsageError(Exception):
    """Something the user can put right, said in one line: the script exits with it, no traceback."""


class DataError(UsageError):
    """A missing, damaged or undownloadable MNIST file; the message names it."""


class OutputError(UsageError):
    """An output folder or file that cannot be used, written or resumed from; the message names it."""


# The model.

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


def parameter_count(n_units, n_out=10):
    return (784 + 1) * n_units + (n_units + 1) * n_units + (n_units + 1) * n_out


def build(n_units, seed, device, lr=0.001):
    """The classifier, its initial weights drawn from `seed`, on `device`; and its optimizer, Adam with step size lr."""
    np.random.seed(seed)
    device.xp.random.seed(seed)
    model = L.Classifier(MLP(n_units))
    model.to_device(device)
    device.use()
    optimizer = FusedAdam(alpha=lr)
    optimizer.setup(model)
    return model, optimizer


# An epoch: train() once, then test().

def train(model, optimizer, x, t, order, batchsize, alpha_at, share=lambda batch: (batch, 1)):
    """One pass over (x, t) in `order`, minibatch by minibatch; returns the mean loss and accuracy, and over how
    many examples. alpha_at(step) is Adam's step size at each step of the run. share(batch) is this process's
    part of a minibatch and the weight of its loss (an MPI job's ranks split each minibatch: Ranks.share)."""
    loss_sum = accuracy_sum = count = 0
    for i in range(0, len(order), batchsize):
        part, weight = share(order[i:i + batchsize])
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
    """Mean loss and accuracy over (x, t) in large batches, without building a graph."""
    loss = accuracy = 0
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        for i in range(0, len(x), batchsize):
            n = len(x[i:i + batchsize])
            loss += model(x[i:i + batchsize], t[i:i + batchsize]).array * n
            accuracy += model.accuracy.array * n
    return float(loss) / len(x), float(accuracy) / len(x)


# The data.

def read_idx(path, ndim):
    """Return the uint8 array of an IDX file (gzip-compressed or not), checking header and length.
    Reads no more than its header announces, so a file that expands without end is refused early."""
    header_size = 4 + 4 * ndim
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            header = f.read(header_size)
            if len(header) < header_size:
                raise DataError(f"{path}: truncated ({len(header)} bytes, shorter than an IDX header)")
            magic = struct.unpack(">I", header[:4])[0]
            if magic != 0x800 + ndim:  # 0x08: unsigned bytes; then the number of dimensions.
                raise DataError(f"{path}: not a {ndim}-dimensional IDX file of bytes (magic {magic:#010x}, "
                                f"expected {0x800 + ndim:#010x})")
            shape = struct.unpack(f">{ndim}I", header[4:])
            size = math.prod(shape)
            if size > MAX_EXAMPLES * 28 * 28:
                raise DataError(f"{path}: its header announces {'x'.join(map(str, shape))} = {size} bytes, "
                                f"far more than MNIST; not read")
            data = f.read(size)
            if len(data) != size or f.read(1):
                raise DataError(f"{path}: {'less' if len(data) < size else 'more'} data than its header announces "
                                f"({'x'.join(map(str, shape))} = {size} bytes); the file is truncated or corrupt")
    except (OSError, EOFError, zlib.error) as e:  # Missing, truncated or corrupt gzip.
        raise DataError(f"{path}: cannot read it ({e})") from None
    return np.frombuffer(data, np.uint8).reshape(shape)


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
    # In Chainer's dtype (float32 unless CHAINER_DTYPE says otherwise), as the model's weights are.
    x = np.divide(images.reshape(len(images), -1), np.float32(255), dtype=chainer.get_dtype())
    return x, labels.astype(np.int32)


def cache_dir():
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chainer-mnist-azureml"


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
    """Return (train_x, train_y, test_x, test_y): float32 [N, 784] in [0, 1] (Chainer's dtype) and int32 labels.

    From data_dir, else the folder in $MNIST_DIR, else a download cache."""
    data_dir = data_dir or os.environ.get("MNIST_DIR")
    if data_dir:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise DataError(f"data folder {data_dir} does not exist")
    else:
        data_dir = download(cache_dir(), MIRRORS)  # MIRRORS as it is now (tests point it elsewhere), not as def saw it
    return read_split(data_dir, "train") + read_split(data_dir, "t10k")


def describe_data(train_x, train_y, test_x, test_y):
    """What the data was, for the checkpoint and model.json: sizes and a fingerprint of the contents."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (train_x, train_y, test_x, test_y):
        digest.update(np.ascontiguousarray(array).data)
    return {"train_examples": len(train_x), "test_examples": len(test_x), "fingerprint": digest.hexdigest()}


# The output folder: model.npz, model.json and the checkpoint.

@contextlib.contextmanager
def output_folder(path, room):
    """Create the folder, check that it takes files of `room` bytes, and hold it for this run alone
    until the block ends; each problem found here, before any data is read, is one OutputError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"the output folder {path} is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:  # A file on the way (Not a directory), a read-only parent, ...
        raise OutputError(f"cannot create the output folder {path}: {e.strerror}") from None
    try:
        try:  # Released by the kernel however the process ends, even killed.
            fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"another run is writing to the output folder {path}; wait for it to end "
                              f"or pass another --output_dir") from None
        except OSError:  # A file system without locks: go on without.
            pass
        try:
            tempfile.TemporaryFile(dir=path).close()
        except OSError as e:
            raise OutputError(f"cannot write in the output folder {path}: {e.strerror}") from None
        disk = os.statvfs(path)
        free = disk.f_bavail * disk.f_frsize
        if free < room:
            raise OutputError(f"the output folder {path} has {free / 2**20:.0f} MiB free; the model and its "
                              f"checkpoint need {room / 2**20:.0f} MiB")
        yield path
    finally:
        os.close(folder)


def save_atomically(path, write):
    """Call write(file) on a temporary file beside `path`, then rename it into place: readers see
    the old file or the complete new one, never a partial one. Hidden, so never taken for a model."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        # Not mkstemp, whose files are private whatever the umask: the model and the data cache are not.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as e:  # Disk full, file too large, read-only, ...: the old file, if any, stays.
        raise OutputError(f"cannot save {path}: {e.strerror or e}") from None


def write_npz(f, arrays, compress=False):
    """np.savez's format; unlike np.savez, its zip file is closed even when a write fails (left to the
    garbage collector, it would write to the closed file later and print a traceback)."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def save_checkpoint(path, model, optimizer, **values):
    """Model, optimizer state (Adam's moments and step count) and `values`, in one .npz."""
    state = chainer.serializers.DictionarySerializer()
    state["model"].save(model)
    state["optimizer"].save(optimizer)
    save_atomically(path, lambda f: write_npz(f, {"format": CHECKPOINT_FORMAT, **values, **state.target}))


def read_checkpoint(path, settings):
    """The checkpoint's arrays, checked to be whole, of this format and these settings; None if there is none."""
    if not path.exists():
        return None
    afresh = "start afresh with --no-resume, or pass another --output_dir"
    try:
        with np.load(path) as f:
            saved = {name: f[name] for name in f.files}
        if int(saved.get("format", 1)) != CHECKPOINT_FORMAT:
            raise OutputError(f"{path} was written by an older version of this script; {afresh}")
        saved_settings = json.loads(str(saved["settings"]))
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise OutputError(f"{path} is damaged ({str(e) or type(e).__name__}); {afresh}") from None
    if saved_settings != settings:
        differences = ", ".join(f"{FLAGS[k]} {settings[k]} here, {saved_settings.get(k)} there"
                                for k in settings if saved_settings.get(k) != settings[k])
        raise OutputError(f"{path} is from a run with other settings ({differences}); use them, or {afresh}")
    return saved


def resume(saved, model, optimizer, data):
    """Put the checkpoint's model and optimizer state in place; return the first epoch still to train
    and the metrics of the last one trained. Never from a checkpoint of other data."""
    saved_data = json.loads(str(saved["data"]))
    if saved_data != data:
        raise OutputError(f"{CHECKPOINT} was trained on other data ({saved_data['train_examples']} training "
                          f"examples, fingerprint {saved_data['fingerprint']}; these are {data['train_examples']}, "
                          f"{data['fingerprint']}): pass the same --data-dir, another --output_dir, or --no-resume")
    chainer.serializers.NpzDeserializer(saved, path="model/").load(model)
    chainer.serializers.NpzDeserializer(saved, path="optimizer/").load(optimizer)
    return int(saved["epoch"]) + 1, json.loads(str(saved["metrics"]))


def save_model(folder, model, record):
    """model.npz, then model.json with its SHA-256. The old model.json goes first: whenever the process
    stops, a model.json there describes the model.npz beside it (a resumed run writes both again)."""
    try:
        (folder / "model.json").unlink(missing_ok=True)
    except OSError as e:
        raise OutputError(f"cannot replace {folder / 'model.json'}: {e.strerror}") from None
    state = chainer.serializers.DictionarySerializer()
    state.save(model)  # As chainer.serializers.save_npz(file, model) would.
    save_atomically(folder / "model.npz", lambda f: write_npz(f, state.target, compress=True))
    with open(folder / "model.npz", "rb") as f:
        record = {**record, "model_sha256": hashlib.file_digest(f, "sha256").hexdigest()}
    save_atomically(folder / "model.json", lambda f: f.write(json.dumps(record, indent=2).encode()))


# The ranks of an MPI job. Each rank holds the whole model and data and takes its share of every minibatch;
# ChainerMN's multi-node optimizer averages the ranks' gradients before each update, and each rank's loss is
# weighted by its share, so the average is the whole minibatch's gradient: N ranks train the model that one
# process trains, up to the order of floating-point sums.

def mpi_processes(environ=os.environ):
    """(ranks in the job, this rank's number on its node), from the variables mpiexec sets (Open MPI; MPICH and
    Intel MPI); (1, 0) outside mpiexec. Read there, so that one process never needs mpi4py."""
    size = environ.get("OMPI_COMM_WORLD_SIZE") or environ.get("PMI_SIZE") or 1
    local_rank = environ.get("OMPI_COMM_WORLD_LOCAL_RANK") or environ.get("MPI_LOCALRANKID") or 0
    return int(size), int(local_rank)


class Alone:
    """One process: it has every minibatch to itself."""
    size, lead = 1, True

    def share(self, batch):
        return batch, 1

    def broadcast(self, value):
        return value

    def mean(self, means, count):
        return means

    def multi_node(self, optimizer):
        return optimizer

    def synchronize(self, optimizer):
        pass


class Ranks:
    """This process as one rank of an MPI job, through ChainerMN (and so mpi4py, imported only here)."""

    def __init__(self, device):
        import chainermn

        self.chainermn = chainermn
        # "naive" is ChainerMN's communicator that runs without CUDA; on GPUs, NCCL.
        self.communicator = "naive" if device.xp is np else "pure_nccl"
        self.comm = chainermn.create_communicator(self.communicator)
        self.rank, self.size, self.lead = self.comm.rank, self.comm.size, self.comm.rank == 0

    def share(self, batch):
        """This rank's consecutive part of a minibatch (or of any array), and the weight that makes the mean
        of the ranks' gradients the whole minibatch's mean gradient."""
        part = batch[self.rank * len(batch) // self.size:(self.rank + 1) * len(batch) // self.size]
        return part, len(part) * self.size / len(batch)

    def broadcast(self, value):
        """Rank 0's value (anything picklable: the data it read, the checkpoint it found), in every rank.
        The whole data set, as ChainerMN's scatter_dataset sends it too: each rank takes its share of every
        minibatch, which keeps the minibatches those of one process."""
        return self.comm.mpi_comm.bcast(value)

    def mean(self, means, count):
        """The means over all ranks' examples, from this rank's means over its `count` examples."""
        sums = self.comm.allreduce_obj(np.array([*means, 1.0]) * count)
        return tuple(float(total / sums[-1]) for total in sums[:-1])

    def multi_node(self, optimizer):
        """ChainerMN's multi-node optimizer: each update first averages the gradients of all ranks."""
        return self.chainermn.create_multi_node_optimizer(optimizer, self.comm)

    def synchronize(self, optimizer):
        """The multi-node optimizer's first update() only broadcasts rank 0's parameters to every rank: make it
        now, before training, so that each minibatch is one step, as in one process."""
        optimizer.update()


def abort_mpi_job_at_exit(error):
    """In an MPI job, a rank that fails makes the job abort as it exits (mpi4py calls MPI_Abort): mpiexec then
    stops every rank, where the others would wait for it in a collective for ever."""
    if "mpi4py.MPI" in sys.modules:
        import mpi4py.run

        mpi4py.run.set_abort_status(error)


# The command line and the run.

def parse_args(argv):
    parser = argparse.ArgumentParser(description="Chainer example: MNIST, on Azure ML or offline")
    parser.add_argument("--epochs", "-e", type=int, default=10, help="number of sweeps over the data")
    parser.add_argument("--batchsize", "-b", type=int, default=128, help="examples per minibatch")
    # Saved as "units" in model.json, so --units is accepted too.
    parser.add_argument("--unit", "--units", "-u", dest="units", type=int, default=1000,
                        help="units in each hidden layer")
    parser.add_argument("--output_dir", "-o", default="./outputs",
                        help="folder for model.npz, model.json and the checkpoint to resume from")
    parser.add_argument("--device", "-d", type=int, default=None,
                        help="-1: CPU (NumPy); N: GPU N (CuPy); default: GPU 0 if CuPy sees one, else CPU")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the four MNIST IDX files (.gz or not); default: $MNIST_DIR, "
                             "else a download into " + str(cache_dir()))
    parser.add_argument("--lr", type=float, default=0.001,
                        help="Adam's initial step size (alpha), decayed linearly to 0 over the run; the sweep tunes it")
    parser.add_argument("--seed", type=int, default=0, help="seed of initial weights and shuffling")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help=f"start afresh even if the output folder holds {CHECKPOINT}")
    args = parser.parse_args(argv)
    for name in ("epochs", "batchsize", "units"):
        if getattr(args, name) < 1:
            parser.error(f"{FLAGS[name]} must be at least 1")
    if not 0 < args.lr < float("inf"):
        parser.error("--lr must be a positive number")
    return args


def main(argv=None):
    args = parse_args(argv)
    # Cancelling a run sends SIGTERM: leave through Python, so that a file being saved is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        train_and_save(args)
    except BaseException as e:
        abort_mpi_job_at_exit(e)
        if isinstance(e, UsageError):
            raise SystemExit(f"error: {e}") from None
        raise


def train_and_save(args):
    from azureml.core.run import Run  # Here, so that importing this module stays cheap.

    tune_cpu()
    processes, local_rank = mpi_processes()
    device = select_device(args.device, gpu=local_rank)  # One GPU per rank on a node.
    ranks = Ranks(device) if processes > 1 else Alone()
    check_memory(args.units, args.batchsize, device)
    settings = {name: getattr(args, name) for name in FLAGS}
    room = 4 * np.dtype(chainer.get_dtype()).itemsize * parameter_count(args.units)  # The model, the checkpoint's 3.
    # Rank 0 alone writes the output folder, reads the checkpoint and the data, and sends them to the others.
    with output_folder(args.output_dir, room) if ranks.lead else contextlib.nullcontext() as out:
        saved = ranks.broadcast(read_checkpoint(out / CHECKPOINT, settings) if args.resume and ranks.lead else None)
        if ranks.lead:
            across = f"; {ranks.size} MPI ranks, ChainerMN's {ranks.communicator} communicator" if ranks.size > 1 else ""
            print(f"Device: {'CPU (NumPy)' if device.xp is np else f'GPU {device.device.id} (CuPy)'}{across}")
        data = ranks.broadcast(load_mnist(args.data_dir) if ranks.lead else None)
        data_record = describe_data(*data)
        if args.batchsize > len(data[0]):
            raise UsageError(f"--batchsize {args.batchsize} is more than the {len(data[0])} training examples")
        train_x, train_y, test_x, test_y = (device.send(a) for a in data)

        # Same seed, same initial weights and same shuffles; each epoch's order depends on the seed and
        # the epoch alone, so a resumed run goes on exactly as an uninterrupted one would.
        model, optimizer = build(args.units, args.seed, device, args.lr)
        optimizer = ranks.multi_node(optimizer)
        first_epoch, metrics = 1, {}
        if saved is not None:
            first_epoch, metrics = resume(saved, model, optimizer, data_record)
            if ranks.lead:
                print(f"Resuming after epoch {first_epoch - 1} from {out / CHECKPOINT}")
        ranks.synchronize(optimizer)
        # Adam's step size decays linearly to zero over the run: +0.2-0.3 points of test accuracy.
        total_steps = args.epochs * -(-len(train_x) // args.batchsize)
        alpha_at = lambda step, alpha=optimizer.alpha: alpha * (1 - step / total_steps)  # noqa: E731

        azureml_run = Run.get_context()
        if ranks.lead:
            azureml_run.log("Batch size", args.batchsize)
            azureml_run.log("Epochs", args.epochs)
            azureml_run.log("Units", args.units)
            azureml_run.log("Learning rate", args.lr)
        (test_x, _), (test_y, _) = ranks.share(test_x), ranks.share(test_y)  # Each rank tests its part.
        for epoch in range(first_epoch, args.epochs + 1):
            start = time.perf_counter()
            order = device.send(np.random.RandomState([args.seed, epoch]).permutation(len(train_x)))
            train_loss, train_accuracy = ranks.mean(*train(model, optimizer, train_x, train_y, order, args.batchsize,
                                                           alpha_at, ranks.share))
            test_loss, test_accuracy = ranks.mean(test(model, test_x, test_y), len(test_x))
            metrics = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
                       "test_loss": test_loss, "test_accuracy": test_accuracy, "seconds": time.perf_counter() - start}
            if not ranks.lead:
                continue
            print(f"epoch {epoch:3d}  train loss {train_loss:.4f} accuracy {train_accuracy:.4f}"
                  f"  test loss {test_loss:.4f} accuracy {test_accuracy:.4f}  {metrics['seconds']:.2f} s", flush=True)
            for name, value in (("Loss", test_loss), ("Accuracy", test_accuracy), ("Train loss", train_loss),
                                ("Train accuracy", train_accuracy)):
                azureml_run.log(name, value)
            save_checkpoint(out / CHECKPOINT, model, optimizer, epoch=epoch, settings=json.dumps(settings),
                            metrics=json.dumps(metrics), data=json.dumps(data_record))

        if ranks.lead:
            save_model(out, model, {**settings, **metrics, "data": data_record})
            print(f"Saved {out / 'model.npz'} (test accuracy {metrics['test_accuracy']:.4f})")


# Machine-level tuning: the device, its memory, and what makes the CPU path fast. None of it changes
# what is computed (beyond floating-point rounding); each part is a no-op where it does not apply.

def gpu_count():
    if not chainer.backends.cuda.available:  # CuPy is not installed or cannot load.
        return 0
    cupy = chainer.backends.cuda.cupy
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:  # No driver or no GPU.
        return 0


def select_device(number, gpu=0):
    """-1: the CPU through NumPy; N: GPU N through CuPy; None: GPU `gpu` if there is a GPU, else the CPU."""
    gpus = gpu_count()
    if number is None:
        number = gpu if gpus else -1
    if number == -1:
        return chainer.get_device("@numpy")
    if number < -1:
        raise UsageError(f"--device {number}: -1 (CPU) or a GPU number expected")
    if not chainer.backends.cuda.available:
        raise UsageError(f"--device {number} asks for a GPU, but CuPy is not installed "
                         f"(pip install cupy-cuda11x) or cannot load; --device -1 runs on the CPU")
    if number >= gpus:
        raise UsageError(f"--device {number}: CuPy sees {gpus} GPU(s); --device -1 runs on the CPU")
    # CuPy 13 has no cupy.cudnn: Chainer warns on the first GPU, but an MLP needs cuBLAS only.
    warnings.filterwarnings("ignore", "cuDNN is not enabled")
    return chainer.get_device(f"@cupy:{number}")


def check_memory(units, batchsize, device):
    """Refuse, before allocating anything, settings whose arrays cannot fit in the device's memory."""
    batch = min(batchsize, MAX_EXAMPLES)
    # Weights, gradients and Adam's two moments; each layer's output and its gradient, about 3 times.
    needed = np.dtype(chainer.get_dtype()).itemsize * (4 * parameter_count(units) + 3 * batch * (784 + 2 * units + 10))
    if device.xp is np:
        memory, where = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine"
    else:
        memory, where = device.device.mem_info[1], f"GPU {device.device.id}"
    if needed > memory:
        raise UsageError(f"--unit {units} with --batchsize {batchsize} needs about {needed / 2**30:.1f} GiB; "
                         f"{where} has {memory / 2**30:.1f} GiB")


# Adam. Chainer's NumPy update makes about ten temporaries the size of each weight matrix per step, which costs
# more than the backward pass: the same arithmetic, fused into one pass over memory and compiled with numba.

def adam_update(p, g, m, v, one_minus_beta1, one_minus_beta2, eps, step_size):
    """Chainer's Adam arithmetic for one flattened parameter."""
    for i in numba.prange(p.size):
        m[i] += one_minus_beta1 * (g[i] - m[i])
        v[i] += one_minus_beta2 * (g[i] * g[i] - v[i])
        p[i] -= step_size * m[i] / (np.sqrt(v[i]) + eps)


# Waking the other core pays off for the weight matrices only, not for the biases and the last layer.
PARALLEL_SIZE = 1 << 16
adam_update_serial = numba.njit(fastmath=True, cache=True)(adam_update)
adam_update_parallel = numba.njit(parallel=True, fastmath=True, cache=True)(adam_update)


class FusedAdamRule(chainer.optimizers.adam.AdamRule):
    """Adam with the fused CPU update; the GPU keeps Chainer's kernel."""

    def update_core_cpu(self, param):
        if param.grad is None:  # As Chainer's rule: a parameter that took no part in the loss stays.
            return
        hp = self.hyperparam
        cast = param.array.dtype.type
        update = adam_update_parallel if param.array.size >= PARALLEL_SIZE else adam_update_serial
        update(*(a.reshape(-1) for a in (param.array, param.grad, self.state["m"], self.state["v"])),
               # 1 - beta in float64, as Chainer does, then in the parameter's dtype: 1 - float32(0.9) is not 0.1.
               cast(1 - hp.beta1), cast(1 - hp.beta2), cast(hp.eps), cast(self.alpha_t * hp.eta))


class FusedAdam(chainer.optimizers.Adam):
    def create_update_rule(self):
        if self.hyperparam.weight_decay_rate or self.hyperparam.amsgrad or self.hyperparam.adabound:
            raise ValueError("FusedAdam computes plain Adam: no weight decay, AMSGrad or AdaBound")
        return FusedAdamRule(self.hyperparam)


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


if __name__ == "__main__":
    main()
