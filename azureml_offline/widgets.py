"""RunDetails: a live view of a run or a sweep in ipywidgets 7.

A run: its status, its metrics (latest values, and a chart of those logged more than once), its tables and images
(log_table, log_row, log_image), as Azure ML studio shows them, and its log's tail.
A sweep (a HyperDriveRun): its status, a table of its children (status, hyperparameters, latest and best primary
metric) and a chart of the primary metric of each child, interval by interval.

It calls only the public Run API (get_details_with_logs, get_metrics, get_children, get_properties,
get_hyperparameters), so it shows an Azure run as well as an offline one: in JupyterLab 4 and Notebook 7,
where azureml-widgets' own RunDetails does not render, it is the live view for Azure runs too. Front ends
without widgets get a line that names the run (outside IPython, its status and metrics are printed).
"""

import html
import io
import itertools
import json
import threading
import time
from pathlib import PurePosixPath

import ipywidgets
from azureml.core._metrics import ARTIFACT_ID_PREFIX, ImageArtifact
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .engine.policies import best_of, usable
from .run import TERMINAL_STATES, metric_values

POLL_SECONDS = 1.5
LOG_TAIL_LINES = 15
MAX_CHARTED_METRICS = 4  # of a run, side by side
CHART_INCHES, CHART_DPI = (4.2, 3), 90  # each chart's size
CHART_WIDTH_PIXELS = int(CHART_INCHES[0] * CHART_DPI)
MAX_TABLE_ROWS = 100  # of each table metric shown


class RunDetails:
    """Shows `run_instance` and updates the view every POLL_SECONDS until the run ends."""

    def __init__(self, run_instance):
        self._run = run_instance
        self._is_sweep = hasattr(run_instance, "get_children_sorted_by_primary_metric")
        self.header = ipywidgets.HTML()
        self.metrics_html = ipywidgets.HTML()
        # A PNG drawn here, not a plot in an Output widget: setting a value updates from any thread.
        self.chart = ipywidgets.Image(format="png", layout=ipywidgets.Layout(max_width="100%"))
        self.charted = None  # what the chart shows, to redraw it only when that changes
        self.tables = ipywidgets.HTML()  # the run's table metrics
        self.images = ipywidgets.HBox(layout=ipywidgets.Layout(flex_flow="row wrap"))  # its image metrics
        self.imaged = None  # which images show, to rebuild them only when that changes
        self.artifacts = {}  # the SDK's Artifact of each image or JSON metric's location, fetched once
        self.log = ipywidgets.Textarea(layout=ipywidgets.Layout(width="100%", height="16em"), disabled=True)
        self.widget = ipywidgets.VBox([self.header, self.metrics_html, self.chart, self.tables, self.images, self.log])
        self.poller = threading.Thread(target=self._poll, daemon=True)

    def show(self, render_lib=None, widget_settings=None):
        """Display the view, then keep it current from a background thread until the run ends.

        As in the SDK, render_lib (e.g. Databricks' displayHTML) is given the view's HTML once, which does not
        update; widget_settings (the SDK's only one is 'debug') changes nothing here.
        """
        state = self.get_widget_data()
        self._render(state)
        if render_lib is not None:
            render_lib(
                f"{self.header.value}{self.metrics_html.value}{self.tables.value}<pre>{html.escape(self.log.value)}</pre>"
            )
        elif InteractiveShell.initialized():
            display(
                {
                    "application/vnd.jupyter.widget-view+json": {
                        "version_major": 2,
                        "version_minor": 0,
                        "model_id": self.widget.model_id,
                    },
                    # Plain text cannot update: name the run rather than a status that is stale at once.
                    "text/plain": f"Live view of {'sweep' if self._is_sweep else 'run'} {self._run.id} (needs a front "
                    "end with widgets; run.wait_for_completion(show_output=True) streams its log)",
                },
                raw=True,
            )
        else:
            print(self._text(state))
        if state["status"] not in TERMINAL_STATES:
            self.poller.start()

    def get_widget_data(self, widget_settings=None):
        """What the view shows: run id, status, the tail of the newest log, and the metrics of the run (with
        "artifacts": the SDK's Artifact, with its bytes, of each image or JSON metric), or, for a sweep, its
        children and its primary metric."""
        details = self._run.get_details_with_logs()
        logs = list(details.get("logFiles", {}).values())
        tail = logs[-1].splitlines()[-LOG_TAIL_LINES:] if logs else []
        state = {"run_id": self._run.id, "status": details["status"], "log_tail": "\n".join(tail)}
        if self._is_sweep:
            state.update(self._sweep_data())
        else:
            state["metrics"] = self._run.get_metrics()
            state["artifacts"] = self._fetch_artifacts(state["metrics"])
        return state

    def _fetch_artifacts(self, metrics):
        """{name: the SDK's Artifact} of the image and JSON metrics, whose get_metrics() value is their location;
        each location's file is fetched once (get_metrics with populate)."""
        locations = {
            name: value
            for name, value in metrics.items()
            if isinstance(value, str) and value.startswith(ARTIFACT_ID_PREFIX)
        }
        for name, location in locations.items():
            if location not in self.artifacts:
                self.artifacts[location] = self._run.get_metrics(name, populate=True).get(name)
        return {name: self.artifacts[location] for name, location in locations.items()}

    def _sweep_data(self):
        primary = json.loads(self._run.get_properties()["primary_metric_config"])
        hyperparameters = self._run.get_hyperparameters()
        children = []
        for child in self._run.get_children():
            values = metric_values(child.get_metrics(primary["name"]).get(primary["name"]))
            best = best_of(usable(values), primary["goal"] == "maximize")
            children.append(
                {
                    "run_id": child.id,
                    "status": child.get_status(),
                    "hyperparameters": json.loads(hyperparameters.get(child.id, "{}")),
                    "values": values,
                    "latest": values[-1] if values else None,
                    "best": best,
                }
            )
        return {"primary_metric": primary, "children": children}

    def _poll(self):
        while True:
            time.sleep(POLL_SECONDS)
            try:
                state = self.get_widget_data()
                self._render(state)
            except Exception:  # e.g. a transient error reaching an Azure run: try again next time
                continue
            if state["status"] in TERMINAL_STATES:
                return

    def _render(self, state):
        self.header.value = (
            f"<b>{'Sweep' if self._is_sweep else 'Run'}</b> {html.escape(state['run_id'])} &nbsp; "
            f"<b>Status</b> {html.escape(state['status'])}"
        )
        if self._is_sweep:
            self.metrics_html.value = children_table(state)
            name = state["primary_metric"]["name"]
            series = {child["run_id"].rpartition("_")[2]: child["values"] for child in state["children"]}
            self._draw({name: series}, legend_title="child")
        else:
            values = {
                name: value
                for name, value in state["metrics"].items()
                if not isinstance(value, dict) and name not in state["artifacts"]
            }
            kinds = {
                name: artifact.metric_type.rpartition(".")[2].replace("_", " ")
                for name, artifact in state["artifacts"].items()
                if artifact is not None and not isinstance(artifact, ImageArtifact)
            }
            rows = "".join(
                f"<tr><td>{html.escape(name)}</td><td>{html.escape(latest_text(value))}</td></tr>"
                for name, value in {**values, **kinds}.items()
            )
            self.metrics_html.value = f"<table><tr><th>Metric</th><th>Latest</th></tr>{rows}</table>" if rows else ""
            curves = {
                name: {"": metric_values(value)}
                for name, value in values.items()
                if isinstance(value, list) and len(metric_values(value)) > 1
            }
            self._draw(dict(list(curves.items())[:MAX_CHARTED_METRICS]))
            self.tables.value = "".join(
                table_html(name, value) for name, value in state["metrics"].items() if isinstance(value, dict)
            )
            self._show_images(state["artifacts"])
        self.log.value = state["log_tail"]

    def _show_images(self, artifacts):
        """One ipywidgets.Image under its name for each image metric, rebuilt only when they change."""
        images = {
            name: artifact
            for name, artifact in artifacts.items()
            if isinstance(artifact, ImageArtifact) and artifact.data
        }
        shown = [(name, artifact.data_location) for name, artifact in images.items()]
        if shown == self.imaged:
            return
        self.imaged = shown
        self.images.children = [
            ipywidgets.VBox(
                [
                    ipywidgets.HTML(f"<b>{html.escape(name)}</b>"),
                    ipywidgets.Image(
                        value=artifact.data,
                        format=PurePosixPath(artifact.path).suffix.lstrip(".") or "png",
                        layout=ipywidgets.Layout(max_width="100%"),
                    ),
                ]
            )
            for name, artifact in images.items()
        ]

    def _draw(self, charts, legend_title=None):
        """Draw `charts` ({title: {label: values}}) side by side, if they changed; nothing to draw hides the chart."""
        if charts == self.charted:
            return
        self.charted = charts
        self.chart.value = (
            chart_png(charts, legend_title)
            if charts and any(values for series in charts.values() for values in series.values())
            else b""
        )
        self.chart.width = str(CHART_WIDTH_PIXELS * len(charts))  # its own size: front ends may stretch it
        self.chart.layout.display = None if self.chart.value else "none"

    def _text(self, state):
        if self._is_sweep:
            lines = [
                f"  {child['run_id']}: {child['status']}, best {number_text(child['best'])}"
                for child in state["children"]
            ]
            return f"Sweep {state['run_id']}: {state['status']}" + "".join(f"\n{line}" for line in lines)
        metrics = "".join(f"\n  {name}: {latest_text(value)}" for name, value in state["metrics"].items())
        return f"Run {state['run_id']}: {state['status']}{metrics}"


def children_table(state):
    """The sweep's children as an HTML table, in the order they were started."""
    names = list(dict.fromkeys(name for child in state["children"] for name in child["hyperparameters"]))
    metric = html.escape(state["primary_metric"]["name"])
    head = (
        "".join(f"<th>{html.escape(name)}</th>" for name in ["Child", "Status", *names])
        + f"<th>{metric} (latest)</th><th>{metric} (best)</th>"
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(number_text(cell))}</td>"
            for cell in [
                child["run_id"].rpartition("_")[2],
                child["status"],
                *(child["hyperparameters"].get(name, "") for name in names),
                child["latest"],
                child["best"],
            ]
        )
        + "</tr>"
        for child in state["children"]
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def table_html(name, table):
    """A table metric as get_metrics gives it ({column: [values]}, or {column: value} for one row) as an HTML
    table under its name: its first MAX_TABLE_ROWS rows."""
    columns = {column: values if isinstance(values, list) else [values] for column, values in table.items()}
    rows = list(itertools.zip_longest(*columns.values()))
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(number_text(cell))}</td>" for cell in row) + "</tr>"
        for row in rows[:MAX_TABLE_ROWS]
    )
    more = f" (the first {MAX_TABLE_ROWS} of {len(rows)} rows)" if len(rows) > MAX_TABLE_ROWS else ""
    return f"<table><caption><b>{html.escape(name)}</b>{more}</caption><tr>{head}</tr>{body}</table>"


def chart_png(charts, legend_title=None):
    """PNG bytes of one line chart per entry of `charts` ({title: {label: values by interval}})."""
    figure = Figure(figsize=(CHART_INCHES[0] * len(charts), CHART_INCHES[1]), dpi=CHART_DPI, layout="constrained")
    for axes, (title, series) in zip(figure.subplots(1, len(charts), squeeze=False)[0], charts.items(), strict=True):
        for label, values in series.items():
            axes.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label or None)
        axes.set(title=title, xlabel="interval (each value logged)")
        if legend_title and series:
            axes.legend(title=legend_title, fontsize="small", ncols=2)
    png = io.BytesIO()
    FigureCanvasAgg(figure).print_png(png)
    return png.getvalue()


def latest_text(value):
    """A metric's last value (with how many there are) for a list, the value itself otherwise."""
    if isinstance(value, list) and value:
        return f"{number_text(value[-1])} ({len(value)} values)"
    return number_text(value)


def number_text(value):
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
