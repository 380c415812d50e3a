"""The offline workspace's folder: atomic writes, numbered entries, paths that stay inside it.

Several processes share this folder (the notebook, each run's runner and script, a second
notebook), so nothing here is read half-written: files are written to a temporary name and
renamed, and numbered entries (run numbers, model versions) are claimed by an atomic rename.
"""
import contextlib
import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

from azureml.exceptions import UserErrorException

RUN_DIR_VARIABLE = "AZUREML_OFFLINE_RUN_DIR"  # set for a run's script: its run folder
LOG = "logs/std_log.txt"  # a run's file with its script's stdout and stderr


def write_json(path, data):
    """Write `data` to `path` as JSON, all or nothing."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    # Not mkstemp, whose files are private: these get the permissions open() would give them.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=plain)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_json(path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return default


def append_record(path, record):
    """Append one JSON line; one write() on an O_APPEND file, so concurrent writers never interleave."""
    line = (json.dumps(record, default=plain) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_records(path):
    """The records append_record() wrote; a last line without its newline is still being appended: not yet."""
    try:
        lines = Path(path).read_text().split("\n")[:-1]
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line]


def plain(value):
    """JSON for NumPy scalars and arrays, which training scripts often log."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot record a value of type {type(value).__name__}: {value!r}")


@contextlib.contextmanager
def staging_dir(root):
    """A fresh folder on the same file system as `root`, to fill and then publish(); removed if that fails."""
    staging = Path(root) / ".staging" / uuid.uuid4().hex
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:  # Ctrl-C too: leave nothing half-filled behind
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish(staged, parent):
    """Rename the filled folder `staged` to parent/<n> with the next free number n, and return n.

    A rename onto an existing, non-empty folder fails, so two processes publishing at once
    get distinct numbers and neither overwrites the other.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        number = 1 + max(numbers(parent), default=0)
        try:
            os.rename(staged, parent / str(number))
            return number
        except OSError:
            if not (parent / str(number)).exists():
                raise


def numbers(parent):
    """The numbered entries in `parent`, ascending."""
    if not Path(parent).is_dir():
        return []
    return sorted(int(p.name) for p in Path(parent).iterdir() if p.name.isdigit())


def inside(base, name):
    """base/name, refusing names that lead outside base (.., absolute paths, links pointing out)."""
    base = Path(base).resolve()
    path = (base / name).resolve()
    if not name or os.path.isabs(name) or path == base or base not in path.parents:
        raise UserErrorException(f"{name!r} is not a file name inside the run or model")
    return path


def file_names(base):
    """The regular files under `base`, as sorted POSIX paths relative to it; links are not followed."""
    names = []
    for folder, _, files in os.walk(base):
        for file in files:
            path = Path(folder, file)
            if path.is_file() and not path.is_symlink():
                names.append(path.relative_to(base).as_posix())
    return sorted(names)


def utc_now():
    """A timestamp in the SDK's format, e.g. 2024-01-01T13:08:01.713777Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def shown(path):
    """How to print a path: relative to the current directory, never absolute (notebooks keep what they print)."""
    path = Path(path).resolve()
    if os.environ.get("AZUREML_OFFLINE_DIR") and path == Path(os.environ["AZUREML_OFFLINE_DIR"]).resolve():
        return "$AZUREML_OFFLINE_DIR"
    try:
        return path.relative_to(Path.cwd()).as_posix() or "."
    except ValueError:
        return path.name
