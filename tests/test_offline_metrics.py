"""Every log_* kind of Run as Azure records it: each value checked and converted as the SDK does, refused with the
SDK's exceptions, and given back by get_metrics() in the SDK's shapes; images and JSON metrics as files of the run.
The runs here are recorded directly (no script runs), so each test is quick."""

import json
import re

import numpy as np
import pytest
from azureml.core._metrics import ImageArtifact, JsonArtifact
from azureml.exceptions import AzureMLException, UserErrorException
from helpers import recorded_run
from matplotlib.figure import Figure

from azureml_offline.backend import backend_of

PNG = b"\x89PNG"
# The examples of the SDK's docstrings (azureml.core.run.Run.log_*), cut short: the SDK checks no schema.
CONFUSION_MATRIX = {
    "schema_type": "confusion_matrix",
    "schema_version": "1.0.0",
    "data": {"class_labels": ["0", "1"], "matrix": [[3, 1], [0, 2]]},
}
JSON_VALUES = {
    "log_confusion_matrix": CONFUSION_MATRIX,
    "log_accuracy_table": {
        "schema_type": "accuracy_table",
        "schema_version": "1.0.1",
        "data": {
            "probability_tables": [[[82, 118, 0, 0], [0, 0, 118, 82]]],
            "percentile_tables": [[[82, 118, 0, 0], [3, 0, 118, 79]]],
            "probability_thresholds": [0.0, 1.0],
            "percentile_thresholds": [0.0, 1.0],
            "class_labels": ["0"],
        },
    },
    "log_residuals": {
        "schema_type": "residuals",
        "schema_version": "1.0.0",
        "data": {"bin_edges": [50, 100, 200, 300, 350], "bin_counts": [0.88, 20, 30, 50.99]},
    },
    "log_predictions": {
        "schema_type": "predictions",
        "schema_version": "1.0.0",
        "data": {
            "bin_averages": [0.25, 0.75],
            "bin_errors": [0.013, 0.042],
            "bin_counts": [56, 34],
            "bin_edges": [0.0, 0.5, 1.0],
        },
    },
}


@pytest.fixture
def run(fresh_workspace):
    return recorded_run(fresh_workspace, "exp_1")


def png_file(path):
    figure = Figure(figsize=(1, 1))
    figure.subplots().plot([1, 2])
    figure.savefig(path)
    return path.read_bytes()


def test_scalars_lists_rows_and_tables_come_back_in_the_sdk_shapes(run):
    run.log("once", 3)
    for value in (0.5, np.float32(0.25)):
        run.log("twice", value)
    run.log_list("list", [1, 2.5])
    run.log_list("list of one", (7,))
    run.log_row("row", a=1, b="x")
    run.log_row("rows", epoch=1, loss=0.5)
    run.log_row("rows", epoch=2, accuracy=0.9)  # a new column: None where a row lacks it
    run.log_table("table", {"x": [1, 2], "y": [0.5, 1]})
    run.log_table("one-row table", {"x": 1, "y": "a"})
    assert run.get_metrics() == {
        "once": 3,
        "twice": [0.5, 0.25],
        "list": [1.0, 2.5],  # a column of floats: every value a float, as Azure gives it back
        "list of one": 7,
        "row": {"a": 1, "b": "x"},
        "rows": {"epoch": [1, 2], "loss": [0.5, None], "accuracy": [None, 0.9]},
        "table": {"x": [1, 2], "y": [0.5, 1.0]},
        "one-row table": {"x": 1, "y": "a"},
    }
    assert run.get_metrics("table") == {"table": {"x": [1, 2], "y": [0.5, 1.0]}}
    assert run.get_metrics("nothing") == {}


def test_values_are_converted_as_the_sdk_converts_them(run):
    run.log("numpy float", np.float64(0.5))
    run.log("numpy int8", np.int8(3))
    run.log("numpy int64", np.int64(5))  # not among the SDK's NumPy types: its repr, a string, as on Azure
    run.log("a dict", {"a": 1})
    assert run.get_metrics() == {"numpy float": 0.5, "numpy int8": 3, "numpy int64": "5", "a dict": "{'a': 1}"}
    assert [type(value) for value in run.get_metrics().values()] == [float, int, str, str]


def test_steps_are_kept_in_the_record_and_values_come_back_in_order(run):
    for step, value in enumerate([0.9, 0.8, 0.7]):
        run.log("loss", value, step=step * 10)
    assert run.get_metrics("loss") == {"loss": [0.9, 0.8, 0.7]}  # as the SDK's get_metrics: values only
    records = backend_of(run).folder_of(run).metrics()
    assert [(record["step"], record["value"]) for record in records] == [(0, 0.9), (10, 0.8), (20, 0.7)]


def test_a_name_keeps_the_kind_it_was_first_logged_as(run):
    run.log("m", 1)
    run.log_row("m", a=2)
    run.log("m", 3)
    run.log_row("t", a=1)
    run.log("t", 5)
    assert run.get_metrics() == {"m": [1, 3], "t": {"a": 1}}
    folder = backend_of(run).folder_of(run)
    assert (folder.metric_values("m"), folder.metric_values("t")) == ([1.0, 3.0], [])  # what a sweep reads


def test_an_image_from_a_path_or_a_figure_is_a_file_of_the_run(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plots").mkdir()
    image = png_file(tmp_path / "plots" / "curve.png")
    run.log_image("curve", path="plots/curve.png", description="a curve")
    figure = Figure()
    figure.subplots().plot([3, 1, 2])
    run.log_image("figure", plot=figure)
    names = run.get_file_names()
    drawn = next(name for name in names if name.startswith("figure_"))
    assert re.fullmatch(r"figure_\d+\.png", drawn) and names == [drawn, "plots/curve.png"]
    assert run.get_metrics() == {
        "curve": f"aml://artifactId/ExperimentRun/dcid.{run.id}/plots/curve.png",
        "figure": f"aml://artifactId/ExperimentRun/dcid.{run.id}/{drawn}",
    }
    populated = run.get_metrics(populate=True)
    assert isinstance(populated["curve"], ImageArtifact) and populated["curve"].data == image
    assert populated["figure"].data.startswith(PNG)
    run.download_file("plots/curve.png", str(tmp_path / "downloaded.png"))
    assert (tmp_path / "downloaded.png").read_bytes() == image


def test_an_image_from_outside_the_current_folder_stays_inside_the_run(run, tmp_path, monkeypatch):
    png_file(tmp_path / "curve.png")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    run.log_image("relative", path="../curve.png")
    run.log_image("absolute", path=str(tmp_path / "curve.png"))
    assert run.get_file_names() == ["curve.png", str(tmp_path / "curve.png").lstrip("/")]


@pytest.mark.parametrize("method", sorted(JSON_VALUES))
def test_json_metrics_are_files_of_the_run_named_as_the_metric(run, method):
    value = JSON_VALUES[method]
    getattr(run, method)("as a dict", value)
    getattr(run, method)("as JSON text", json.dumps(value), description="text")
    assert run.get_file_names() == ["as JSON text", "as a dict"]
    assert run.get_metrics("as a dict") == {"as a dict": f"aml://artifactId/ExperimentRun/dcid.{run.id}/as a dict"}
    for name, artifact in run.get_metrics(populate=True).items():
        assert isinstance(artifact, JsonArtifact) and artifact.convert_to_object() == value, name


def test_get_metrics_recursive_gives_each_run_that_logged_by_id(fresh_workspace):
    parent = recorded_run(fresh_workspace, "exp_1")
    child = recorded_run(fresh_workspace, "exp_2", parent_id="exp_1")
    grandchild = recorded_run(fresh_workspace, "exp_3", parent_id="exp_2", run_type="special")
    recorded_run(fresh_workspace, "exp_4", parent_id="exp_1")  # logs nothing: left out
    parent.log("a", 1)
    child.log("a", 2)
    grandchild.log("b", 3)
    assert parent.get_metrics(recursive=True) == {"exp_2": {"a": 2}, "exp_3": {"b": 3}, "exp_1": {"a": 1}}
    assert parent.get_metrics("a", recursive=True) == {"exp_2": {"a": 2}, "exp_1": {"a": 1}}
    assert parent.get_metrics(recursive=True, run_type="special") == {"exp_3": {"b": 3}, "exp_1": {"a": 1}}


@pytest.mark.parametrize(
    "call, exception, message",
    [
        (lambda run: run.log("a", [1, 2]), UserErrorException, "Use run.log_list instead"),
        (lambda run: run.log("a", (x for x in [1])), UserErrorException, "Use run.log_list instead"),
        (lambda run: run.log("a", 1, step="one"), UserErrorException, "step"),
        (lambda run: run.log("", 1), UserErrorException, "name"),
        (lambda run: run.log_list("a", 5), UserErrorException, "list of values"),
        (lambda run: run.log_list("a", []), UserErrorException, "at least one value"),
        (lambda run: run.log_list("a", [1, object()]), AzureMLException, "is not supported"),
        (lambda run: run.log_row("a", b=[1, 2]), AzureMLException, "Rows cannot contain list values"),
        (lambda run: run.log_table("a", [1, 2]), AzureMLException, "Expected type: \\[dict"),
        (lambda run: run.log_table("a", {"x": [1, 2], "y": [1]}), AzureMLException, "same length"),
        (lambda run: run.log_table("a", {}), UserErrorException, "at least one column"),
        (lambda run: run.log_confusion_matrix("a", "{not json"), UserErrorException, "Invalid JSON provided"),
        (lambda run: run.log_residuals("a", {"data": object()}), UserErrorException, "not JSON"),
        (lambda run: run.log_image("a"), AzureMLException, "one of path and plot is required"),
        (lambda run: run.log_image("a", path="x.png", plot=Figure()), AzureMLException, "both provided"),
        (lambda run: run.log_image("a", path=__file__), AzureMLException, "is malformed"),
        (lambda run: run.log_image("a", plot="not a figure"), AzureMLException, "matplotlib.pyplot"),
        (lambda run: run.log_image("a", path="/no/such.png"), FileNotFoundError, "such.png"),
    ],
)
def test_what_the_sdk_refuses_is_refused_with_its_exception_and_nothing_is_recorded(run, call, exception, message):
    with pytest.raises(exception, match=message):
        call(run)
    assert run.get_metrics() == {} and run.get_file_names() == []


def test_a_pathlib_path_is_refused_as_the_sdk_s_upload_refuses_it(run, tmp_path):
    png_file(tmp_path / "curve.png")
    with pytest.raises(UserErrorException, match="UnsupportedType"):
        run.log_image("a", path=tmp_path / "curve.png")
    assert run.get_metrics() == {} and run.get_file_names() == []
