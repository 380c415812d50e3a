"""The tutorial's training script, unchanged, submitted to the offline workspace for one epoch."""

from azureml.core import ScriptRunConfig
from helpers import REPO

from azureml_offline.experiment import Experiment
from azureml_offline.workspace import Workspace


def test_chainer_mnist_runs_offline_and_comes_back_with_metrics_and_model(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("AZUREML_OFFLINE_DIR", str(tmp_path / "ws"))
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    source = tmp_path / "chainer-mnist"
    source.mkdir()
    (source / "chainer_mnist.py").write_bytes((REPO / "chainer_mnist.py").read_bytes())
    config = ScriptRunConfig(
        source_directory=str(source),
        script="chainer_mnist.py",
        arguments=["--epochs", 1, "--batchsize", 128, "--unit", 100, "--output_dir", "./outputs"],
    )
    run = Experiment(Workspace.from_config(), "chainer-mnist").submit(config)
    assert run.wait_for_completion()["status"] == "Completed"
    metrics = run.get_metrics()
    assert (metrics["Epochs"], metrics["Batch size"], metrics["Units"]) == (1, 128, 100)
    assert {"Loss", "Accuracy", "Train loss", "Train accuracy"} <= set(metrics)
    assert 0.0 <= metrics["Accuracy"] <= 1.0
    assert {"outputs/model.npz", "outputs/model.json"} <= set(run.get_file_names())
    model = run.register_model(model_name="chainer-dnn-mnist", model_path="outputs/model.npz")
    assert model.download(str(tmp_path / "model")).endswith("model.npz")
