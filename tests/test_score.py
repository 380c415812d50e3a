"""score.py in-process: where init() finds the model, and that it reads the hidden-layer size from it."""

import chainer
import chainer.links as L
import numpy as np
import pytest

import score
from chainer_mnist import MLP


def saved_model(path, units, classifier=True):
    mlp = MLP(units)
    mlp(np.zeros((1, 784), np.float32))  # creates the weights
    path.parent.mkdir(parents=True, exist_ok=True)
    chainer.serializers.save_npz(path, L.Classifier(mlp) if classifier else mlp)


@pytest.mark.parametrize("where, classifier", [("model.npz", True), ("outputs/model.npz", True), ("model.npz", False)])
def test_init_loads_the_model_wherever_the_registered_file_or_folder_put_it(tmp_path, monkeypatch, where, classifier):
    saved_model(tmp_path / where, units=32, classifier=classifier)
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    score.init()
    assert score.model.l1.W.shape == (32, 784)
    (answer,) = score.run([[0] * 784])
    assert 0 <= answer["digit"] <= 9 and abs(sum(answer["probabilities"]) - 1) < 1e-5


def test_init_refuses_to_guess_between_two_models(tmp_path, monkeypatch):
    saved_model(tmp_path / "a" / "model.npz", units=8)
    saved_model(tmp_path / "b" / "model.npz", units=8)
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="expected one model.npz"):
        score.init()
