"""What each of Run's log_* kinds records, and how get_metrics() gives it back: as the SDK and Azure do.

The SDK's own metric classes (azureml.core._metrics) check and convert each value, as they do before anything
is sent to Azure, so what Azure refuses is refused here with the SDK's exception, and a value is kept as Azure
keeps it (a NumPy float as a float, a type it does not know as its repr). One call of log_* is one record;
state.layout's RunFolder keeps them in metrics.jsonl, and an image's or a JSON metric's file among the run's
files (get_file_names() lists it, under the name the SDK uploads it as):

    {"name", "description", "value"[, "step"]}   log: one value
    {"name", "description", "values"}            log_list: its values
    {"name", "description", "row"}               log_row: one row {column: value} of a table
    {"name", "description", "rows"}              log_table: its rows
    {"name", "description", "type", "file"}      log_image (file: the path as given, or <name>_<time>.png for a
                                                 plot), log_confusion_matrix, log_accuracy_table, log_residuals,
                                                 log_predictions (file: the metric's name, holding the JSON);
                                                 type: the SDK's metric type, e.g. "azureml.v2.image"

get_metrics() returns each metric as the SDK's (with its default, v2 metrics): values logged once -> the value,
more often -> the list, in the order logged (a step stays in the record: the SDK's get_metrics does not return
it); a table -> {column: value} for one row, {column: [values]} for more, None where a row lacks a column; an
image or a JSON metric -> the aml://artifactId/... location of the file first logged under its name, or, with
populate=True, the SDK's Artifact holding that file's bytes. A name keeps the kind it was first logged as:
values of another kind logged under it later are left out.
"""

import io
import json
import numbers
import os
import posixpath
from collections.abc import Iterable
from inspect import isgeneratorfunction
from types import GeneratorType

from azureml._common._core_user_error.user_error import TwoInvalidArgument, TwoInvalidParameter
from azureml._common._error_definition import AzureMLError
from azureml._restclient.constants import RUN_ORIGIN
from azureml.core._metrics import (
    ARTIFACT_ID_PREFIX,
    AccuracyTableMetric,
    Artifact,
    ConfusionMatrixMetric,
    ImageMetric,
    InlineMetric,
    ListMetric,
    PredictionsMetric,
    ResidualsMetric,
    RowMetric,
    ScalarMetric,
    TableMetric,
)
from azureml.exceptions import AzureMLException, UserErrorException

# The JSON metrics, by the name of their log_* method's suffix
JSON_METRICS = {
    "confusion_matrix": ConfusionMatrixMetric,
    "accuracy_table": AccuracyTableMetric,
    "residuals": ResidualsMetric,
    "predictions": PredictionsMetric,
}
# The keys that tell a record's kind: the record's family in get_metrics (values, a table, a file)
FAMILIES = {"value": "values", "values": "values", "row": "table", "rows": "table", "file": "file"}


def scalar(name, value, description="", step=None):
    """The record of run.log(name, value, description, step)."""
    if isinstance(value, (list, range, GeneratorType)) or isgeneratorfunction(value):
        raise UserErrorException("run.log does not support list type. Use run.log_list instead")
    if step is not None and (not isinstance(step, numbers.Integral) or isinstance(step, bool)):
        raise UserErrorException(f"A metric's step is an int, not {step!r}")
    [row] = cells(ScalarMetric(metric_name(name), value, step=step).create_v2_dto())
    step = {} if step is None else {"step": int(step)}
    return {"name": name, "description": description, "value": row[name], **step}


def values(name, value, description=""):
    """The record of run.log_list(name, value, description)."""
    if not isinstance(value, Iterable):
        raise UserErrorException(f"run.log_list takes a list of values, not {type(value).__name__}")
    dto = ListMetric(metric_name(name), value).create_v2_dto()
    if dto is None:  # the SDK then fails with an AttributeError
        raise UserErrorException(f"run.log_list takes a list of at least one value, not an empty one ({name!r})")
    return {"name": name, "description": description, "values": [row[name] for row in cells(dto)]}


def row(name, columns, description=None):
    """The record of run.log_row(name, description, **columns)."""
    [logged] = cells(RowMetric(metric_name(name), columns).create_v2_dto())
    return {"name": name, "description": description, "row": logged}


def table(name, value, description=""):
    """The record of run.log_table(name, value, description): value is {column: [values], ...}, columns of one
    length (a column that is a single value is one row)."""
    TableMetric._check_is_valid_table(value)  # the SDK's log_table fails on what is not a dict (AttributeError)
    dto = TableMetric(metric_name(name), value).create_v2_dto()
    if dto is None:  # the SDK then fails with an AttributeError
        raise UserErrorException(f"run.log_table takes a table of at least one column, not an empty one ({name!r})")
    return {"name": name, "description": description, "rows": cells(dto)}


def json_metric(kind, name, value, description=""):
    """(record, the file's bytes) of run.log_<kind>(name, value, description), value a dict or its JSON text.
    As in the SDK, the schema its docs show is not checked."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise UserErrorException("Invalid JSON provided") from None
    try:
        return uploaded(JSON_METRICS[kind](metric_name(name), value, None, description=description))
    except TypeError as error:  # json.dumps's: the SDK fails with it too
        raise UserErrorException(f"The {kind} {name!r} is not JSON: {error}") from None


def image(name, path=None, plot=None, description=""):
    """(record, the image's bytes) of run.log_image(...): an image file's path, or a matplotlib figure (or
    pyplot) saved as PNG; exactly one of them."""
    if path is not None and plot is not None:
        raise AzureMLException._with_error(AzureMLError.create(TwoInvalidParameter, arg_one="path", arg_two="plot"))
    if path is None and plot is None:
        raise AzureMLException._with_error(AzureMLError.create(TwoInvalidArgument, arg_one="path", arg_two="plot"))
    metric = ImageMetric(metric_name(name), path if path is not None else plot, None, description=description)
    return uploaded(metric, is_plot=plot is not None)


def uploaded(metric, **options):
    """(record, bytes) of an image or JSON metric: what its own log_to_artifact uploads, kept instead of sent."""
    upload = Upload()
    metric.log_to_artifact(upload, RUN_ORIGIN, None, **options)
    # The SDK uploads an image under its path as given; in the run, a path leading out of it is cut to the part
    # that stays inside (e.g. /tmp/plot.png -> tmp/plot.png).
    name = posixpath.normpath(upload.name).lstrip("/")
    while name.startswith("../"):
        name = name[3:]
    record = {"name": metric.name, "description": metric.description, "type": metric.metric_type, "file": name}
    return record, upload.data


class Upload:
    """Stands for the SDK's ArtifactsClient in log_to_artifact: takes what it takes (a file's path as a str, or a
    stream) and keeps its name and bytes."""

    def upload_artifact(self, artifact, origin, container, name, content_type=None):
        if isinstance(artifact, str):
            with open(os.path.abspath(artifact), "rb") as stream:
                self.data = stream.read()
        elif isinstance(artifact, io.IOBase):
            self.data = artifact.read()
        else:
            raise UserErrorException(
                f"UnsupportedType: type {type(artifact)} is invalid, supported input types: file path or file"
            )
        self.name = name


def cells(dto):
    """The rows {column: value} of the SDK's MetricV2Dto, with the values the SDK's get_metrics gives back."""
    return [{column: cell(dto.columns, value, column) for column in dto.columns} for value in dto.value]


def cell(columns, value, column):
    """The SDK's get_cell_v2 (a value of a column of floats as a float), or the value as logged where that fails
    (a string among numbers)."""
    try:
        return InlineMetric.get_cell_v2(columns, value, column)
    except ValueError:
        return value.data[column]


def metric_name(name):
    if not isinstance(name, str) or not name:
        raise UserErrorException(f"A metric's name is a non-empty string, not {name!r}")
    return name


def get_metrics(folder, run_id, name=None, populate=False):
    """{name: metric} of the run of RunFolder `folder` (all, or the one named), in the SDK's shapes."""
    records = {}
    for record in folder.metrics():
        if name in (None, record["name"]):
            records.setdefault(record["name"], []).append(record)
    return {key: shaped(folder, run_id, logged, populate) for key, logged in records.items()}


def shaped(folder, run_id, records, populate):
    """One metric in the SDK's shape, from its records (those of the kind it was first logged as)."""
    family = kind(records[0])
    records = [record for record in records if kind(record) == family]
    if family == "values":
        logged = [value for record in records for value in record.get("values", [record.get("value")])]
        return logged[0] if len(logged) == 1 else logged
    if family == "table":
        rows = [logged for record in records for logged in record.get("rows", [record.get("row")])]
        columns = dict.fromkeys(column for logged in rows for column in logged)
        if len(rows) == 1:
            return {column: rows[0][column] for column in columns}
        return {column: [logged.get(column) for logged in rows] for column in columns}
    first = records[0]
    location = f"{ARTIFACT_ID_PREFIX}{RUN_ORIGIN}/{data_container(run_id)}/{first['file']}"
    if not populate:
        return location
    artifact = Artifact.create_unpopulated_artifact_from_data_location(location, first["type"], data_container(run_id))
    artifact.data = folder.read_metric_file(first["file"])
    return artifact


def kind(record):
    return next(FAMILIES[key] for key in FAMILIES if key in record)


def data_container(run_id):
    """The run's artifact container, as Azure names it."""
    return f"dcid.{run_id}"
