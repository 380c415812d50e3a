"""RunDetails: a live view of a run (status, metrics, the log's tail) in ipywidgets 7.

It calls only the public Run API (get_details_with_logs, get_metrics), so it shows an Azure
run as well as an offline one: in JupyterLab 4 and Notebook 7, where azureml-widgets' own
RunDetails does not render, it is the live view for Azure runs too. Front ends without
widgets get a line that names the run (outside IPython, its status and metrics are printed).
"""
import html
import threading
import time

import ipywidgets
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display

TERMINAL_STATES = ("Completed", "Failed", "Canceled")
POLL_SECONDS = 1.5
LOG_TAIL_LINES = 15


class RunDetails:
    """Shows `run_instance` and updates the view every POLL_SECONDS until the run ends."""

    def __init__(self, run_instance):
        self._run = run_instance
        self._header = ipywidgets.HTML()
        self._metrics = ipywidgets.HTML()
        self._log = ipywidgets.Textarea(layout=ipywidgets.Layout(width="100%", height="16em"), disabled=True)
        self.widget = ipywidgets.VBox([self._header, self._metrics, self._log])
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def show(self, render_lib=None, widget_settings=None):
        """Display the view, then keep it current from a background thread until the run ends.

        As in the SDK, render_lib (e.g. Databricks' displayHTML) is given the view's HTML once, which does not
        update; widget_settings (the SDK's only one is 'debug') changes nothing here.
        """
        state = self.get_widget_data()
        self._render(state)
        if render_lib is not None:
            render_lib(f"{self._header.value}{self._metrics.value}<pre>{html.escape(self._log.value)}</pre>")
        elif InteractiveShell.initialized():
            display({"application/vnd.jupyter.widget-view+json": {
                "version_major": 2, "version_minor": 0, "model_id": self.widget.model_id},
                # Plain text cannot update: name the run rather than a status that is stale at once.
                "text/plain": f"Live view of run {self._run.id} (needs a front end with widgets; "
                              "run.wait_for_completion(show_output=True) streams its log)"}, raw=True)
        else:
            print(self._text(state))
        if state["status"] not in TERMINAL_STATES:
            self._thread.start()

    def get_widget_data(self, widget_settings=None):
        """What the view shows: run id, status, metrics, and the tail of the newest log."""
        details = self._run.get_details_with_logs()
        logs = list(details.get("logFiles", {}).values())
        tail = logs[-1].splitlines()[-LOG_TAIL_LINES:] if logs else []
        return {"run_id": self._run.id, "status": details["status"], "metrics": self._run.get_metrics(),
                "log_tail": "\n".join(tail)}

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
        self._header.value = (f"<b>Run</b> {html.escape(state['run_id'])} &nbsp; "
                              f"<b>Status</b> {html.escape(state['status'])}")
        rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{html.escape(_latest(value))}</td></tr>"
                       for name, value in state["metrics"].items())
        self._metrics.value = f"<table><tr><th>Metric</th><th>Latest</th></tr>{rows}</table>" if rows else ""
        self._log.value = state["log_tail"]

    @staticmethod
    def _text(state):
        metrics = "".join(f"\n  {name}: {_latest(value)}" for name, value in state["metrics"].items())
        return f"Run {state['run_id']}: {state['status']}{metrics}"


def _latest(value):
    """A metric's last value (with how many there are) for a list, the value itself otherwise."""
    if isinstance(value, list) and value:
        return f"{_number(value[-1])} ({len(value)} values)"
    return _number(value)


def _number(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)
