"""File primitives of the offline workspace: atomic writes, appended records, staged folders, numbered entries.

Several processes share the workspace folder (the notebook, each run's runner and script, a second
notebook), so nothing here is read half-written: files are written to a temporary name and renamed,
and numbered entries (run numbers, model versions) are claimed by an atomic rename. What is damaged
anyway (a disk that filled up, a hand edit) is reported with the file's name. Which files exist and
where is layout.py's business, not this module's. The SDK's exceptions are imported when one is raised, not at
the top: azureml.exceptions loads the SDK's REST client, slow to import, and each run's runner imports this module.
"""

import contextlib
import fcntl
import functools
import json
import os
import shutil
import threading
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path


def user_error(message):
    """The SDK's UserErrorException with `message`, to raise."""
    from azureml.exceptions import UserErrorException

    return UserErrorException(message)


def damaged_file_class():
    """DamagedFile: a UserErrorException, so defined when first needed (see the module's docstring)."""
    with _DEFINING:  # two threads meeting their first damaged file at once would define two classes
        return _define_damaged_file()


_DEFINING = threading.Lock()


@functools.cache
def _define_damaged_file():
    from azureml.exceptions import UserErrorException

    class DamagedFile(UserErrorException):
        """A workspace file that exists but cannot be read: the message names it."""

        def __init__(self, path, reason):
            super().__init__(
                f"The offline workspace file {path} is damaged ({reason}); "
                "it affects only what it records: delete or repair it"
            )
            self.path = Path(path)

    DamagedFile.__qualname__ = "DamagedFile"  # as tracebacks name it, and found as files.DamagedFile
    return DamagedFile


def __getattr__(name):
    """files.DamagedFile, for `except` clauses (evaluated only when an exception passes them) and callers."""
    if name == "DamagedFile":
        return damaged_file_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def damaged(path, reason):
    """A DamagedFile to raise: `path` exists but cannot be read, for `reason`."""
    return damaged_file_class()(path, reason)


class DamagedRecordWarning(UserWarning):
    """A line of an appended-records file that cannot be read; the other lines still are."""


def skipping_damaged(entries, read):
    """(entry, read(entry)) for each of `entries` (runs, models, ...) whose files read(); one whose file is damaged
    is left out with a DamagedRecordWarning, so that it hides no other."""
    for entry in entries:
        try:
            value = read(entry)
        except damaged_file_class() as error:
            warnings.warn(str(error), DamagedRecordWarning, stacklevel=3)
            continue
        yield entry, value


def write_json(path, data, mode=0o666):
    """Write `data` to `path` as JSON, all or nothing; `mode` as open() takes it (the umask applies)."""
    write_bytes(path, json.dumps(data, indent=2, default=encode_numpy).encode(), mode)


def write_bytes(path, data, mode=0o666):
    """Write the bytes `data` to `path`, all or nothing; `mode` as open() takes it (the umask applies)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    # Not mkstemp, whose files are always private: these get the permissions open() would give them.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_json(path, default=None):
    """The JSON object in `path`; `default` if there is no such file; DamagedFile if it is not a JSON object."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return default
    except (OSError, UnicodeDecodeError) as error:
        raise damaged(path, f"unreadable: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise damaged(path, "empty" if not text.strip() else f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise damaged(path, f"a JSON {type(data).__name__}, not an object")
    return data


def append_record(path, record):
    """Append one JSON line (see append_line)."""
    append_line(path, json.dumps(record, default=encode_numpy))


def append_line(path, text):
    """Append one line of text; one write() on an O_APPEND file, so concurrent writers never interleave."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


def read_records(path):
    """The records append_record() wrote, in order.

    A last line without its newline is still being appended: not yet. A damaged line (a writer that died
    mid-line, then more records) is skipped with a DamagedRecordWarning that names the file and line.
    """
    try:
        lines = Path(path).read_bytes().split(b"\n")[:-1]
    except FileNotFoundError:
        return []
    records = []
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            warnings.warn(f"{path}, line {number}: a damaged record, skipped", DamagedRecordWarning, stacklevel=2)
    return records


def encode_numpy(value):
    """json.dump's `default`: NumPy scalars and arrays (which training scripts often log) as JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise user_error(f"Cannot record a value of type {type(value).__name__}: {value!r}")


@contextlib.contextmanager
def staging_dir(parent):
    """A fresh folder in `parent` (on the workspace's file system), to fill and then publish().

    It is removed if filling it fails. While it is in use it is locked (flock), so that
    remove_abandoned() can tell it from the folder of a process that was killed while filling it.
    """
    staging = Path(parent) / uuid.uuid4().hex
    staging.mkdir(parents=True)
    lock = os.open(staging, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield staging
    except BaseException:  # Ctrl-C too: leave nothing half-filled behind
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(lock)


@contextlib.contextmanager
def locked(folder):
    """Hold an exclusive lock (flock) on `folder` for the block, which gets whether the folder (still) exists."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except FileNotFoundError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield Path(folder).exists()  # it may have been moved aside while this waited
    finally:
        os.close(fd)


def remove_abandoned(parent):
    """Remove the staging folders in `parent` that no living process holds (a submit killed mid-copy)."""
    for staging in Path(parent).glob("*") if Path(parent).is_dir() else []:
        try:
            lock = os.open(staging, os.O_RDONLY)
        except OSError:  # removed meanwhile, or not a folder of ours
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # being filled right now
        finally:
            os.close(lock)
        shutil.rmtree(staging, ignore_errors=True)


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


def publish_json(data, parent, number=None):
    """Write `data` as JSON to parent/<n>.json, whole, with the next free number n (or `number`), and return n.

    The file is written under a temporary name and then linked to its own, which fails if that name is taken:
    two processes publishing at once get distinct numbers, and neither overwrites the other. FileExistsError if
    `number` is taken.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    staged = parent / f".{uuid.uuid4().hex}.json"
    write_json(staged, data)
    try:
        while True:
            claimed = number or 1 + max(json_numbers(parent), default=0)
            try:
                os.link(staged, parent / f"{claimed}.json")
                return claimed
            except FileExistsError:
                if number:
                    raise
    finally:
        os.unlink(staged)


def json_numbers(parent):
    """The numbers n of the files <n>.json in `parent`, ascending."""
    return sorted(int(name) for name in names(parent, ".json") if name.isdigit())


def numbers(parent):
    """The numbered entries in `parent`, ascending."""
    if not Path(parent).is_dir():
        return []
    return sorted(int(p.name) for p in Path(parent).iterdir() if p.name.isdigit())


def names(parent, suffix=""):
    """The names of the entries in `parent` (that end in `suffix`, without it), sorted; none if it is missing."""
    if not Path(parent).is_dir():
        return []
    return sorted(
        p.name[: len(p.name) - len(suffix)]
        for p in Path(parent).iterdir()
        if p.name.endswith(suffix) and not p.name.startswith(".")
    )


def inside(base, name):
    """base/name, refusing names that lead outside base (.., absolute paths, links pointing out)."""
    if not isinstance(name, (str, os.PathLike)) or not str(name) or os.path.isabs(name):
        raise user_error(f"{name!r} is not a file name inside the run or model")
    base = Path(base).resolve()
    path = (base / name).resolve()
    if path == base or base not in path.parents:
        raise user_error(f"{name!r} is not a file name inside the run or model")
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
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
