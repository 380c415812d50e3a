"""Run a lesson in JupyterLab 4 or Notebook 7 in a real (headless) Chromium and take screenshots.

A manual check, not part of CI: does the live RunDetails view render and update in JupyterLab 4 while the run
trains (lesson 1) or the sweep runs (lesson 2, `--notebook 02-tune-hyperparameters.ipynb`), and do the plots render?
The same in Notebook 7 with `--frontend notebook`. `--notebook run-details-metrics.ipynb` is a small notebook written
here, not a lesson: a run that logs a table and an image, which the view shows beside its chart (no MNIST needed).
Needs Debian's `chromium` and `pip install playwright` (it drives the system Chromium, nothing is downloaded). Runs
offline in a throw-away workspace; from the repository root:

    MNIST_DIR=../shared/data/mnist .venv/bin/python scripts/browser_check.py --out build/screenshots
    .venv/bin/python scripts/browser_check.py --notebook run-details-metrics.ipynb --live-seconds 3 --height 1600
"""

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
METRICS_NOTEBOOK = "run-details-metrics.ipynb"
# Each notebook, and what its last cell prints: the run is over when it shows.
LAST_OUTPUT = {
    "01-train-and-register.ipynb": "Kept gpu-cluster",
    "02-tune-hyperparameters.ipynb": "Registered chainer-dnn-mnist",
    METRICS_NOTEBOOK: "'Loss curve', 'Per class'",  # in the output only, not in the cell's source
}
# METRICS_NOTEBOOK's run: a curve value by value, then a table and a figure, as a user's script might log them.
METRICS_SCRIPT = """
import time

from azureml.core import Run
from matplotlib.figure import Figure

run = Run.get_context()
losses = [0.9, 0.5, 0.35, 0.3, 0.28]
for epoch, loss in enumerate(losses, start=1):
    run.log("Loss", loss, step=epoch)
    time.sleep(1)
run.log_table("Per class", {"digit": [0, 1, 2], "precision": [0.99, 0.98, 0.97], "recall": [0.98, 0.99, 0.96]})
figure = Figure(figsize=(4, 3), layout="constrained")
axes = figure.subplots()
axes.plot(range(1, len(losses) + 1), losses, marker="o")
axes.set(title="Loss by epoch", xlabel="epoch")
run.log_image("Loss curve", plot=figure)
time.sleep(3)
"""
METRICS_CELLS = [
    "import azureml_offline\n\nazureml_offline.activate_if_needed()",
    "from azureml.core import Experiment, ScriptRunConfig, Workspace\nfrom azureml.widgets import RunDetails\n\n"
    'run = Experiment(Workspace.from_config(), "metrics").submit(ScriptRunConfig(".", "log_metrics.py"))\n'
    "RunDetails(run).show()",
    'run.wait_for_completion()\nprint("Logged", sorted(run.get_metrics()))',
]
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def start_lab(folder, port, token, env):
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={folder}",
        "--allow-root",
    ]
    lab = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(60):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return lab
        except OSError:
            time.sleep(1)
    lab.terminate()
    raise SystemExit("JupyterLab did not start on loopback within 60 s")


def notebook_to_run(name, folder):
    """The notebook `name`: a lesson without its committed outputs (so that what the screenshots show is this
    run's), or METRICS_NOTEBOOK, whose script is written to `folder`."""
    if name == METRICS_NOTEBOOK:
        (folder / "log_metrics.py").write_text(METRICS_SCRIPT)
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in METRICS_CELLS])
        notebook.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
        return notebook
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    notebook.metadata.pop("widgets", None)
    return notebook


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/screenshots", help="folder for the PNG screenshots")
    parser.add_argument(
        "--frontend",
        choices=["lab", "notebook"],
        default="lab",
        help="JupyterLab 4 or Notebook 7 (both served by the same Jupyter server)",
    )
    parser.add_argument("--port", type=int, default=8899)
    parser.add_argument("--height", type=int, default=1000, help="the browser window's height, for a taller view")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--notebook", choices=sorted(LAST_OUTPUT), default="01-train-and-register.ipynb")
    parser.add_argument(
        "--live-seconds", type=int, default=20, help="how long to let the run train before each of the two live shots"
    )
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name in ("chainer_mnist.py", "job-environment.yml"):
            shutil.copy(REPO / name, folder / name)
        (folder / "notebooks").mkdir()
        nbformat.write(notebook_to_run(args.notebook, folder / "notebooks"), folder / "notebooks" / args.notebook)
        env = dict(os.environ, AZUREML_OFFLINE="1", AZUREML_OFFLINE_DIR=str(folder / "workspace"))
        token = secrets.token_hex(16)
        lab = start_lab(folder, args.port, token, env)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
                page = browser.new_page(viewport={"width": 1400, "height": args.height})
                path = {"lab": "lab/tree", "notebook": "notebooks"}[args.frontend]
                page.goto(f"http://127.0.0.1:{args.port}/{path}/notebooks/{args.notebook}?token={token}")
                page.wait_for_selector(".jp-Notebook", timeout=60_000)
                try:  # JupyterLab 4 may first ask which kernel to start ("Always start the preferred kernel")
                    page.locator(".jp-Dialog .jp-mod-accept").click(timeout=10_000)
                except PlaywrightTimeoutError:
                    pass
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
                page.get_by_role("menuitem", name="Run").first.click()
                page.get_by_text("Run All Cells", exact=True).click()
                # Wait for what the page really shows, in the RunDetails cell (found by its source, not by a front
                # end's CSS classes, which change between versions): the widget's box, or the plain-text fallback
                # that a front end without the widget shows. JupyterLab 4 hides cells outside the viewport, so it is
                # waited for attached, then scrolled to.
                cell = page.locator(".jp-CodeCell", has_text="RunDetails(").first
                view = (
                    cell.locator(".widget-vbox")
                    .or_(cell.locator(".jp-OutputArea-output", has_text="Live view of"))
                    .first
                )
                view.wait_for(state="attached", timeout=180_000)
                if "Live view of" in view.text_content():
                    raise SystemExit("The live view did not render as a widget: the page shows its plain-text fallback")
                widget = view.element_handle()
                for shot in ("1-run-details-live.png", "2-run-details-live-later.png"):
                    page.wait_for_timeout(args.live_seconds * 1000)
                    widget.scroll_into_view_if_needed()
                    widget.screenshot(path=out / shot)
                last = page.locator(".jp-CodeCell").last
                for _ in range(900):  # until the last cell has printed what it prints
                    last.scroll_into_view_if_needed()
                    if LAST_OUTPUT[args.notebook] in last.inner_text():
                        break
                    page.wait_for_timeout(1000)
                widget.scroll_into_view_if_needed()
                widget.screenshot(path=out / "3-run-details-final.png")
                for number, image in enumerate(page.query_selector_all(".jp-RenderedImage img"), start=4):
                    image.scroll_into_view_if_needed()
                    image.screenshot(path=out / f"{number}-plot.png")
                browser.close()
        finally:
            lab.terminate()
            lab.wait(timeout=30)
    print("Screenshots in", out)


if __name__ == "__main__":
    main()
