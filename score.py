"""Scoring script of the MNIST web service: Azure ML runs it in azureml-inference-server-http (azmlinfsrv).

POST /score with {"data": [image, ...]}: each image is 784 pixel values in one row, or 28 rows of 28,
as grey levels from 0 (background) to 255 (ink), the scale of the MNIST files and of 8-bit images.
The answer lists, per image, the digit and the probabilities of the ten digits:
    [{"digit": 7, "probabilities": [0.0, ..., 0.99, ...]}, ...]
At most MAX_IMAGES images a request; bad input is answered with status 400 and {"message": "what is wrong"}.
"""

import os
from pathlib import Path

import chainer
import chainer.functions as F
import numpy as np
from azureml_inference_server_http.api.aml_response import AMLResponse
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

from chainer_mnist import MLP

MAX_IMAGES = 1000  # about 3 MB of JSON at 0-255; larger batches belong in a batch job, not a web request
MODEL_FILE = "model.npz"

model = None


def init():
    """Load the registered model.npz once per server worker (AZUREML_MODEL_DIR is the model's folder)."""
    global model
    path = find_model(Path(os.environ["AZUREML_MODEL_DIR"]))
    with np.load(path) as saved:
        # Saved by chainer_mnist.py as a Classifier ("predictor/l1/W", ...) or as the bare MLP ("l1/W", ...).
        (first_layer,) = [key for key in saved.files if key.endswith("l1/W")]
        units = saved[first_layer].shape[0]
    model = MLP(units)
    chainer.serializers.load_npz(path, model, path=first_layer[: -len("l1/W")])
    print(f"Loaded a {units}-unit MLP from {path.name}")


def find_model(model_dir):
    """AZUREML_MODEL_DIR/model.npz, or the one model.npz below it (a registered folder keeps its subfolders)."""
    if (model_dir / MODEL_FILE).is_file():
        return model_dir / MODEL_FILE
    found = sorted(model_dir.rglob(MODEL_FILE))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one {MODEL_FILE} in AZUREML_MODEL_DIR ({model_dir}), found {len(found)}")
    return found[0]


@input_schema("data", StandardPythonParameterType([[0] * 784]), convert_to_provided_type=False)
@output_schema(StandardPythonParameterType([{"digit": 7, "probabilities": [0.1] * 10}]))
def run(data):
    """Classify the images in `data`; a client error is answered with 400 and says what is wrong."""
    try:
        images = to_images(data)
    except ValueError as e:
        return AMLResponse({"message": str(e)}, 400, json_str=True)
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        probabilities = F.softmax(model(images / np.float32(255))).array
    return [{"digit": int(p.argmax()), "probabilities": p.tolist()} for p in probabilities]


def to_images(data):
    """`data` as a float32 array of shape (n, 784) with values in [0, 255], or ValueError saying why not."""
    if not isinstance(data, list) or not data:
        raise ValueError('"data" must be a non-empty list of images (784 values each, or 28 rows of 28)')
    if len(data) > MAX_IMAGES:
        raise ValueError(f"{len(data)} images in one request; at most {MAX_IMAGES} are accepted")
    try:
        images = np.array(data, dtype=np.float32)
    except (ValueError, TypeError):  # ragged lists, strings, null, nested objects
        raise ValueError("each image must be 784 numbers, or 28 rows of 28 numbers") from None
    if images.shape[1:] not in ((784,), (28, 28)):
        raise ValueError(
            f"images of shape {images.shape[1:]} received; each must be 784 numbers or 28 rows of 28 numbers"
        )
    images = images.reshape(len(images), 784)
    if not np.isfinite(images).all():
        raise ValueError("pixel values must be numbers, not NaN, Infinity or null")
    low, high = images.min(), images.max()
    if low < 0 or high > 255:
        raise ValueError(f"pixel values must be between 0 and 255 (received {low:g} to {high:g})")
    return images
