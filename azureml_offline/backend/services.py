"""The Backend's web services: deploying (their app, models and keys), updating, reconciling their state with
their server process, their keys and logs, and deleting them."""

import os
import secrets
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import requests
from azureml._model_management._constants import ALL_WEBSERVICE_TYPES
from azureml.core.environment import Environment
from azureml.core.model import InferenceConfig
from azureml.exceptions import SnapshotException, WebserviceException

from ..engine import server
from ..state import files
from ..state.layout import ServiceFolder
from .models import has_all

ACI, LOCAL = "ACI", "Local"  # the SDK's computeType values of services
START_SECONDS = 60  # a service whose server was never started (its deployer died first) is Failed after this
PROBE_SECONDS = 2  # liveness probe timeout


class ServiceRules:
    """The web services of the workspace folder `self.folder`, which copy its models."""

    def service_names(self):
        return self.folder.service_names()

    def service(self, name):
        """The ServiceFolder of service `name` (its files may not exist: see service_definition)."""
        return self.folder.service(name)

    def select_services(
        self, compute_type=None, model_name=None, model_id=None, tags=None, properties=None, local=False
    ):
        """The names of the services that Webservice.list's filters select: compute type, a model's name or id
        ("name:version"), tags and properties (names, or [name, value] pairs). The cloud's services, or with
        `local` the local ones (LocalWebservice.list), as Azure's list and Docker's containers keep them apart."""
        if compute_type and compute_type.upper() not in ALL_WEBSERVICE_TYPES:
            raise WebserviceException(
                f'Invalid compute type "{compute_type}". Valid options are "{",".join(ALL_WEBSERVICE_TYPES)}"'
            )
        selected = []
        for name in self.service_names():
            definition = self.service_definition(name)
            if definition is None:  # deleted meanwhile
                continue
            models = definition["modelIds"]
            if (
                (definition["computeType"] == LOCAL) == local
                and (compute_type is None or compute_type.upper() == definition["computeType"].upper())
                and (model_name is None or any(model.rsplit(":", 1)[0] == model_name for model in models))
                and (model_id is None or model_id in models)
                and has_all(definition["tags"], tags)
                and has_all(definition["properties"], properties)
            ):
                selected.append(name)
        return selected

    def service_definition(self, name):
        """What was deployed as service `name` (service.json), or None if there is no such service."""
        return files.read_json(self.folder.service(name).definition)

    def deploy_service(self, name, kind, settings, models, inference_config, auth, overwrite):
        """Publish service `name` (its app, models, keys and definition) and start its server. `kind` is ACI or
        LOCAL; `settings` the definition's description, tags, properties and configuration."""
        server.azmlinfsrv()  # fails before anything is written if the server is not installed
        existing = self.service_definition(name)
        if existing is not None:
            # A local deployment replaces the local service of its name whatever `overwrite` says, as the SDK's
            # LocalWebservice._deploy replaces the container (re-running a notebook's cell works).
            if not (overwrite or kind == LOCAL == existing["computeType"]):
                raise name_taken(name)
            self.delete_service(name)
        definition = {
            "name": name,
            "computeType": kind,
            "serviceId": uuid.uuid4().hex,
            "createdTime": files.utc_now(),
            **settings,
            "modelIds": [model.id for model in models],
            **environment_record(inference_config.environment),
        }

        def write(service):
            definition.update(copy_app(service, self.folder, inference_config))
            copy_models(service, self.folder, definition["modelIds"])
            service.write_keys({"authEnabled": auth, "primaryKey": new_key(), "secondaryKey": new_key()})
            files.write_json(service.definition, definition)

        try:
            self.folder.new_service(name, write)
        except FileExistsError:  # another process deployed one of that name meanwhile
            raise name_taken(name) from None
        server.start(self.folder.service(name))

    def update_service(
        self,
        name,
        tags=None,
        properties=None,
        description=None,
        auth_enabled=None,
        models=None,
        inference_config=None,
        configuration=None,
        copy_again=False,
    ):
        """Apply an update; new models, a new inference config, `configuration` (changes to the deployment
        configuration: cpuCores, memoryGb, port) or `copy_again` (the app copied again from where it came from,
        as LocalWebservice.reload() and update() do) restart the server."""
        service = self.folder.service(name)
        definition = {**files.read_json(service.definition), "updatedTime": files.utc_now()}
        if tags is not None:
            definition["tags"] = dict(tags)
        if properties is not None:
            definition["properties"].update(properties)
        if description:  # as the SDK's update: an empty description changes nothing
            definition["description"] = description
        if auth_enabled is not None:
            service.write_keys(dict(files.read_json(service.keys), authEnabled=bool(auth_enabled)))
        if models is None and inference_config is None and configuration is None and not copy_again:
            files.write_json(service.definition, definition)
            return
        if models is not None:
            definition["modelIds"] = [model.id for model in models]
        definition["configuration"].update(configuration or {})
        app = inference_config
        if inference_config is not None:
            definition.update(environment_record(inference_config.environment))
        elif copy_again:
            app = app_source(name, definition)
        # The new app (or models) is copied whole beside the old one first: a copy that fails leaves the old
        # server serving.
        with tempfile.TemporaryDirectory(dir=service.path, prefix=".update-") as staging:
            staged = ServiceFolder(staging)
            if app is not None:
                definition.update(copy_app(staged, self.folder, app))
            copy_models(staged, self.folder, definition["modelIds"])
            server.stop(files.read_json(service.server))
            for stale in (service.ready, service.server):
                stale.unlink(missing_ok=True)
            # The models are in the app folder: a new app brings them, else they alone are replaced.
            new, old = (staged.app, service.app) if app is not None else (staged.models, service.models)
            shutil.rmtree(old)
            new.rename(old)
            staged.init_log.replace(service.init_log)
        definition["serviceId"] = uuid.uuid4().hex  # the old server's watch ends
        files.write_json(service.definition, definition)
        server.start(service)

    def reconcile_service(self, name, session=None):
        """(state, error, server) of service `name`, read from its server: Transitioning, Healthy, Unhealthy,
        Failed or Deleted; `error` says why it failed; `server` is server.json's record (pid, port) or None.
        State is never stored where it could go stale: the server process (alive or not), its `ready` file and
        its liveness route (probed with the requests `session`) tell it."""
        service = self.folder.service(name)
        record = files.read_json(service.server)
        error = None
        if not service.definition.exists():
            state = "Deleted"
        elif server.running(record):
            if not service.ready.exists():
                state = "Transitioning"
            else:
                state = "Healthy" if answers(session or requests, record["port"]) else "Unhealthy"
        elif record is None and time.time() - service.definition.stat().st_mtime <= START_SECONDS:
            state = "Transitioning"  # the deployer records the server a moment after publishing the folder
        else:
            state = "Failed"
            why = (
                "The server process was never started"
                if record is None
                else server.exit_reason(record, service.server_log)
            )
            error = {"code": "ServiceFailed", "message": why, "details": "get_logs() shows the server's log"}
        return state, error, record

    def service_keys(self, name):
        """keys.json of service `name` (authEnabled and the two keys), or None if there is no such service."""
        return files.read_json(self.folder.service(name).keys)

    def regenerate_key(self, name, which, value=None):
        """Replace the service's "primaryKey" or "secondaryKey" with `value` or a new key; the server re-reads it."""
        service = self.folder.service(name)
        service.write_keys(dict(files.read_json(service.keys), **{which: value or new_key()}))

    def service_log(self, name, init=False):
        """The server's log (init: what deployment copied), or '' if there is none."""
        service = self.folder.service(name)
        log = service.init_log if init else service.server_log
        return log.read_text(errors="replace") if log.exists() else ""

    def delete_service(self, name):
        """Stop the service's server (its port is free when this returns) and remove its folder; False if there
        was no such service."""
        gone = self.folder.remove_service(name)  # first, so no one finds it half deleted
        if gone is None:
            return False
        server.stop(files.read_json(gone.server))
        gone.discard()
        return True


def answers(session, port):
    """Whether the server on `port` answers its liveness route."""
    try:
        return session.get(f"http://127.0.0.1:{port}/", timeout=PROBE_SECONDS).status_code == 200
    except requests.RequestException:
        return False


def name_taken(name):
    return WebserviceException(
        f"Service {name} with the same name already exists, please use a different service "
        f"name or delete the existing service."
    )


def copy_app(service, folder, inference_config):
    """Copy the app into the app folder of ServiceFolder `service` of WorkspaceFolder `folder` as Azure lays it
    out (the SDK's InferenceConfig._handle_assets): the source directory as a folder of its own name (copied as a
    run's snapshot, never with the workspace itself), the entry script in it; or, without one, the entry script.
    Returns what the service's definition records of it: the entry script's path there, the source directory's
    folder there (AZUREML_SOURCE_DIRECTORY), and where they came from, in absolute paths, so that they can be
    copied again from any folder (app_source)."""
    entry_script, directory = Path(inference_config.entry_script), inference_config.source_directory
    source_folder = os.path.basename(os.path.realpath(directory)) if directory else None
    if directory:
        try:
            folder.copy_source(directory, service.app / source_folder)
        except SnapshotException as e:  # a folder the SDK would not snapshot: its message names the file
            raise WebserviceException(e.message) from None
        except OSError as e:
            raise WebserviceException(uncopyable(directory, e)) from None
    else:
        service.app.mkdir()
        shutil.copy(entry_script, service.app)
    return {
        "entryScript": (Path(source_folder, entry_script) if directory else Path(entry_script.name)).as_posix(),
        "sourceFolder": source_folder,
        "source": {
            "entryScript": entry_script.as_posix() if directory else os.path.abspath(entry_script),
            "sourceDirectory": os.path.abspath(directory) if directory else None,
        },
    }


def app_source(name, definition):
    """The InferenceConfig of where service `name` (its `definition`) was copied from; the SDK's own checks say
    if its files are gone."""
    source = definition.get("source")
    if source is None:
        raise WebserviceException(
            f"Service {name} was deployed by an earlier version of the offline workspace, which did not record "
            "where its app came from: update(inference_config=...) copies it again"
        )
    return InferenceConfig(entry_script=source["entryScript"], source_directory=source["sourceDirectory"])


def environment_record(environment):
    """What a service's definition records of its environment: the SDK's serialized Environment, and the variables
    the server gets."""
    return {
        "environment": Environment._serialize_to_dict(environment) if environment else None,
        "environmentVariables": dict(environment.environment_variables or {}) if environment else {},
    }


def uncopyable(source, error):
    """One line that names the file of source directory `source` that could not be copied, and what to do."""
    if isinstance(error, shutil.Error):  # copytree's: (source, target, why) of each file it could not copy
        path, _, why = error.args[0][0]
    else:
        path, why = error.filename, error
    return (
        f"Cannot copy {path} from the source directory {source} into the service ({why}): mend or remove it, "
        f"or list it in the folder's .amlignore, then deploy or update again"
    )


def copy_models(service, folder, model_ids):
    """Copy the files of the models ("name:version") of WorkspaceFolder `folder` where the server finds them."""
    shutil.rmtree(service.models, ignore_errors=True)
    service.models.mkdir(parents=True)
    service.init_log.parent.mkdir(exist_ok=True)
    lines = []
    for model_id in model_ids:
        name, version = model_id.rsplit(":", 1)
        entry = folder.model_entry(name, version)  # the registered file or folder
        target = service.models / name / version
        target.mkdir(parents=True)
        (shutil.copytree if entry.is_dir() else shutil.copyfile)(entry, target / entry.name)
        lines.append(f"Copied model {model_id} into azureml-models/{name}/{version}\n")
    service.init_log.write_text("".join(lines) or "No models to copy\n")


def new_key():
    return secrets.token_urlsafe(24)  # 32 characters, as Azure's keys
