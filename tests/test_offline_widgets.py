"""RunDetails: builds its widgets from the public Run API, updates them while the run goes, stops when it ends."""
import textwrap

from azureml.core import ScriptRunConfig

from azureml_offline import widgets
from azureml_offline.experiment import Experiment
from azureml_offline.workspace import Workspace
from helpers import eventually

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
        return "waiting" in details._log.value and "0.5" in details._metrics.value

    eventually(showing_the_first_loss)
    assert "Running" in details._header.value and details._thread.is_alive()
    (tmp_path / "go").touch()
    details._thread.join(timeout=30)
    assert not details._thread.is_alive()  # it stopped polling
    assert "Completed" in details._header.value
    assert "0.25 (2 values)" in details._metrics.value and "done" in details._log.value
    state = details.get_widget_data()
    assert (state["status"], state["metrics"]) == ("Completed", {"Loss": [0.5, 0.25]})


def test_metrics_show_four_significant_digits():
    assert widgets._latest(0.123456) == "0.1235"
    assert widgets._latest([0.5, 0.987654]) == "0.9877 (2 values)"
    assert (widgets._latest(12), widgets._latest("text")) == ("12", "text")


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
    details._thread.join(timeout=10)
    assert not details._thread.is_alive() and "Completed" in details._header.value
    assert "0.9877" in details._metrics.value
    shown = []
    widgets.RunDetails(FlakyRun()).show(render_lib=shown.append)  # e.g. Databricks' displayHTML
    assert "flaky" in shown[0] and "line" in shown[0]
