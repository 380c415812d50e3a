"""chainer_mnist.py end to end on a small synthetic MNIST, and each of its ways to fail."""
import functools
import gzip
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import chainer
import chainer.links as L
import numpy as np
import pytest

import chainer_mnist
from helpers import REPO
from synthetic_mnist import write_idx

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
    assert chainer_mnist.evaluate(model, test_x, test_y)[1] == pytest.approx(result["test_accuracy"])
    # What a registered model is made of; the checkpoint must not look like one, nor temporary files remain.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz", "model.json", "model.npz"]


def test_runs_as_a_script_with_nothing_on_stderr(mnist_dir, tmp_path):
    """A warning would land in the run's log, and in the notebook's committed outputs."""
    result = subprocess.run([sys.executable, SCRIPT, "--data-dir", str(mnist_dir), *QUICK, "--epochs", "1",
                             "-o", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == ""


def test_logs_metrics_to_the_run(mnist_dir, tmp_path, monkeypatch):
    from azureml.core.run import Run

    logged = []
    monkeypatch.setattr(type(Run.get_context()), "log", lambda self, name, value, *a, **k: logged.append(name))
    train(mnist_dir, tmp_path, "--epochs", "2")
    for name in ("Batch size", "Epochs", "Units"):
        assert logged.count(name) == 1
    for name in ("Loss", "Accuracy", "Train loss", "Train accuracy"):
        assert logged.count(name) == 2


def test_same_seed_same_model_other_seed_other_model(mnist_dir, tmp_path):
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        train(mnist_dir, tmp_path / name, "--epochs", "1", "--seed", seed)
    a, b, c = (params(load_model(tmp_path / name / "model.npz")) for name in "abc")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["/predictor/l1/W"], c["/predictor/l1/W"])


def test_fused_adam_matches_chainers_adam():
    rng = np.random.default_rng(0)
    # 90,000 weights take the parallel kernel, the 300 biases the serial one.
    models = [L.Linear(300, 300) for _ in range(2)]
    assert models[0].W.size >= chainer_mnist.PARALLEL_SIZE > models[0].b.size
    models[1].copyparams(models[0])
    optimizers = [chainer.optimizers.Adam(), chainer_mnist.FusedAdam()]
    for model, optimizer in zip(models, optimizers):
        optimizer.setup(model)
    for _ in range(5):
        x = rng.standard_normal((10, 300), dtype=np.float32)
        for model, optimizer in zip(models, optimizers):
            model.cleargrads()
            chainer.functions.sum(model(x) ** 2).backward()
            optimizer.update()
    for name, value in params(models[0]).items():
        np.testing.assert_allclose(params(models[1])[name], value, rtol=1e-5, atol=1e-7)


def started_until_first_checkpoint(args, output_dir):
    """The script running in a subprocess, returned as soon as its first checkpoint is there."""
    process = subprocess.Popen(args + ["-o", str(output_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (output_dir / "checkpoint.npz").exists() and process.poll() is None:
        time.sleep(0.001)
    return process


def test_resume_after_kill_gives_the_same_model(mnist_dir, tmp_path):
    args = [sys.executable, SCRIPT, "--data-dir", str(mnist_dir), *QUICK, "--epochs", "6"]
    subprocess.run(args + ["-o", str(tmp_path / "whole")], check=True, capture_output=True)

    killed = tmp_path / "killed"
    process = started_until_first_checkpoint(args, killed)
    process.send_signal(signal.SIGKILL)  # As a pre-empted node would be: no chance to clean up.
    process.wait()
    assert not (killed / "model.npz").exists(), "the run ended before it could be killed"
    with np.load(killed / "checkpoint.npz") as checkpoint:
        assert 1 <= int(checkpoint["epoch"]) < 6
    resumed = subprocess.run(args + ["-o", str(killed)], check=True, capture_output=True, text=True).stdout
    assert "Resuming after epoch" in resumed

    whole, again = (params(load_model(tmp_path / name / "model.npz")) for name in ("whole", "killed"))
    assert all(np.array_equal(whole[k], again[k]) for k in whole)
    assert json.loads((killed / "model.json").read_text())["test_accuracy"] == \
        json.loads((tmp_path / "whole" / "model.json").read_text())["test_accuracy"]


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
    assert all(np.array_equal(a, b) for a, b in zip(compressed, uncompressed))


def test_mnist_dir_from_the_environment(mnist_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    assert len(chainer_mnist.load_mnist()[2]) == 500


def damaged_copy(mnist_dir, tmp_path, name, damage):
    shutil.copytree(mnist_dir, tmp_path, dirs_exist_ok=True)
    path = tmp_path / name
    path.write_bytes(damage(path.read_bytes()))
    return path


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[: len(data) // 2], "cannot read"),  # Truncated gzip stream.
    (lambda data: data[:100] + bytes(b ^ 0xFF for b in data[100:200]) + data[200:], "cannot read"),  # Corrupt.
    (lambda data: gzip.compress(gzip.decompress(data)[:-10]), "truncated or corrupt"),  # Short payload.
    (lambda data: gzip.compress(gzip.decompress(data)[:10]), "truncated"),  # Short header.
    (lambda data: gzip.compress(b"\x00\x00\x08\x01" + gzip.decompress(data)[4:]), "magic"),  # Wrong magic.
    (lambda data: b"not gzip at all", "cannot read"),
])
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
    damaged copies, one with the right ones; their sums stand in for the published ones."""
    monkeypatch.setattr(chainer_mnist, "SHA256", {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in mnist_dir.iterdir()})
    for name in ("empty", "damaged", "good"):
        (tmp_path / "mirrors" / name).mkdir(parents=True)
    for path in mnist_dir.iterdir():
        shutil.copy(path, tmp_path / "mirrors" / "good")
        (tmp_path / "mirrors" / "damaged" / path.name).write_bytes(path.read_bytes()[:-1] + b"?")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "mirrors"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {name: f"http://127.0.0.1:{server.server_port}/{name}/" for name in ("empty", "damaged", "good")}
    server.shutdown()


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
        chainer_mnist.download(cache, [mirrors["damaged"], mirrors["empty"], "file:///nonexistent/"])
    message = str(error.value)
    assert "SHA-256 mismatch" in message and "404" in message and "--data-dir" in message
    assert "\n" not in message
    assert list(cache.iterdir()) == []


def test_load_mnist_without_a_folder_uses_the_cache(mirrors, mnist_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(chainer_mnist, "MIRRORS", ((tmp_path / "mirrors" / "good").as_uri() + "/",))
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

@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--batchsize", "0"], "--batchsize must be at least 1"),
    (["--unit", "-5"], "--unit must be at least 1"),
    (["--device", "gpu"], "invalid int value"),
    (["--device", "-2"], "-1 (CPU) or a GPU number expected"),
    (["--data-dir", "/nonexistent"], "data folder /nonexistent does not exist"),
])
def test_bad_arguments_exit_with_one_line(mnist_dir, tmp_path, args, message):
    argv = [sys.executable, SCRIPT, "--data-dir", str(mnist_dir), "-o", str(tmp_path / "out"), *args]
    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
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
    result = subprocess.run([sys.executable, SCRIPT, "--data-dir", str(tmp_path / "data"), "-o", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert str(path) in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out" / "model.npz").exists()


def test_importing_has_no_side_effects():
    code = "import sys, chainer_mnist; assert not any(m.startswith('azureml') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
