"""Offline stand-ins for azureml.core.webservice: Model.deploy() runs the entry script in Microsoft's own
scoring server, azmlinfsrv (azureml-inference-server-http), on a free loopback port of this machine.

The server is a process of its own (its own session): it outlives the notebook cell and the kernel, is
found again by Webservice(ws, name) from any process, and stops on delete() or once its folder is gone
(gunicorn_config.py). State is never stored where it could go stale: it is read from the server process
(alive or not), its `ready` file and its liveness route. The service's folder is backend.ServiceFolder.
"""
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from azureml._model_management._util import webservice_name_validation
from azureml.core.webservice.aci import AciServiceDeploymentConfiguration
from azureml.core.webservice.aci import AciWebservice as SdkAciWebservice
from azureml.core.webservice.local import LocalWebserviceDeploymentConfiguration
from azureml.core.webservice.local import LocalWebservice as SdkLocalWebservice
from azureml.exceptions import WebserviceException

from .state import files as store
from .engine import processes
from .engine.processes import child_environment

ACI, LOCAL = "ACI", "Local"  # the SDK's computeType values
WORKERS = 2  # server worker processes: see README, "The deployment lesson"
MAX_BODY_BYTES = 16 << 20  # a request body above this is answered 413 (score.py accepts 1000 images)
START_SECONDS = 60  # a service whose server was never started (its deployer died first) is Failed after this
STOP_SECONDS = 10  # delete(): from SIGTERM to SIGKILL
POLL_SECONDS = 0.25
PROBE_SECONDS = 2  # liveness probe timeout
_servers = {}  # pid -> Popen of the servers this process started, so that their exit is reaped


# --- deploying --------------------------------------------------------------------------------------------------

def deploy(workspace, name, models, inference_config, deployment_config, overwrite):
    """Model.deploy() offline: publish the service's folder, start its server, return the Webservice."""
    webservice_name_validation(name)
    if deployment_config is None:
        deployment_config = SdkAciWebservice.deploy_configuration()
    if isinstance(deployment_config, AciServiceDeploymentConfiguration):
        kind = ACI
    elif isinstance(deployment_config, LocalWebserviceDeploymentConfiguration):
        kind = LOCAL
    else:
        raise WebserviceException(f"Offline, services deploy with AciWebservice.deploy_configuration() or "
                                  f"LocalWebservice.deploy_configuration(), not {type(deployment_config).__name__}")
    if inference_config is None:
        raise WebserviceException("Offline deployment needs an InferenceConfig with an entry script "
                                  "(deploying a model without one needs Azure)")
    deployment_config.validate_configuration()
    azmlinfsrv()  # fails before anything is written if the server is not installed
    if workspace._backend.service(name).definition.exists():
        if not overwrite:
            raise name_taken(name)
        Webservice(workspace, name).delete()
    config = {"cpuCores": getattr(deployment_config, "cpu_cores", None),
              "memoryGb": getattr(deployment_config, "memory_gb", None),
              "port": getattr(deployment_config, "port", None)}
    auth = kind == ACI and bool(deployment_config.auth_enabled)
    definition = {"name": name, "computeType": kind, "serviceId": uuid.uuid4().hex, "createdTime": store.utc_now(),
                  "description": getattr(deployment_config, "description", None),
                  "tags": dict(getattr(deployment_config, "tags", None) or {}),
                  "properties": dict(getattr(deployment_config, "properties", None) or {}),
                  "modelIds": [model.id for model in models], "configuration": config,
                  "environment": inference_config.environment.name if inference_config.environment else None}

    def write(files):
        definition["entryScript"] = copy_app(files, workspace._backend, inference_config)
        copy_models(files, workspace._backend, definition["modelIds"])
        files.write_keys({"authEnabled": auth, "primaryKey": new_key(), "secondaryKey": new_key()})
        store.write_json(files.definition, definition)

    try:
        workspace._backend.new_service(name, write)
    except FileExistsError:  # another process deployed one of that name meanwhile
        raise name_taken(name) from None
    files = workspace._backend.service(name)
    start_server(files)
    service = Webservice(workspace, name)
    environment = inference_config.environment
    print(f"Offline service {name}: azmlinfsrv runs {service._definition['entryScript']} in this Python on "
          f"{service._host}" + (f"; environment '{environment.name}' is not built." if environment else "."))
    return service


def name_taken(name):
    return WebserviceException(f"Service {name} with the same name already exists, please use a different service "
                               f"name or delete the existing service.")


def copy_app(files, backend, inference_config):
    """Copy the source directory (as a run's snapshot, never the workspace itself) or, without one, the entry
    script into the app folder; return the entry script's path there."""
    entry_script = Path(inference_config.entry_script)
    if inference_config.source_directory:
        backend.copy_source(inference_config.source_directory, files.app)
    else:
        files.app.mkdir()
        shutil.copy(entry_script, files.app)
        entry_script = Path(entry_script.name)
    return entry_script.as_posix()


def copy_models(files, backend, model_ids):
    """Copy the files of the models ("name:version") of the workspace `backend` where the server finds them."""
    shutil.rmtree(files.models, ignore_errors=True)
    files.models.mkdir()
    files.init_log.parent.mkdir(exist_ok=True)
    lines = []
    for model_id in model_ids:
        name, version = model_id.rsplit(":", 1)
        entry = backend.model_entry(name, version)  # the registered file or folder
        target = files.models / name / version
        target.mkdir(parents=True)
        (shutil.copytree if entry.is_dir() else shutil.copyfile)(entry, target / entry.name)
        lines.append(f"Copied model {model_id} into azureml-models/{name}/{version}\n")
    files.init_log.write_text("".join(lines) or "No models to copy\n")


def new_key():
    return secrets.token_urlsafe(24)  # 32 characters, as Azure's keys


def start_server(files):
    """Start azmlinfsrv for the service in `files`, in a session of its own, and record its process."""
    definition = store.read_json(files.definition)
    port = definition["configuration"]["port"] or free_port()
    models = definition["modelIds"]
    model_dir = files.models / models[0].replace(":", "/") if len(models) == 1 else files.models
    env = child_environment(AML_APP_ROOT=str(files.app), SERVICE_NAME=definition["name"], PYTHONUNBUFFERED="1",
               GUNICORN_CMD_ARGS="--config python:azureml_offline.engine.server_hooks",
               AZUREML_OFFLINE_SERVICE_DEFINITION=str(files.definition),
               AZUREML_OFFLINE_SERVICE_ID=definition["serviceId"], AZUREML_OFFLINE_SERVICE_KEYS=str(files.keys),
               AZUREML_OFFLINE_SERVICE_READY=str(files.ready), AZUREML_OFFLINE_SERVICE_MAX_BODY=str(MAX_BODY_BYTES))
    # The workers are the parallelism: one BLAS thread each, or two workers' threads contend for the same cores.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    server = [azmlinfsrv(), "--entry_script", definition["entryScript"],
              "--model_dir", str(model_dir), "--port", str(port), "--worker_count", str(WORKERS)]
    with open(files.server_log, "ab") as log:
        process = subprocess.Popen(server, cwd=files.app, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    _servers[process.pid] = process
    store.write_json(files.server, {"pid": process.pid, "startTime": processes.start_time(process.pid), "port": port})


def azmlinfsrv():
    """The server's command, installed beside this Python (a virtual environment's bin/) or on PATH."""
    beside = Path(sys.executable).with_name("azmlinfsrv")
    command = str(beside) if beside.exists() else shutil.which("azmlinfsrv")
    if not command:
        raise WebserviceException("The offline web service needs azmlinfsrv: "
                                  "pip install azureml-inference-server-http==1.5.1")
    return command


def free_port():
    """A port that is free on loopback now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the server process ------------------------------------------------------------------------------------------

def running(server):
    """Whether the recorded server process still runs (not another process that got its pid)."""
    if not server:
        return False
    process = _servers.get(server["pid"])
    if process is not None and process.poll() is not None:
        return False
    return server["startTime"] is not None and processes.start_time(server["pid"]) == server["startTime"]


def stop_server(server):
    """Stop the server's whole process group (master and workers), politely then for sure, and wait for it."""
    if not running(server):
        return
    process = _servers.get(server["pid"])
    processes.stop_group(lambda: processes.group_members(server["pid"]), STOP_SECONDS,
                         reap=process.poll if process is not None else lambda: None)


def script_error(log):
    """The script's exception from the server's log ("FileNotFoundError: ..."), else the log's last line.

    The server wraps it in its own (azureml_inference_server_http....UserScriptException), logged after it."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    errors = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception|Exit)\b:? ", line)
              and not line.startswith("azureml_inference_server_http.")]
    return (errors or lines or ["(no output)"])[-1].strip()


# --- the SDK's classes -------------------------------------------------------------------------------------------

class Webservice:
    """A deployed offline service; Webservice(ws, name) returns the AciWebservice or LocalWebservice."""

    _webservice_type = None

    def __new__(cls, workspace, name):
        files = workspace._backend.service(name)
        definition = store.read_json(files.definition)
        if definition is None:
            raise WebserviceException(f"WebserviceNotFound: Webservice with name {name} not found in provided "
                                      f"workspace")
        child = {ACI: AciWebservice, LOCAL: LocalWebservice}[definition["computeType"]]
        service = super().__new__(child)
        service._initialize(workspace, files, definition)
        return service

    def __init__(self, workspace, name):
        pass  # __new__ did it, as in the SDK

    def _initialize(self, workspace, files, definition):
        self.workspace = workspace
        self.name = definition["name"]
        self.compute_type = definition["computeType"]
        self.description = definition["description"]
        self.tags = definition["tags"]
        self.properties = definition["properties"]
        self.created_time = definition["createdTime"]
        self.models = definition["modelIds"]
        self._files = files
        self._definition = definition
        self._session = requests.Session()
        self._session.trust_env = False  # the server is on loopback: never through an HTTP(S)_PROXY
        self.update_deployment_state()

    @property
    def _host(self):
        return f"http://127.0.0.1:{self._server['port']}" if self._server else None

    def update_deployment_state(self):
        """Read the service's state from its server: Transitioning, Healthy, Unhealthy or Failed."""
        files = self._files
        self._server = store.read_json(files.server)
        keys = store.read_json(files.keys)
        self.auth_enabled = bool(keys and keys["authEnabled"])
        self.error = None
        if not files.definition.exists():
            state = "Deleted"
        elif running(self._server):
            if not files.ready.exists():
                state = "Transitioning"
            else:
                state = "Healthy" if self._answers() else "Unhealthy"
        elif self._server is None and not self._deployed_since(START_SECONDS):
            state = "Transitioning"  # the deployer records the server a moment after publishing the folder
        else:
            state = "Failed"
            why = "The server process was never started" if self._server is None else \
                f"The server process exited: {script_error(files.server_log)}"
            self.error = {"code": "ServiceFailed", "message": why, "details": "get_logs() shows the server's log"}
        self._set_state(state)

    def _set_state(self, state):
        self._state = state  # the cloud's word; LocalWebservice shows its own
        self.state = state

    def _deployed_since(self, seconds):
        return time.time() - self._files.definition.stat().st_mtime > seconds

    def _answers(self):
        try:
            return self._session.get(self._host + "/", timeout=PROBE_SECONDS).status_code == 200
        except requests.RequestException:
            return False

    def wait_for_deployment(self, show_output=False, timeout_sec=None):
        """Poll until the service is Healthy (returns) or Failed (raises WebserviceException), as the SDK does."""
        self._wait(show_output, timeout_sec)
        print(f'{self._webservice_type} service creation operation finished, operation "Succeeded"')

    def _wait(self, show_output, timeout_sec):
        if show_output:
            print(f"Offline: azmlinfsrv starts {self._definition['entryScript']} on this machine; get_logs() shows "
                  f"its output.")
            sys.stdout.write("Running")
            sys.stdout.flush()
        start = last_dot = time.monotonic()
        self.update_deployment_state()
        while self._state in ("Transitioning", "Unhealthy"):
            if timeout_sec and time.monotonic() - start >= float(timeout_sec):
                raise WebserviceException(f"Deployment polling exceeded timeout override of {timeout_sec}s. Current "
                                          f"status: {self.state}")
            time.sleep(POLL_SECONDS)
            if show_output and time.monotonic() - last_dot >= 5:  # the SDK prints a dot per 5-second poll
                sys.stdout.write(".")
                sys.stdout.flush()
                last_dot = time.monotonic()
            self.update_deployment_state()
        if show_output:
            print("\nSucceeded" if self._state == "Healthy" else "\nFailed")
        if self._state != "Healthy":
            raise WebserviceException(f"Service deployment polling reached non-successful terminal state, current "
                                      f"service state: {self.state}\nOperation ID: offline\nMore information can be "
                                      f"found using '.get_logs()'\nError:\n{json.dumps(self.error, indent=2)}")

    def get_logs(self, num_lines=5000, init=False):
        log = self._files.init_log if init else self._files.server_log
        lines = log.read_text(errors="replace").splitlines(keepends=True) if log.exists() else []
        return "".join(lines[-num_lines:])

    def get_keys(self):
        keys = self._keys()
        return keys["primaryKey"], keys["secondaryKey"]

    def regen_key(self, key, set_key=None):
        if not key:
            raise WebserviceException("Error, must specify which key with be regenerated: Primary, Secondary")
        key = key.capitalize()
        if key not in ("Primary", "Secondary"):
            raise WebserviceException(f"Error, invalid value provided for key: {key}.\n"
                                      f"Valid options are: Primary, Secondary")
        keys = self._keys()
        keys[f"{key.lower()}Key"] = set_key or new_key()
        self._files.write_keys(keys)

    def _keys(self):
        keys = store.read_json(self._files.keys)
        if keys is None:
            raise WebserviceException(f"WebserviceNotFound: Webservice with name {self.name} not found in provided "
                                      f"workspace")
        if not keys["authEnabled"]:
            raise WebserviceException(f"Service {self.name} has key authentication disabled: it has no keys to use")
        return keys

    def _post(self, input_data):
        """POST input_data verbatim to /score, with the key when auth is on (the SDK's run())."""
        if not self.scoring_uri:
            raise WebserviceException(f"Error attempting to call webservice, scoring_uri unavailable. This could be "
                                      f"due to a failed deployment, or the service is not ready yet.\n"
                                      f"Current State: {self.state}\nErrors: {self.error}")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.auth_enabled:
            headers["Authorization"] = f"Bearer {self.get_keys()[0]}"
        return self._session.post(self.scoring_uri, data=input_data, headers=headers)

    def delete(self):
        """Stop the server (its port is free when this returns) and remove the service's folder."""
        gone = self.workspace._backend.remove_service(self.name)  # first, so no one finds it half deleted
        if gone is None:
            print(f"No service with name {self.name} found to delete.")
            return
        stop_server(store.read_json(gone.server))
        gone.discard()
        self.state = "Deleting"

    def _update_files(self, tags=None, properties=None, description=None, auth_enabled=None, models=None,
                      inference_config=None):
        """Apply an update; new models or a new inference config restart the server (wait_for_deployment)."""
        definition = self._definition
        if tags is not None:
            definition["tags"] = dict(tags)
        if properties is not None:
            definition["properties"].update(properties)
        if description is not None:
            definition["description"] = description
        if auth_enabled is not None:
            keys = store.read_json(self._files.keys)
            self._files.write_keys(dict(keys, authEnabled=bool(auth_enabled)))
        if models is not None or inference_config is not None:
            self._redeploy(definition, models, inference_config)
        else:
            store.write_json(self._files.definition, definition)
        self._initialize(self.workspace, self._files, store.read_json(self._files.definition))

    def _redeploy(self, definition, models, inference_config):
        """Stop the server, put in the new models and/or app, and start it again."""
        files = self._files
        stop_server(store.read_json(files.server))
        for stale in (files.ready, files.server):
            stale.unlink(missing_ok=True)
        if inference_config is not None:
            shutil.rmtree(files.app)
            definition["entryScript"] = copy_app(files, self.workspace._backend, inference_config)
        if models is not None:
            definition["modelIds"] = [model.id for model in models]
        copy_models(files, self.workspace._backend, definition["modelIds"])
        definition["serviceId"] = uuid.uuid4().hex  # the old server's watch ends
        store.write_json(files.definition, definition)
        start_server(files)

    def __repr__(self):
        return (f"{type(self).__name__}(workspace={self.workspace!r}, name={self.name}, image_id=None, "
                f"image_digest=None, compute_type={self.compute_type}, state={self.state}, "
                f"scoring_uri={self.scoring_uri}, tags={self.tags}, properties={self.properties}, created_by=None)")


class AciWebservice(Webservice):
    """An Azure Container Instances service, run offline by azmlinfsrv on this machine."""

    _webservice_type = ACI
    deploy_configuration = staticmethod(SdkAciWebservice.deploy_configuration)  # the SDK's own configuration

    def _set_state(self, state):
        super()._set_state(state)
        self.scoring_uri = f"{self._host}/score" if self._server else None
        self.swagger_uri = f"{self._host}/swagger.json" if self._server else None

    def run(self, input_data):
        response = self._post(input_data)
        if response.status_code == 401 and self.auth_enabled:  # the key changed: as the SDK, fetch it and retry
            response = self._post(input_data)
        if response.status_code == 200:
            return response.json()
        raise WebserviceException(f"Received bad response from service. More information can be found by calling "
                                  f"`.get_logs()` on the webservice object.\nResponse Code: {response.status_code}\n"
                                  f"Headers: {response.headers}\nContent: {response.content}")

    def update(self, image=None, tags=None, properties=None, description=None, auth_enabled=None, ssl_enabled=None,
               ssl_cert_pem_file=None, ssl_key_pem_file=None, ssl_cname=None, enable_app_insights=None, models=None,
               inference_config=None):
        azure_only = {"image": image, "ssl_enabled": ssl_enabled, "ssl_cert_pem_file": ssl_cert_pem_file,
                      "ssl_key_pem_file": ssl_key_pem_file, "ssl_cname": ssl_cname,
                      "enable_app_insights": enable_app_insights}
        given = [name for name, value in azure_only.items() if value]
        if given:
            raise WebserviceException(f"Offline services cannot update {', '.join(given)}: that needs Azure")
        self._update_files(tags, properties, description, auth_enabled, models, inference_config)


class LocalWebservice(Webservice):
    """The SDK's Docker-based local service, run by azmlinfsrv without Docker; its states are lowercase."""

    _webservice_type = LOCAL
    deploy_configuration = staticmethod(SdkLocalWebservice.deploy_configuration)
    _STATES = {"Transitioning": "deploying", "Healthy": "running", "Unhealthy": "unknown", "Failed": "failed",
              "Deleted": "deleted"}

    def _set_state(self, state):
        self._state = state
        self.state = self._STATES[state]

    @property
    def port(self):
        return self._server["port"] if self._server else None

    @property
    def scoring_uri(self):
        return f"http://localhost:{self.port}/score" if self.port else None

    @property
    def swagger_uri(self):
        return f"http://localhost:{self.port}/swagger.json" if self.port else None

    def update_deployment_state(self, must_exist=False):
        super().update_deployment_state()

    def wait_for_deployment(self, show_output=False):
        self._wait(show_output, None)
        print(f"Local webservice is running at http://localhost:{self.port}")

    def get_logs(self, num_lines=5000, raw=False):
        return super().get_logs(num_lines)

    def get_keys(self):
        raise NotImplementedError("Keys are not supported for a LocalWebservice")

    def regen_key(self, key):
        raise NotImplementedError("Keys are not supported for a LocalWebservice")

    def run(self, input_data):
        response = self._post(input_data)
        if response.status_code == 200:
            return response.json()
        raise WebserviceException(f"Error: Scoring was unsuccessful.\nResponse Code: {response.status_code}\n"
                                  f"Content: {response.content}")

    def update(self, models=None, image_config=None, deployment_config=None, wait=False, inference_config=None):
        if image_config is not None or deployment_config is not None:
            raise WebserviceException("Offline, a local service is updated with models and inference_config only")
        self._update_files(models=models, inference_config=inference_config)
        if wait:
            self.wait_for_deployment()

    def delete(self, delete_cache=True, delete_image=False, delete_volume=True):
        super().delete()
        self.state = "deleted"
