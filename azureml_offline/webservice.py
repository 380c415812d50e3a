"""Offline stand-ins for azureml.core.webservice: Model.deploy() runs the entry script in Microsoft's own
scoring server, azmlinfsrv (azureml-inference-server-http), on a free loopback port of this machine.

The server is a process of its own (engine/server.py): it outlives the notebook cell and the kernel, is
found again by Webservice(ws, name) from any process, and stops on delete() or once its folder is gone
(engine/server_hooks.py). These classes translate the SDK's calls into the workspace's Backend, which deploys,
updates, reconciles (the state is read from the server, never stored) and deletes services.
"""

import json
import posixpath
import sys
import time

import requests
from azureml._model_management._util import webservice_name_validation
from azureml.core.model import InferenceConfig
from azureml.core.webservice.aci import AciServiceDeploymentConfiguration
from azureml.core.webservice.aci import AciWebservice as SdkAciWebservice
from azureml.core.webservice.local import LocalWebservice as SdkLocalWebservice
from azureml.core.webservice.local import LocalWebserviceDeploymentConfiguration, _in_state
from azureml.core.webservice.webservice import ContainerResourceRequirements
from azureml.core.webservice.webservice import Webservice as SdkWebservice
from azureml.exceptions import WebserviceException
from dateutil.parser import parse as parse_time

from .azure_only import needs_azure
from .backend import ACI, LOCAL, backend_of, name_taken
from .environment import from_definition

POLL_SECONDS = 0.1
# run()'s wait for an answer (AKS's default scoring_timeout_ms): a run() that hangs is an error, not a hang.
REQUEST_SECONDS = 60


def deploy(workspace, name, models, inference_config, deployment_config, overwrite):
    """Model.deploy() offline: check the SDK's arguments, have the backend deploy, return the Webservice."""
    webservice_name_validation(name)
    if deployment_config is None:
        deployment_config = SdkAciWebservice.deploy_configuration()
    if isinstance(deployment_config, AciServiceDeploymentConfiguration):
        kind = ACI
    elif isinstance(deployment_config, LocalWebserviceDeploymentConfiguration):
        kind = LOCAL
    else:
        raise WebserviceException(
            f"Offline, services deploy with AciWebservice.deploy_configuration() or "
            f"LocalWebservice.deploy_configuration(), not {type(deployment_config).__name__}"
        )
    if inference_config is None:
        raise WebserviceException(
            "Offline deployment needs an InferenceConfig with an entry script "
            "(deploying a model without one needs Azure)"
        )
    deployment_config.validate_configuration()
    settings = {
        "description": getattr(deployment_config, "description", None),
        "tags": dict(getattr(deployment_config, "tags", None) or {}),
        "properties": dict(getattr(deployment_config, "properties", None) or {}),
        "configuration": {
            "cpuCores": getattr(deployment_config, "cpu_cores", None),
            "memoryGb": getattr(deployment_config, "memory_gb", None),
            "port": getattr(deployment_config, "port", None),
        },
    }
    auth = kind == ACI and bool(deployment_config.auth_enabled)
    backend_of(workspace).deploy_service(name, kind, settings, models, inference_config, auth, overwrite)
    service = Webservice(workspace, name)
    service._operation_started = True
    environment = inference_config.environment
    print(
        f"Offline service {name}: azmlinfsrv runs {inference_config.entry_script} in this Python on "
        f"{service._host}" + (f"; environment '{environment.name}' is not built." if environment else ".")
    )
    return service


# --- the SDK's classes -------------------------------------------------------------------------------------------


class Webservice:
    """A deployed offline service; Webservice(ws, name) returns the AciWebservice or LocalWebservice."""

    _webservice_type = None
    _operation_started = False  # by deploy() or update(), which the SDK's wait_for_deployment follows

    def __new__(cls, workspace, name):
        definition = backend_of(workspace).service_definition(name)
        if definition is None:
            raise WebserviceException(
                f"WebserviceNotFound: Webservice with name {name} not found in provided workspace"
            )
        child = {ACI: AciWebservice, LOCAL: LocalWebservice}[definition["computeType"]]
        service = super().__new__(child)
        service._initialize(workspace, definition)
        return service

    def __init__(self, workspace, name):
        pass  # __new__ did it, as in the SDK

    @staticmethod
    def list(
        workspace,
        compute_type=None,
        image_name=None,
        image_id=None,
        model_name=None,
        model_id=None,
        tags=None,
        properties=None,
        image_digest=None,
    ):
        """The workspace's services that match every filter given: compute type, a model's name or id
        ("name:version"), tags and properties (each a name, or a [name, value] pair). No service has an image."""
        if image_name or image_id or image_digest:
            return []
        names = backend_of(workspace).select_services(compute_type, model_name, model_id, tags, properties)
        return [Webservice(workspace, name) for name in names]

    @staticmethod
    def check_for_existing_webservice(workspace, name, overwrite=False, request_func=None, check_func=None):
        """Raise the SDK's error if a service of that name exists, unless overwrite."""
        webservice_name_validation(name)
        if not overwrite and backend_of(workspace).service_definition(name) is not None:
            raise name_taken(name)

    @classmethod
    def deserialize(cls, workspace, webservice_payload):
        """The service that serialize() described (it must exist in `workspace`)."""
        if not isinstance(webservice_payload, dict) or "name" not in webservice_payload:
            raise WebserviceException(f'Invalid webservice payload, missing "name":\n{webservice_payload}')
        service = Webservice(workspace, webservice_payload["name"])
        if not isinstance(service, cls):
            raise WebserviceException(
                f"Invalid payload for {cls._webservice_type} webservice, computeType is not "
                f"{cls._webservice_type}:\n{webservice_payload}"
            )
        return service

    def serialize(self):
        """The SDK's dictionary of the service."""
        return {
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "properties": self.properties,
            "state": self.state,
            "createdTime": self.created_time.isoformat(),
            "updatedTime": self.updated_time.isoformat() if self.updated_time else None,
            "error": self.error,
            "computeType": self.compute_type,
            "workspaceName": self.workspace.name,
            "imageId": None,
            "imageDigest": None,
            "imageDetails": None,
            "scoringUri": self.scoring_uri,
            "createdBy": None,
        }

    instead = "register the model and use Model.deploy(ws, name, [model], InferenceConfig(...), deployment_config)"
    deploy = needs_azure(SdkWebservice, "deploy", instead, WebserviceException)
    deploy_from_image = needs_azure(SdkWebservice, "deploy_from_image", instead, WebserviceException)
    deploy_from_model = needs_azure(SdkWebservice, "deploy_from_model", instead, WebserviceException)
    deploy_local_from_model = needs_azure(
        SdkWebservice,
        "deploy_local_from_model",
        "use Model.deploy(..., LocalWebservice.deploy_configuration()) with an InferenceConfig",
        WebserviceException,
    )
    get_token = needs_azure(
        SdkWebservice, "get_token", "services authenticate with keys (get_keys())", WebserviceException
    )
    del instead

    def run(self, input):
        # Abstract, as in the SDK: Webservice(ws, name) is an AciWebservice or a LocalWebservice.
        raise NotImplementedError

    def update(self, *args):
        raise NotImplementedError  # abstract, as run()

    def _initialize(self, workspace, definition):
        self.workspace = workspace
        self.name = definition["name"]
        self.compute_type = definition["computeType"]
        self.description = definition["description"]
        self.tags = definition["tags"]
        self.properties = definition["properties"]
        self.created_time = parse_time(definition["createdTime"])
        self.updated_time = parse_time(definition["updatedTime"]) if definition.get("updatedTime") else None
        self.models = definition["modelIds"]  # ids: Model objects would make model.py and this import each other
        self.environment = from_definition(definition["environment"]) if definition.get("environment") else None
        configuration = definition.get("configuration", {})
        self.container_resource_requirements = ContainerResourceRequirements(
            configuration.get("cpuCores"), configuration.get("memoryGb")
        )
        self.location = workspace.location
        self.ssl_enabled = self.enable_app_insights = self.token_auth_enabled = False
        # What only Azure has: images, TLS, DNS names, networks, encryption, who deployed it.
        self.image = self.image_id = self.image_digest = self.created_by = None
        self.ssl_certificate = self.ssl_key = self.cname = self.public_ip = self.public_fqdn = None
        self.encryption_properties = self.vnet_configuration = None
        self._backend = backend_of(workspace)
        self._definition = definition
        self._session = requests.Session()
        self._session.trust_env = False  # the server is on loopback: never through an HTTP(S)_PROXY
        self.update_deployment_state()

    @property
    def _host(self):
        """http://127.0.0.1:<port> of the service's server, or None before it is recorded."""
        return f"http://127.0.0.1:{self._server['port']}" if self._server else None

    def update_deployment_state(self):
        """Read the service's state from its server: Transitioning, Healthy, Unhealthy or Failed."""
        state, self.error, self._server = self._backend.reconcile_service(self.name, self._session)
        keys = self._backend.service_keys(self.name)
        self.auth_enabled = bool(keys and keys["authEnabled"])
        self._set_state(state)

    def _set_state(self, state):
        self._state = state  # the cloud's word; LocalWebservice shows its own
        self.state = state

    def wait_for_deployment(self, show_output=False, timeout_sec=None):
        """Poll until the service is Healthy (returns) or Failed (raises WebserviceException), as the SDK does:
        after deploy() or update() only, which start the operation it follows."""
        if not self._operation_started:
            self.update_deployment_state()
            raise WebserviceException(
                f"Long running operation information not known, unable to poll. Current state is {self.state}"
            )
        self._wait(show_output, timeout_sec)
        print(f'{self._webservice_type} service creation operation finished, operation "Succeeded"')

    def _wait(self, show_output, timeout_sec):
        if show_output:
            print(
                f"Offline: azmlinfsrv starts {posixpath.basename(self._definition['entryScript'])} on this machine; "
                "get_logs() shows its output."
            )
            sys.stdout.write("Running")
            sys.stdout.flush()
        start = last_dot = time.monotonic()
        self.update_deployment_state()
        while self._state in ("Transitioning", "Unhealthy"):
            if timeout_sec and time.monotonic() - start >= float(timeout_sec):
                raise WebserviceException(
                    f"Deployment polling exceeded timeout override of {timeout_sec}s. Current status: {self.state}"
                )
            time.sleep(POLL_SECONDS)
            if show_output and time.monotonic() - last_dot >= 5:  # the SDK prints a dot per 5-second poll
                sys.stdout.write(".")
                sys.stdout.flush()
                last_dot = time.monotonic()
            self.update_deployment_state()
        if show_output:
            print("\nSucceeded" if self._state == "Healthy" else "\nFailed")
        if self._state != "Healthy":
            raise WebserviceException(
                f"Service deployment polling reached non-successful terminal state, current "
                f"service state: {self.state}\nOperation ID: offline\nMore information can be "
                f"found using '.get_logs()'\nError:\n{json.dumps(self.error, indent=2)}"
            )

    def get_logs(self, num_lines=5000, init=False):
        lines = self._backend.service_log(self.name, init).splitlines(keepends=True)
        return "".join(lines[-num_lines:])

    def get_keys(self):
        keys = self._keys()
        return keys["primaryKey"], keys["secondaryKey"]

    def regen_key(self, key, set_key=None):
        if not key:
            raise WebserviceException("Error, must specify which key with be regenerated: Primary, Secondary")
        key = key.capitalize()
        if key not in ("Primary", "Secondary"):
            raise WebserviceException(
                f"Error, invalid value provided for key: {key}.\nValid options are: Primary, Secondary"
            )
        self._keys()  # the errors of a service without keys
        self._backend.regenerate_key(self.name, f"{key.lower()}Key", set_key)

    def _keys(self):
        keys = self._backend.service_keys(self.name)
        if keys is None:
            raise WebserviceException(
                f"WebserviceNotFound: Webservice with name {self.name} not found in provided workspace"
            )
        if not keys["authEnabled"]:
            raise WebserviceException(f"Service {self.name} has key authentication disabled: it has no keys to use")
        return keys

    def _post(self, input_data):
        """POST input_data verbatim to /score, with the key when auth is on (the SDK's run())."""
        if not self.scoring_uri:
            raise WebserviceException(
                f"Error attempting to call webservice, scoring_uri unavailable. This could be "
                f"due to a failed deployment, or the service is not ready yet.\n"
                f"Current State: {self.state}\nErrors: {self.error}"
            )
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.auth_enabled:
            headers["Authorization"] = f"Bearer {self.get_keys()[0]}"
        try:
            return self._session.post(self.scoring_uri, data=input_data, headers=headers, timeout=REQUEST_SECONDS)
        except requests.Timeout:
            raise WebserviceException(
                f"Service {self.name} sent no answer within {REQUEST_SECONDS:g} s (webservice.REQUEST_SECONDS); "
                f"get_logs() shows what its run() is doing"
            ) from None

    def delete(self):
        """Stop the server (its port is free when this returns) and remove the service's folder."""
        self._session.close()  # a connection it keeps alive would hold a worker through the server's graceful stop
        if not self._backend.delete_service(self.name):
            print(f"No service with name {self.name} found to delete.")
            return
        self.state = "Deleting"

    def _update(self, **changes):
        """Apply an update (Backend.update_service's `changes`); some restart the server (wait_for_deployment)."""
        self._session.close()  # as in delete(): the old server stops at once
        self._backend.update_service(self.name, **changes)
        self._initialize(self.workspace, self._backend.service_definition(self.name))
        self._operation_started = True

    def __repr__(self):
        return (
            f"{type(self).__name__}(workspace={self.workspace!r}, name={self.name}, image_id=None, "
            f"image_digest=None, compute_type={self.compute_type}, state={self.state}, "
            f"scoring_uri={self.scoring_uri}, tags={self.tags}, properties={self.properties}, created_by=None)"
        )


class AciWebservice(Webservice):
    """An Azure Container Instances service, run offline by azmlinfsrv on this machine."""

    _webservice_type = ACI
    deploy_configuration = staticmethod(SdkAciWebservice.deploy_configuration)  # the SDK's own configuration
    # The SDK's own: they change self.tags or self.properties, then call update().
    add_tags, remove_tags, add_properties = (
        SdkAciWebservice.add_tags,
        SdkAciWebservice.remove_tags,
        SdkAciWebservice.add_properties,
    )
    _add_tags, _remove_tags, _add_properties = (
        SdkWebservice._add_tags,
        SdkWebservice._remove_tags,
        SdkWebservice._add_properties,
    )

    def get_token(self):
        raise NotImplementedError("ACI webservices do not support Token Authentication.")

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
        raise WebserviceException(
            f"Received bad response from service. More information can be found by calling "
            f"`.get_logs()` on the webservice object.\nResponse Code: {response.status_code}\n"
            f"Headers: {response.headers}\nContent: {response.content}"
        )

    def update(
        self,
        image=None,
        tags=None,
        properties=None,
        description=None,
        auth_enabled=None,
        ssl_enabled=None,
        ssl_cert_pem_file=None,
        ssl_key_pem_file=None,
        ssl_cname=None,
        enable_app_insights=None,
        models=None,
        inference_config=None,
    ):
        arguments = (image, tags, properties, description, auth_enabled, ssl_enabled, ssl_cert_pem_file)
        arguments += (ssl_key_pem_file, ssl_cname, enable_app_insights, models, inference_config)
        if all(value is None or value == "" for value in arguments):
            raise WebserviceException("No parameters provided to update.")
        SdkAciWebservice._validate_update(self, *arguments)  # the SDK's checks: models need an inference_config
        azure_only = {
            "image": image,
            "ssl_enabled": ssl_enabled,
            "ssl_cert_pem_file": ssl_cert_pem_file,
            "ssl_key_pem_file": ssl_key_pem_file,
            "ssl_cname": ssl_cname,
            "enable_app_insights": enable_app_insights,
        }
        given = [name for name, value in azure_only.items() if value]
        if given:
            raise WebserviceException(f"Offline services cannot update {', '.join(given)}: that needs Azure")
        self._update(
            tags=tags,
            properties=properties,
            description=description,
            auth_enabled=auth_enabled,
            models=models,
            inference_config=inference_config,
        )


# The states in which the SDK's LocalWebservice lets each call through (its own guard, _in_state, says which not).
UP = [SdkLocalWebservice.STATE_DEPLOYING, SdkLocalWebservice.STATE_RUNNING]
NOT_DELETED = [*UP, SdkLocalWebservice.STATE_FAILED]


class LocalWebservice(Webservice):
    """The SDK's Docker-based local service, run by azmlinfsrv without Docker; its states are lowercase."""

    _webservice_type = LOCAL
    deploy_configuration = staticmethod(SdkLocalWebservice.deploy_configuration)
    _STATES = {
        "Transitioning": "deploying",
        "Healthy": "running",
        "Unhealthy": "unknown",
        "Failed": "failed",
        "Deleted": "deleted",
    }

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

    @staticmethod
    def list(workspace, model_name=None, model_id=None, all=None):
        """The local services (`all`: also stopped containers, which offline are not kept)."""
        names = backend_of(workspace).select_services(model_name=model_name, model_id=model_id, local=True)
        return [LocalWebservice(workspace, name) for name in names]

    @_in_state(UP)
    def wait_for_deployment(self, show_output=False):
        self._wait(show_output, None)
        print(f"Local webservice is running at http://localhost:{self.port}")

    @_in_state(NOT_DELETED)
    def get_logs(self, num_lines=5000, raw=False):
        return super().get_logs(num_lines)

    def get_keys(self):
        raise NotImplementedError("Keys are not supported for a LocalWebservice")

    def regen_key(self, key):
        raise NotImplementedError("Keys are not supported for a LocalWebservice")

    @_in_state(UP)
    def run(self, input_data):
        if self.state == "deploying":  # as the SDK's: after deploy, update() or reload() without wait=True
            self.wait_for_deployment()
        response = self._post(input_data)
        if response.status_code == 200:
            return response.json()
        raise WebserviceException(
            f"Error: Scoring was unsuccessful.\nResponse Code: {response.status_code}\nContent: {response.content}"
        )

    @_in_state([*NOT_DELETED, SdkLocalWebservice.STATE_UNKNOWN])
    def update(self, models=None, image_config=None, deployment_config=None, wait=False, inference_config=None):
        """As the SDK's: what is None stays, and the service restarts with its app copied again from where it
        came from (the SDK rebuilds its image from the same files); a deployment_config's port is the new one."""
        if image_config is not None:
            raise WebserviceException("Offline, a local service is updated with an InferenceConfig, not an image")
        if deployment_config is not None and not isinstance(deployment_config, LocalWebserviceDeploymentConfiguration):
            raise WebserviceException(
                "Error, provided deployment configuration must be of type LocalWebserviceDeploymentConfiguration "
                "in order to update a local service."
            )
        if inference_config is not None and not isinstance(inference_config, InferenceConfig):
            raise WebserviceException(
                "Error, provided inference configuration must be of type InferenceConfig in order to update a "
                "local service."
            )
        self._update(
            models=models,
            inference_config=inference_config,
            configuration={"port": deployment_config.port} if deployment_config is not None else None,
            copy_again=True,
        )
        if wait:
            self.wait_for_deployment()

    @_in_state(NOT_DELETED)
    def reload(self, wait=False):
        """Copy the entry script (or its source directory) again and restart the service; models and port stay."""
        self.update(wait=wait)

    deploy_to_cloud = needs_azure(
        SdkLocalWebservice,
        "deploy_to_cloud",
        "there is no cloud to deploy to: Model.deploy() with AciWebservice.deploy_configuration() deploys a service",
        WebserviceException,
    )

    @_in_state(NOT_DELETED)
    def delete(self, delete_cache=True, delete_image=False, delete_volume=True):
        super().delete()
        self.state = "deleted"
