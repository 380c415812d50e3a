"""Run a lesson in JupyterLab 4 or Notebook 7 in a real (headless) Chromium and take screenshots.

A manual check, not part of CI: does the live RunDetails view render and update in JupyterLab 4 while the run
trains (lesson 1) or the sweep runs (lesson 2, `--notebook 02-tune-hyperparameters.ipynb`), and do the plots render?
The same in Notebook 7 with `--frontend notebook`. Needs Debian's `chromium` and `pip install playwright` (it
drives the system Chromium, nothing is downloaded). Runs offline in a throw-away workspace; from the repository root:

    MNIST_DIR=../shared/data/mnist .venv/bin/python scripts/browser_check.py --out build/screenshots
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
# Each lesson, and what its last cell prints: the run is over when it shows.
LAST_OUTPUT = {
    "01-train-and-register.ipynb": "Kept gpu-cluster",
    "02-tune-hyperparameters.ipynb": "Registered chainer-dnn-mnist",
}
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
        # Without its committed outputs, so that what the screenshots show is this run's.
        notebook = nbformat.read(REPO / "notebooks" / args.notebook, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        notebook.metadata.pop("widgets", None)
        nbformat.write(notebook, folder / "notebooks" / args.notebook)
        env = dict(os.environ, AZUREML_OFFLINE="1", AZUREML_OFFLINE_DIR=str(folder / "workspace"))
        token = secrets.token_hex(16)
        lab = start_lab(folder, args.port, token, env)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
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
