"""chainer_mnist.py end to end on a small synthetic MNIST, and each of its ways to fail."""

import functools
import gzip
import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import chainer
import chainer.links as L
import numpy as np
import pytest
from helpers import REPO
from synthetic_mnist import write_idx

import chainer_mnist

SCRIPT = str(REPO / "chainer_mnist.py")
QUICK = ["--unit", "100", "--batchsize", "50", "--device", "-1"]


def train(mnist_dir, output_dir, *args):
    chainer_mnist.main(["--data-dir", str(mnist_dir), "--output_dir", str(output_dir), *QUICK, *args])
    return json.loads((output_dir / "model.json").read_text())


def load_model(path, units=100):
    model = L.Classifier(chainer_mnist.MLP(units))
    chainer.serializers.load_npz(path, model)
    return model


def params(model):
    return {name: p.array for name, p in model.namedparams()}


def test_learns_and_saves_a_loadable_model(mnist_dir, tmp_path, capsys):
    result = train(mnist_dir, tmp_path, "--epochs", "4")
    assert result["test_accuracy"] > 0.8  # Chance is 0.1.
    assert result["epochs"] == 4 and result["units"] == 100 and result["batchsize"] == 50
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 4
    model = load_model(tmp_path / "model.npz")
    _, _, test_x, test_y = chainer_mnist.load_mnist(mnist_dir)
    # The same weights, data and host: only the sum of the batches' means may round otherwise.
    assert chainer_mnist.test(model, test_x, test_y)[1] == pytest.approx(result["test_accuracy"])
    # What a registered model is made of; the checkpoint must not look like one, nor temporary files remain.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz", "model.json", "model.npz"]


def test_runs_as_a_script_with_nothing_on_stderr(mnist_dir, tmp_path):
    """A warning would land in the run's log, and in the notebook's committed outputs."""
    result = subprocess.run(
        [sys.executable, SCRIPT, "--data-dir", str(mnist_dir), *QUICK, "--epochs", "1", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and result.stderr == ""


def test_logs_metrics_to_the_run(mnist_dir, tmp_path, monkeypatch):
    from azureml.core.run import Run

    logged = []
    monkeypatch.setattr(type(Run.get_context()), "log", lambda self, name, value, *a, **k: logged.append(name))
    train(mnist_dir, tmp_path, "--epochs", "2")
    for name in ("Batch size", "Epochs", "Units", "Learning rate"):
        assert logged.count(name) == 1
    for name in ("Loss", "Accuracy", "Train loss", "Train accuracy"):
        assert logged.count(name) == 2


@pytest.mark.parametrize("args, lr", [([], 0.001), (["--lr", "0.01"], 0.01)])
def test_lr_is_adams_first_step_size_which_still_decays_linearly(mnist_dir, tmp_path, monkeypatch, args, lr):
    step_sizes = []
    real_train = chainer_mnist.train

    def spy(model, optimizer, x, t, order, batchsize, alpha_at, *share):
        step_sizes.append([alpha_at(0), alpha_at(len(x) // batchsize)])  # 2000 / 50: one epoch's steps
        return real_train(model, optimizer, x, t, order, batchsize, alpha_at, *share)

    monkeypatch.setattr(chainer_mnist, "train", spy)
    assert train(mnist_dir, tmp_path, "--epochs", "2", *args)["lr"] == lr
    assert step_sizes[0] == pytest.approx([lr, lr / 2])  # halfway through a 2-epoch run: half the step size


def test_same_seed_same_model_other_seed_other_model(mnist_dir, tmp_path):
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        train(mnist_dir, tmp_path / name, "--epochs", "1", "--seed", seed)
    a, b, c = (params(load_model(tmp_path / name / "model.npz")) for name in "abc")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["/predictor/l1/W"], c["/predictor/l1/W"])


# Same gradients on both sides: only the update's rounding differs, a few ulps a step, far below a step (alpha) itself.
@pytest.mark.parametrize("dtype, rtol, atol", [(np.float32, 1e-5, 1e-7), (np.float64, 1e-12, 1e-15)])
def test_fused_adam_matches_chainers_adam(dtype, rtol, atol):
    rng = np.random.default_rng(0)
    with chainer.using_config("dtype", dtype):
        # 90,000 weights take the parallel kernel, the 300 biases the serial one.
        models = [L.Linear(300, 300) for _ in range(2)]
    assert models[0].W.size >= chainer_mnist.PARALLEL_SIZE > models[0].b.size and models[0].W.dtype == dtype
    models[1].copyparams(models[0])
    optimizers = [chainer.optimizers.Adam(), chainer_mnist.FusedAdam()]
    for model, optimizer in zip(models, optimizers, strict=True):
        optimizer.setup(model)
    for _ in range(5):
        x = rng.standard_normal((10, 300)).astype(dtype)
        for model, optimizer in zip(models, optimizers, strict=True):
            model.cleargrads()
            chainer.functions.sum(model(x) ** 2).backward()
            optimizer.update()
    for name, value in params(models[0]).items():
        np.testing.assert_allclose(params(models[1])[name], value, rtol=rtol, atol=atol)


def started_until_first_checkpoint(args, output_dir):
    """The script running in a subprocess, returned as soon as its first checkpoint is there."""
    process = subprocess.Popen(args + ["-o", str(output_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (output_dir / "checkpoint.npz").exists() and process.poll() is None:
        time.sleep(0.001)
    return process


def test_resume_after_kill_gives_the_same_model(mnist_dir, tmp_path):
    args = [sys.executable, SCRIPT, "--data-dir", str(mnist_dir), *QUICK, "--epochs", "6"]
    # The uninterrupted run, beside the one that is killed: they share nothing.
    whole = subprocess.Popen(args + ["-o", str(tmp_path / "whole")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    killed = tmp_path / "killed"
    process = started_until_first_checkpoint(args, killed)
    process.send_signal(signal.SIGKILL)  # As a pre-empted node would be: no chance to clean up.
    process.wait()
    assert whole.wait() == 0, whole.stderr.read().decode()
    assert not (killed / "model.npz").exists(), "the run ended before it could be killed"
    with np.load(killed / "checkpoint.npz") as checkpoint:
        assert 1 <= int(checkpoint["epoch"]) < 6
    resumed = subprocess.run(args + ["-o", str(killed)], check=True, capture_output=True, text=True).stdout
    assert "Resuming after epoch" in resumed

    whole, again = (params(load_model(tmp_path / name / "model.npz")) for name in ("whole", "killed"))
    assert all(np.array_equal(whole[k], again[k]) for k in whole)
    assert (
        json.loads((killed / "model.json").read_text())["test_accuracy"]
        == json.loads((tmp_path / "whole" / "model.json").read_text())["test_accuracy"]
    )


def test_cancel_leaves_no_temporary_file(mnist_dir, tmp_path):
    """Cancelling a run (on Azure or offline) sends SIGTERM; a save in progress must not leave its temporary file."""
    args = [sys.executable, SCRIPT, "--data-dir", str(mnist_dir), *QUICK, "--epochs", "50"]
    process = started_until_first_checkpoint(args, tmp_path)
    process.send_signal(signal.SIGTERM)
    assert process.wait() == 128 + signal.SIGTERM  # Left through Python, running the cleanup.
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def test_saved_files_follow_the_umask(tmp_path):
    chainer_mnist.save_atomically(tmp_path / "model.json", lambda f: f.write(b"{}"))
    umask = os.umask(0o22)
    os.umask(umask)
    assert (tmp_path / "model.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_checkpoint_from_other_settings_is_refused(mnist_dir, tmp_path, capsys):
    train(mnist_dir, tmp_path, "--epochs", "1")
    with pytest.raises(SystemExit, match="other settings"):
        train(mnist_dir, tmp_path, "--epochs", "2")
    train(mnist_dir, tmp_path, "--epochs", "2", "--no-resume")
    assert json.loads((tmp_path / "model.json").read_text())["epochs"] == 2


# The IDX reader.


def test_reads_uncompressed_files(mnist_dir, tmp_path):
    for path in mnist_dir.iterdir():
        (tmp_path / path.stem).write_bytes(gzip.decompress(path.read_bytes()))
    compressed, uncompressed = chainer_mnist.load_mnist(mnist_dir), chainer_mnist.load_mnist(tmp_path)
    assert [a.dtype for a in uncompressed] == [np.float32, np.int32, np.float32, np.int32]
    assert uncompressed[0].shape == (2000, 784) and 0 <= uncompressed[0].min() < uncompressed[0].max() <= 1
    assert all(np.array_equal(a, b) for a, b in zip(compressed, uncompressed, strict=True))


def test_mnist_dir_from_the_environment(mnist_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    assert len(chainer_mnist.load_mnist()[2]) == 500


def damaged_copy(mnist_dir, tmp_path, name, damage):
    shutil.copytree(mnist_dir, tmp_path, dirs_exist_ok=True)
    path = tmp_path / name
    path.write_bytes(damage(path.read_bytes()))
    return path


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[: len(data) // 2], "cannot read"),  # Truncated gzip stream.
        (lambda data: data[:100] + bytes(b ^ 0xFF for b in data[100:200]) + data[200:], "cannot read"),  # Corrupt.
        (lambda data: gzip.compress(gzip.decompress(data)[:-10]), "truncated or corrupt"),  # Short payload.
        (lambda data: gzip.compress(gzip.decompress(data)[:10]), "truncated"),  # Short header.
        (lambda data: gzip.compress(b"\x00\x00\x08\x01" + gzip.decompress(data)[4:]), "magic"),  # Wrong magic.
        (lambda data: b"not gzip at all", "cannot read"),
    ],
)
def test_damaged_file_is_named(mnist_dir, tmp_path, damage, message):
    path = damaged_copy(mnist_dir, tmp_path, "train-images-idx3-ubyte.gz", damage)
    with pytest.raises(chainer_mnist.DataError, match=message) as error:
        chainer_mnist.load_mnist(tmp_path)
    assert str(path) in str(error.value)


def test_mismatched_counts_shapes_and_labels(mnist_dir, tmp_path):
    shutil.copytree(mnist_dir, tmp_path, dirs_exist_ok=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(499, np.uint8))
    with pytest.raises(chainer_mnist.DataError, match="500 images but .*t10k-labels.* 499 labels"):
        chainer_mnist.load_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(500, 10, np.uint8))
    with pytest.raises(chainer_mnist.DataError, match="label 10"):
        chainer_mnist.load_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((500, 32, 32), np.uint8))
    with pytest.raises(chainer_mnist.DataError, match="t10k-images.*28x28"):
        chainer_mnist.load_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(0, np.uint8))
    with pytest.raises(chainer_mnist.DataError, match="t10k-images.* no images"):
        chainer_mnist.load_mnist(tmp_path)


def test_missing_file_is_named(mnist_dir, tmp_path):
    shutil.copytree(mnist_dir, tmp_path, dirs_exist_ok=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(chainer_mnist.DataError, match="t10k-labels-idx1-ubyte.gz not found"):
        chainer_mnist.load_mnist(tmp_path)


# Downloads, from mirrors on this machine only.


@pytest.fixture
def mirrors(tmp_path, mnist_dir, monkeypatch):
    """Three mirror folders, served by a loopback HTTP server: one missing the files, one with
    damaged copies, one with the right ones; their sums stand in for the published ones. And a
    port on which nothing listens."""
    monkeypatch.setattr(
        chainer_mnist, "SHA256", {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in mnist_dir.iterdir()}
    )
    for name in ("empty", "damaged", "good"):
        (tmp_path / "mirrors" / name).mkdir(parents=True)
    for path in mnist_dir.iterdir():
        shutil.copy(path, tmp_path / "mirrors" / "good")
        (tmp_path / "mirrors" / "damaged" / path.name).write_bytes(path.read_bytes()[:-1] + b"?")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "mirrors"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    refused = socket.socket()  # Bound, never listening: a mirror that refuses connections.
    refused.bind(("127.0.0.1", 0))
    urls = {name: f"http://127.0.0.1:{server.server_port}/{name}/" for name in ("empty", "damaged", "good")}
    yield {**urls, "refused": f"http://127.0.0.1:{refused.getsockname()[1]}/"}
    server.shutdown()
    refused.close()


def test_download_skips_bad_mirrors_and_verifies(mirrors, mnist_dir, tmp_path):
    cache = tmp_path / "cache"
    chainer_mnist.download(cache, [mirrors["empty"], mirrors["damaged"], mirrors["good"]])
    assert sorted(p.name for p in cache.iterdir()) == sorted(p.name for p in mnist_dir.iterdir())
    assert all((cache / p.name).read_bytes() == p.read_bytes() for p in mnist_dir.iterdir())
    # Once there and intact, files are not fetched again.
    chainer_mnist.download(cache, [])


def test_failed_download_leaves_nothing_and_says_what_to_do(mirrors, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(chainer_mnist.DataError) as error:
        chainer_mnist.download(cache, [mirrors["damaged"], mirrors["empty"], mirrors["refused"]])
    message = str(error.value)
    assert "SHA-256 mismatch" in message and "404" in message and "--data-dir" in message
    assert "Connection refused" in message
    assert "\n" not in message
    assert list(cache.iterdir()) == []


def test_load_mnist_without_a_folder_uses_the_cache(mirrors, mnist_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(chainer_mnist, "MIRRORS", (mirrors["good"],))
    assert len(chainer_mnist.load_mnist()[0]) == 2000
    assert (tmp_path / "xdg" / "chainer-mnist-azureml" / "train-images-idx3-ubyte.gz").is_file()


# Atomic writes.


def test_save_atomically_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")

    def write_half_then_fail(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        chainer_mnist.save_atomically(path, write_half_then_fail)
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]
    chainer_mnist.save_atomically(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and list(tmp_path.iterdir()) == [path]


# The command line.


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--batchsize", "0"], "--batchsize must be at least 1"),
        (["--unit", "-5"], "--unit must be at least 1"),
        (["--lr", "0"], "--lr must be a positive number"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--device", "gpu"], "invalid int value"),
        (["--device", "-2"], "-1 (CPU) or a GPU number expected"),
        (["--data-dir", "/nonexistent"], "data folder /nonexistent does not exist"),
    ],
)
def test_bad_arguments_exit_with_one_line(mnist_dir, tmp_path, capsys, args, message):
    """In this process, as the exit a command line shows (test_damaged_data_exits_naming_the_file runs one): a
    SystemExit whose message is the line, or argparse's exit after its last line on stderr."""
    with pytest.raises(SystemExit) as exit:
        chainer_mnist.main(["--data-dir", str(mnist_dir), "-o", str(tmp_path / "out"), *args])
    code, err = exit.value.code, capsys.readouterr().err
    last_line = code if isinstance(code, str) else err.strip().splitlines()[-1]
    assert code not in (0, None) and "Traceback" not in err and "\n" not in last_line
    assert message in last_line
    assert not (tmp_path / "out" / "model.npz").exists()


def test_gpu_without_cupy_or_gpu_is_a_clear_error(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(chainer.backends.cuda, "available", False)
    with pytest.raises(SystemExit, match="--device 0 asks for a GPU, but CuPy is not installed"):
        train(mnist_dir, tmp_path, "--device", "0")
    monkeypatch.setattr(chainer_mnist, "gpu_count", lambda: 0)
    monkeypatch.setattr(chainer.backends.cuda, "available", True)
    with pytest.raises(SystemExit, match="CuPy sees 0 GPU"):
        train(mnist_dir, tmp_path, "--device", "1")


def test_default_device_is_the_cpu_without_a_gpu(mnist_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(chainer_mnist, "gpu_count", lambda: 0)
    chainer_mnist.main(["--data-dir", str(mnist_dir), "-o", str(tmp_path), "--unit", "20", "--epochs", "1"])
    assert "Device: CPU (NumPy)" in capsys.readouterr().out


def test_damaged_data_exits_naming_the_file(mnist_dir, tmp_path):
    path = damaged_copy(mnist_dir, tmp_path / "data", "t10k-labels-idx1-ubyte.gz", lambda data: data[:20])
    result = subprocess.run(
        [sys.executable, SCRIPT, "--data-dir", str(tmp_path / "data"), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert str(path) in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out" / "model.npz").exists()


def test_importing_has_no_side_effects():
    code = "import sys, chainer_mnist; assert not any(m.startswith('azureml') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# Faults of the output folder, the checkpoint and the data: each ends with one line, a non-zero exit and nothing
# half-written. A --data-dir that does not exist shows that a problem was found before any data was read.

NO_DATA = "/nonexistent-mnist"


def fails_with(message, mnist_dir, output_dir, *args):
    """Run main() and return the one-line error it exits with, checking that it says `message`."""
    with pytest.raises(SystemExit) as exit_:
        chainer_mnist.main(["--data-dir", str(mnist_dir), "--output_dir", str(output_dir), *QUICK, *args])
    error = str(exit_.value.code)
    assert error.startswith("error: ") and "\n" not in error and message in error, error
    return error


def written(folder):
    """The files in a folder, hidden ones (temporary files) too."""
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_output_folder_that_is_a_file_or_lies_under_one(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    fails_with("the output folder", NO_DATA, tmp_path / "file")
    fails_with("Not a directory", NO_DATA, tmp_path / "file" / "outputs")
    assert (tmp_path / "file").read_text() == "not a folder"


def without_root_privileges():
    """For a subprocess: as root, drop the capabilities that let root write where permissions forbid it."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
            assert libc.prctl(24, capability) == 0  # PR_CAPBSET_DROP: gone from the script's exec on.


import ctypes  # noqa: E402  (for without_root_privileges, here to leave the imports above as they are)


def test_read_only_output_folder_is_refused_before_the_data_is_read(tmp_path):
    folder = tmp_path / "outputs"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = subprocess.run(
            [sys.executable, SCRIPT, "--data-dir", NO_DATA, "-o", str(folder)],
            capture_output=True,
            text=True,
            preexec_fn=without_root_privileges,
        )
    finally:
        folder.chmod(0o755)
    assert result.returncode == 1 and result.stderr.splitlines() == [
        f"error: cannot write in the output folder {folder}: Permission denied"
    ]
    assert written(folder) == []


def test_output_folder_without_room_for_the_model_is_refused_before_the_data_is_read(tmp_path, monkeypatch):
    statvfs = os.statvfs

    def one_block_free(path):
        fields = list(statvfs(path))
        fields[4] = 1  # f_bavail: blocks free for this user.
        return os.statvfs_result(fields)

    monkeypatch.setattr(os, "statvfs", one_block_free)
    fails_with("MiB free; the model and its checkpoint need", NO_DATA, tmp_path)
    assert written(tmp_path) == []


def test_disk_full_at_a_checkpoint_keeps_nothing_half_written(mnist_dir, tmp_path):
    """A file size limit stands in for a full disk: each write past it fails, as on a full disk."""
    import resource

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # The checkpoint takes 1 MB.

    result = subprocess.run(
        [sys.executable, SCRIPT, "--data-dir", str(mnist_dir), *QUICK, "--epochs", "2", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        preexec_fn=small_disk,
    )
    assert result.returncode == 1 and result.stderr.splitlines() == [
        f"error: cannot save {tmp_path / 'checkpoint.npz'}: File too large"
    ]
    assert written(tmp_path) == []


def fail_writes_of(monkeypatch, name, error):
    """Make the save of `name` fail where a full disk shows on some file systems: when the data is flushed."""
    fsync = os.fsync

    def failing_fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(name)):
            raise error
        fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)


def test_disk_full_at_the_final_save(mnist_dir, tmp_path, monkeypatch):
    import errno

    fail_writes_of(monkeypatch, tmp_path / ".model.json", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    fails_with(f"cannot save {tmp_path / 'model.json'}: No space left on device", mnist_dir, tmp_path, "--epochs", "1")
    assert written(tmp_path) == ["checkpoint.npz", "model.npz"]  # No model.json that would describe another model.
    monkeypatch.undo()
    assert train(mnist_dir, tmp_path, "--epochs", "1")["epoch"] == 1  # Space again: the run completes its save.
    assert written(tmp_path) == ["checkpoint.npz", "model.json", "model.npz"]


def test_model_and_its_json_belong_to_the_same_run_even_if_stopped_between_the_saves(mnist_dir, tmp_path, monkeypatch):
    train(mnist_dir, tmp_path, "--epochs", "1", "--seed", "1")
    save_atomically = chainer_mnist.save_atomically

    def stopped_before_the_json(path, write):
        if path.name == "model.json":
            sys.exit(128 + signal.SIGTERM)  # What a cancelled run does on SIGTERM.
        save_atomically(path, write)

    monkeypatch.setattr(chainer_mnist, "save_atomically", stopped_before_the_json)
    with pytest.raises(SystemExit):
        train(mnist_dir, tmp_path, "--epochs", "1", "--seed", "2", "--no-resume")
    assert written(tmp_path) == ["checkpoint.npz", "model.npz"]  # The seed-1 model.json is gone with its model.
    monkeypatch.undo()
    result = train(mnist_dir, tmp_path, "--epochs", "1", "--seed", "2")  # Resumed: writes the pair again.
    assert result["seed"] == 2
    assert result["model_sha256"] == hashlib.sha256((tmp_path / "model.npz").read_bytes()).hexdigest()


def old_format_checkpoint(path):
    """As the script wrote them before it recorded the data (format 1)."""
    np.savez(path, epoch=1, settings=json.dumps({"epochs": 1, "batchsize": 50, "units": 100, "seed": 0}), metrics="{}")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda path: path.write_bytes(b""), "is damaged"),
        (lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]), "is damaged"),
        (lambda path: path.write_bytes(os.urandom(1000)), "is damaged"),
        (old_format_checkpoint, "was written by an older version of this script"),
    ],
)
def test_damaged_or_old_checkpoint_says_how_to_start_afresh(mnist_dir, tmp_path, damage, message):
    train(mnist_dir, tmp_path, "--epochs", "1")
    damage(tmp_path / "checkpoint.npz")
    error = fails_with(message, NO_DATA, tmp_path, "--epochs", "1")
    assert "--no-resume" in error
    assert train(mnist_dir, tmp_path, "--epochs", "1", "--no-resume")["epoch"] == 1


def test_checkpoint_of_other_data_is_not_resumed(mnist_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(mnist_dir, other)
    _, labels, _, _ = chainer_mnist.load_mnist(mnist_dir)
    write_idx(other / "train-labels-idx1-ubyte.gz", np.roll(labels, 1))  # Same size, other labels.
    train(mnist_dir, tmp_path / "out", "--epochs", "1")
    fails_with("was trained on other data", other, tmp_path / "out", "--epochs", "1")
    recorded = json.loads((tmp_path / "out" / "model.json").read_text())["data"]
    assert recorded["train_examples"] == 2000 and len(recorded["fingerprint"]) == 32


def test_second_run_on_the_same_output_folder_is_refused(mnist_dir, tmp_path):
    import fcntl

    first_run = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(first_run, fcntl.LOCK_EX)  # As a run in another process holds it.
    try:
        fails_with("another run is writing to the output folder", NO_DATA, tmp_path)
    finally:
        os.close(first_run)
    train(mnist_dir, tmp_path, "--epochs", "1")  # Free again; and the lock leaves no file behind.
    assert written(tmp_path) == ["checkpoint.npz", "model.json", "model.npz"]


def test_gzip_bomb_is_refused_quickly_with_bounded_memory(tmp_path):
    import tracemalloc
    import zlib

    images = np.zeros((100, 28, 28), np.uint8)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip format.
    chunks = [compressor.compress(b"\x00\x00\x08\x03" + np.array(images.shape, ">u4").tobytes() + images.tobytes())]
    zeros = bytes(1 << 24)
    chunks += [compressor.compress(zeros) for _ in range(16)]  # 256 MiB more than the header announces.
    (tmp_path / "bomb.gz").write_bytes(b"".join(chunks) + compressor.flush())
    assert (tmp_path / "bomb.gz").stat().st_size < 2 << 20
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(chainer_mnist.DataError, match="more data than its header announces"):
        chainer_mnist.read_idx(tmp_path / "bomb.gz", 3)
    assert time.perf_counter() - start < 1 and tracemalloc.get_traced_memory()[1] < 8 << 20
    tracemalloc.stop()


def test_header_announcing_far_more_than_mnist_is_not_read(tmp_path):
    (tmp_path / "huge").write_bytes(b"\x00\x00\x08\x03" + np.array([4_000_000_000, 28, 28], ">u4").tobytes())
    with pytest.raises(chainer_mnist.DataError, match="far more than MNIST; not read"):
        chainer_mnist.read_idx(tmp_path / "huge", 3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--unit", "1000000"], "needs about"),  # 10^12 weights.
        (["--batchsize", "2001"], "more than the 2000 training examples"),
    ],
)
def test_wildly_large_unit_or_batchsize_is_refused_quickly(mnist_dir, tmp_path, args, message):
    start = time.perf_counter()
    fails_with(message, mnist_dir, tmp_path, *args)
    assert time.perf_counter() - start < 10


def test_units_as_saved_is_accepted_on_the_command_line(mnist_dir, tmp_path):
    assert train(mnist_dir, tmp_path, "--epochs", "1", "--units", "30")["units"] == 30


# The GPU path, where CuPy and an NVIDIA GPU are both present (benchmarks/gpu_check.sh sets them up).


def why_no_gpu():
    """The reason GPU tests cannot run here, or None. Only a missing CuPy or GPU is one: with both present,
    CuPy failing to load fails the tests instead of skipping them."""
    import glob
    import importlib.util

    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed"
    return None if glob.glob("/dev/nvidia[0-9]*") else "no NVIDIA GPU"


needs_gpu = pytest.mark.skipif(why_no_gpu() is not None, reason=str(why_no_gpu()))


@pytest.mark.gpu
@needs_gpu
def test_one_step_on_the_gpu_matches_the_cpu(mnist_dir):
    after = []
    # In float64: cuBLAS and OpenBLAS sum in other orders, and Adam's first step turns a near-zero gradient into a step.
    with chainer.using_config("dtype", np.float64):
        x, t, _, _ = chainer_mnist.load_mnist(mnist_dir)
        for name in ("@numpy", "@cupy:0"):
            device = chainer.get_device(name)
            model, optimizer = chainer_mnist.build(1000, 0, device)
            chainer_mnist.train(
                model, optimizer, device.send(x), device.send(t), device.send(np.arange(128)), 128, lambda step: 0.001
            )
            model.to_cpu()
            after.append(params(model))
    difference = max(float(np.abs(after[0][k] - after[1][k]).max()) for k in after[0])
    largest = max(float(np.abs(value).max()) for value in after[0].values())
    print(f"largest parameter difference after one step, GPU against CPU: {difference:.2e} (a step is 1e-3)")
    assert after[0]["/predictor/l1/W"].dtype == np.float64
    assert difference < 1e-9 * largest  # float64 rounding of one step, far below the step (alpha) a wrong kernel moves


@pytest.mark.gpu
@needs_gpu
def test_trains_on_the_gpu_and_saves_a_model_the_cpu_loads(mnist_dir, tmp_path, capsys):
    # In float64 no example's two best digits tie within rounding: approx allows only the batch means' sum's rounding.
    with chainer.using_config("dtype", np.float64):
        result = train(mnist_dir, tmp_path, "--device", "0", "--epochs", "4")
        assert "Device: GPU 0 (CuPy)" in capsys.readouterr().out
        assert result["test_accuracy"] > 0.8
        _, _, test_x, test_y = chainer_mnist.load_mnist(mnist_dir)
        model = load_model(tmp_path / "model.npz")
        assert model.predictor.l1.W.dtype == np.float64
        assert chainer_mnist.test(model, test_x, test_y)[1] == pytest.approx(result["test_accuracy"], abs=1e-6)
