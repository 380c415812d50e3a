"""RunDetails: builds its widgets from the public Run API, updates them while the run goes, stops when it ends; a
run's tables and images show beside its charts."""

import textwrap

from azureml.core import ScriptRunConfig
from helpers import eventually, running_run, sweep_config
from matplotlib.figure import Figure

from azureml_offline import widgets
from azureml_offline.backend import backend_of
from azureml_offline.experiment import Experiment
from azureml_offline.workspace import Workspace

PNG = b"\x89PNG"

# Logs a metric, then waits for the test's go-ahead, so the view is seen mid-run.
SCRIPT = """
import os, time
from azureml.core.run import Run
Run.get_context().log("Loss", 0.5)
print("waiting", flush=True)
while not os.path.exists(os.environ["GO_FILE"]):
    time.sleep(0.05)
Run.get_context().log("Loss", 0.25)
print("done", flush=True)
"""


def test_run_details_updates_while_the_run_goes_and_stops_when_it_ends(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AZUREML_OFFLINE_DIR", str(tmp_path / "ws"))
    monkeypatch.setenv("GO_FILE", str(tmp_path / "go"))
    monkeypatch.setattr(widgets, "POLL_SECONDS", 0.2)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(textwrap.dedent(SCRIPT))
    run = Experiment(Workspace.from_config(), "watched").submit(ScriptRunConfig(str(tmp_path / "src"), "train.py"))
    details = widgets.RunDetails(run)
    details.show()
    assert f"Run {run.id}: " in capsys.readouterr().out  # the plain-text view, outside a notebook

    def showing_the_first_loss():
        return "waiting" in details.log.value and "0.5" in details.metrics_html.value

    eventually(showing_the_first_loss)
    assert "Running" in details.header.value and details.poller.is_alive()
    assert details.chart.value == b""  # one value is no curve yet
    (tmp_path / "go").touch()
    details.poller.join(timeout=30)
    assert not details.poller.is_alive()  # it stopped polling
    assert "Completed" in details.header.value
    assert "0.25 (2 values)" in details.metrics_html.value and "done" in details.log.value
    assert details.chart.value.startswith(PNG) and details.charted == {"Loss": {"": [0.5, 0.25]}}
    state = details.get_widget_data()
    assert (state["status"], state["metrics"]) == ("Completed", {"Loss": [0.5, 0.25]})


def test_metrics_show_four_significant_digits():
    assert widgets.latest_text(0.123456) == "0.1235"
    assert widgets.latest_text([0.5, 0.987654]) == "0.9877 (2 values)"
    assert (widgets.latest_text(12), widgets.latest_text("text")) == ("12", "text")


class FlakyRun:
    """A run whose first status query fails, as an Azure run's may for a moment."""

    id = "flaky"

    def __init__(self):
        self.calls = 0

    def get_details_with_logs(self):
        self.calls += 1
        if self.calls == 2:  # the first poll
            raise ConnectionError("transient")
        return {"status": "Running" if self.calls < 4 else "Completed", "logFiles": {"log": "line"}}

    def get_metrics(self):
        return {"Accuracy": 0.98765}


def test_the_view_keeps_polling_after_an_error(monkeypatch, capsys):
    monkeypatch.setattr(widgets, "POLL_SECONDS", 0.01)
    details = widgets.RunDetails(FlakyRun())
    details.show(render_lib=None, widget_settings={"debug": False})
    details.poller.join(timeout=10)
    assert not details.poller.is_alive() and "Completed" in details.header.value
    assert "0.9877" in details.metrics_html.value
    shown = []
    widgets.RunDetails(FlakyRun()).show(render_lib=shown.append)  # e.g. Databricks' displayHTML
    assert "flaky" in shown[0] and "line" in shown[0]


def test_a_sweeps_view_shows_its_children_and_a_chart_of_the_primary_metric_while_it_runs(
    tmp_path, monkeypatch, capsys
):
    from azureml.core.compute import AmlCompute
    from azureml.train.hyperdrive import GridParameterSampling, choice

    from azureml_offline.compute import ComputeTarget

    monkeypatch.setenv("AZUREML_OFFLINE_DIR", str(tmp_path / "ws"))
    monkeypatch.setattr(widgets, "POLL_SECONDS", 0.2)
    workspace = Workspace.from_config()
    ComputeTarget.create(workspace, "cpu-cluster", AmlCompute.provisioning_configuration(vm_size="D2", max_nodes=2))
    config = sweep_config(
        tmp_path,
        {"--values": choice("0.5,0.6,0.7", "0.8,0.9")},
        sampling=GridParameterSampling,
        arguments=["--seconds", "0.4"],
        max_total_runs=2,
    )
    run = Experiment(workspace, "sweep").submit(config)
    details = widgets.RunDetails(run)
    details.show()
    assert f"Sweep {run.id}: " in capsys.readouterr().out

    def charting_a_running_child():
        return "<td>Running</td>" in details.metrics_html.value and details.chart.value.startswith(PNG)

    eventually(charting_a_running_child)
    assert "Sweep" in details.header.value and "<th>--values</th>" in details.metrics_html.value
    details.poller.join(timeout=60)
    assert "Completed" in details.header.value
    assert "<td>1</td><td>Completed</td><td>0.8,0.9</td><td>0.9</td><td>0.9</td>" in details.metrics_html.value
    assert details.charted == {"Accuracy": {"0": [0.5, 0.6, 0.7], "1": [0.8, 0.9]}}
    assert "Best child run" in details.log.value  # the tail of the sweep's log


def test_a_run_s_tables_and_images_show_beside_its_metrics_as_they_are_logged(fresh_workspace, monkeypatch, capsys):
    monkeypatch.setattr(widgets, "POLL_SECONDS", 0.05)
    with running_run(fresh_workspace, "exp_1") as run:
        run.log("Loss", 0.5)
        run.log("Loss", 0.25)
        details = widgets.RunDetails(run)
        details.show()
        assert details.widget.children == (
            details.header,
            details.metrics_html,
            details.chart,
            details.tables,
            details.images,
            details.log,
        )
        assert details.tables.value == "" and details.images.children == ()
        run.log_table("Per class", {"class": ["0", "1"], "recall": [0.9, 0.8]})
        run.log_row("Best", epoch=3)
        figure = Figure(figsize=(2, 2))
        figure.subplots().plot([3, 1, 2])
        run.log_image("Curve", plot=figure)
        run.log_confusion_matrix("Confusion", {"schema_type": "confusion_matrix", "data": {"class_labels": ["0"]}})

        def showing_the_image():
            return len(details.images.children) == 1

        eventually(showing_the_image)
    details.poller.join(timeout=30)
    assert "Completed" in details.header.value
    assert details.tables.value == (
        "<table><caption><b>Per class</b></caption><tr><th>class</th><th>recall</th></tr>"
        "<tr><td>0</td><td>0.9</td></tr><tr><td>1</td><td>0.8</td></tr></table>"
        "<table><caption><b>Best</b></caption><tr><th>epoch</th></tr><tr><td>3</td></tr></table>"
    )
    [box] = details.images.children
    title, image = box.children
    [file_name] = [name for name in run.get_file_names() if name.startswith("Curve_")]
    assert "Curve" in title.value and image.format == "png"
    assert image.value == backend_of(run).folder_of(run).read_metric_file(file_name)
    # The other metrics as before; a JSON metric by its kind, not its location
    assert "<td>Confusion</td><td>confusion matrix</td>" in details.metrics_html.value
    assert "aml://" not in details.metrics_html.value and "Per class" not in details.metrics_html.value
    assert details.charted == {"Loss": {"": [0.5, 0.25]}}


def test_a_long_table_shows_its_first_rows_and_says_so(monkeypatch):
    monkeypatch.setattr(widgets, "MAX_TABLE_ROWS", 2)
    shown = widgets.table_html("t", {"x": [1, 2, 3], "y": [None, "a", 0.123456]})
    assert shown == (
        "<table><caption><b>t</b> (the first 2 of 3 rows)</caption><tr><th>x</th><th>y</th></tr>"
        "<tr><td>1</td><td>-</td></tr><tr><td>2</td><td>a</td></tr></table>"
    )
