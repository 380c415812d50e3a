"""A web service's server process: Microsoft's azmlinfsrv (azureml-inference-server-http) running the entry script
on a loopback port, in a session of its own, with the gunicorn hooks of server_hooks.py.

The server outlives the process that started it (a notebook cell, a kernel) and is found again from its
server.json (pid, start time, port); it stops on delete() or once its service's folder is gone.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
from azureml.exceptions import WebserviceException

from ..state import files
from . import processes

WORKERS = 2  # server worker processes: see docs/deployment.md
THREADS = 8  # per worker: each request in flight holds one, a client that sends slowly too
READ_SECONDS = 30  # for a request, headers and body, to be read once a thread has taken it (server_hooks.py)
# A request body above this is answered 413, unparsed. azmlinfsrv has no cap of its own, and Microsoft's
# image-classification tutorial posts its whole MNIST test set to an ACI service in one request.
MAX_BODY_BYTES = 100 << 20
STOP_SECONDS = 10  # from SIGTERM to SIGKILL
_servers = {}  # pid -> Popen of the servers this process started, so that their exit is reaped


def start(service):
    """Start azmlinfsrv for the service in `service` (a ServiceFolder) and record its process in server.json."""
    definition = files.read_json(service.definition)
    port = definition["configuration"]["port"] or free_port()
    models = definition["modelIds"]
    model_dir = service.models / models[0].replace(":", "/") if len(models) == 1 else service.models
    # The environment's variables, as Azure sets them in the container (a service deployed by an earlier version
    # of the offline workspace has none recorded); the server's own settings below win.
    variables = {name: str(value) for name, value in definition.get("environmentVariables", {}).items()}
    if definition.get("sourceFolder"):  # the source directory's folder in the app: on sys.path, as on Azure
        variables["AZUREML_SOURCE_DIRECTORY"] = definition["sourceFolder"]
    env = processes.child_environment(
        {**os.environ, **variables},
        AML_APP_ROOT=str(service.app),
        SERVICE_NAME=definition["name"],
        PYTHONUNBUFFERED="1",
        GUNICORN_CMD_ARGS="--config python:azureml_offline.engine.server_hooks",
        AZUREML_OFFLINE_SERVICE_DEFINITION=str(service.definition),
        AZUREML_OFFLINE_SERVICE_ID=definition["serviceId"],
        AZUREML_OFFLINE_SERVICE_KEYS=str(service.keys),
        AZUREML_OFFLINE_SERVICE_READY=str(service.ready),
        AZUREML_OFFLINE_SERVICE_MAX_BODY=str(MAX_BODY_BYTES),
        AZUREML_OFFLINE_SERVICE_THREADS=str(THREADS),
        AZUREML_OFFLINE_SERVICE_READ_SECONDS=str(READ_SECONDS),
    )
    # The workers are the parallelism: one BLAS thread each, or two workers' threads contend for the same cores.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    command = [
        azmlinfsrv(),
        "--entry_script",
        definition["entryScript"],
        "--model_dir",
        str(model_dir),
        "--port",
        str(port),
        "--worker_count",
        str(WORKERS),
    ]
    with open(service.server_log, "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=service.app,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _servers[process.pid] = process
    files.write_json(service.server, {"pid": process.pid, "startTime": processes.start_time(process.pid), "port": port})


def azmlinfsrv():
    """The server's command, installed beside this Python (a virtual environment's bin/) or on PATH."""
    beside = Path(sys.executable).with_name("azmlinfsrv")
    command = str(beside) if beside.exists() else shutil.which("azmlinfsrv")
    if not command:
        raise WebserviceException(
            "The offline web service needs azmlinfsrv: pip install azureml-inference-server-http==1.5.1"
        )
    return command


def free_port():
    """A port that is free on loopback now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running(server):
    """Whether the server recorded in `server` (server.json's content) still runs (not another process that got
    its pid)."""
    if not server:
        return False
    process = _servers.get(server["pid"])
    if process is not None and process.poll() is not None:
        return False
    return server["startTime"] is not None and processes.start_time(server["pid"]) == server["startTime"]


def stop(server):
    """Stop the server and all it started, politely then for sure, and wait for them: its process group (master
    and workers, also workers whose master died) and its other descendants (say, a process that init() started
    in a session of its own), found before any of them exits and so stops being a descendant."""
    if not server:
        return
    process = _servers.get(server["pid"])
    started = processes.descendants(server["pid"]) if running(server) else []

    def members():
        group = [member for member in processes.group_members(server["pid"]) if serves(member, server)]
        return group + [other for other in processes.living(started) if other not in group]

    processes.stop_group(members, STOP_SECONDS, reap=process.poll if process is not None else lambda: None)


def serves(member, server):
    """Whether `member` of the process group named by the server's pid is the server's (its master or a worker,
    forked from it: this Python), not a later process group that happens to have that number after the master
    died."""
    try:
        return member.create_time() >= server["startTime"] and member.exe() == os.path.realpath(sys.executable)
    except (psutil.Error, TypeError):  # gone, or no start time recorded
        return False


def exit_reason(server, log):
    """Why the server recorded in `server` no longer runs: the entry script's exception from its log (the server
    logs its own wrapper of it after it), else how the process ended, if this process started it, and the last
    line of its log, which is then no error of its own."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    errors = [
        line
        for line in lines
        if re.match(r"[A-Za-z_][\w.]*(Error|Exception|Exit)\b:? ", line)
        and not line.startswith("azureml_inference_server_http.")
    ]
    if errors:
        return f"The server process exited: {errors[-1].strip()}"
    process = _servers.get(server["pid"])
    how = processes.how_it_ended(process.returncode) if process is not None and process.poll() is not None else None
    ended = f"The server process {how or 'is gone'}"
    return f"{ended}; its log ends: {lines[-1].strip()}" if lines else f"{ended}, leaving no log"
