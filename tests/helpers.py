"""What several test modules share: the repository's path, and waiting for processes and files."""
import os
import textwrap
import time
from pathlib import Path

from azureml.core import Environment, ScriptRunConfig

REPO = Path(__file__).resolve().parent.parent


def eventually(condition, seconds=30):
    """Wait until condition() holds; fail (rather than hang) after `seconds`."""
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"still not {condition.__name__} after {seconds} s"
        time.sleep(0.1)


def alive(pid):
    """Whether process `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def started_script(pid_file):
    """The pid that a test script wrote to pid_file, once it has."""
    eventually(pid_file.exists)
    return int(pid_file.read_text())


def script_config(folder, source, arguments=(), compute_target=None):
    """A ScriptRunConfig for train.py with `source`, written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(textwrap.dedent(source))
    return ScriptRunConfig(source_directory=str(folder), script="train.py", arguments=list(arguments),
                           compute_target=compute_target, environment=Environment(name="test-env"))


def processes_with(text):
    """Pids of this user's processes whose command line contains `text`."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read() and alive(int(entry)):
                        pids.append(int(entry))
            except OSError:
                continue
    return pids
