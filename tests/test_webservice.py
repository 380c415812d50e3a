"""Offline web services: score.py in azmlinfsrv, reached over HTTP as a client program would, with the SDK's surface."""

import contextlib
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import chainer
import chainer.links as L
import numpy as np
import pytest
import requests
from azureml.core.environment import Environment
from azureml.core.model import InferenceConfig
from azureml.core.webservice import AciWebservice as SdkAciWebservice
from azureml.core.webservice import Webservice as SdkWebservice
from azureml.exceptions import UserErrorException, WebserviceException
from helpers import REPO, alive, eventually

from azureml_offline.backend import backend_of, copy_app
from azureml_offline.engine.server import MAX_BODY_BYTES, WORKERS, free_port
from azureml_offline.model import Model
from azureml_offline.state.files import DamagedRecordWarning
from azureml_offline.state.layout import WorkspaceFolder
from azureml_offline.webservice import AciWebservice, LocalWebservice, Webservice
from azureml_offline.workspace import workspace_at
from chainer_mnist import MLP

SCORE = REPO / "score.py"
ACI = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1, auth_enabled=True)
OPEN = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1)


def server_processes(folder):
    """azmlinfsrv processes (masters and workers) serving from `folder`."""
    found = subprocess.run(["pgrep", "-f", f"azmlinfsrv.*{folder}"], capture_output=True, text=True)
    return found.stdout.split()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A workspace with a registered (untrained, seeded) model, the scoring source and its reference predictions."""
    root = tmp_path_factory.mktemp("services")
    np.random.seed(0)
    classifier = L.Classifier(MLP(64))
    classifier(np.zeros((1, 784), np.float32), np.zeros(1, np.int32))  # creates the weights
    chainer.serializers.save_npz(root / "model.npz", classifier)
    workspace = workspace_at(root / "workspace")
    with contextlib.chdir(root):  # the SDK registers files under the working folder only
        model = Model.register(workspace, "model.npz", "chainer-dnn-mnist")
    source = root / "source"
    source.mkdir()
    for name in ("score.py", "chainer_mnist.py"):
        shutil.copy(REPO / name, source)
    images = np.random.RandomState(1).randint(0, 256, (64, 784))
    with chainer.using_config("train", False):
        expected = classifier.predictor(images.astype(np.float32) / 255).array.argmax(axis=1)
    yield {"workspace": workspace, "model": model, "source": source, "images": images, "expected": expected}
    for service in [*workspace.webservices.values(), *LocalWebservice.list(workspace)]:
        service.delete()
    assert server_processes(root) == [], "a server outlived its test"


def inference_config(env, entry_script="score.py", source=None):
    return InferenceConfig(entry_script=entry_script, source_directory=str(source or env["source"]))


@pytest.fixture(scope="module")
def service(env):
    """One service that the tests only read and call; a test that changes a service deploys its own."""
    service = Model.deploy(env["workspace"], "mnist-auth", [env["model"]], inference_config(env), ACI)
    service.wait_for_deployment()
    return service


@pytest.fixture
def own_service(env, request):
    """A service of this test alone (it may change it), deleted at its end."""
    name = "own-" + request.node.name.removeprefix("test_").replace("_", "-")[:28].strip("-")
    service = Model.deploy(env["workspace"], name, [env["model"]], inference_config(env), ACI)
    service.wait_for_deployment()
    yield service
    service.delete()


@pytest.fixture
def own_source(env, tmp_path):
    """A copy of the scoring source, for a test that adds scripts to it."""
    return shutil.copytree(env["source"], tmp_path / "source")


def post(service, body, key=None, content_type="application/json"):
    headers = {"Content-Type": content_type}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return requests.post(service.scoring_uri, data=body, headers=headers, timeout=30)


def payload(images):
    return json.dumps({"data": np.asarray(images).tolist()})


def test_deployed_service_is_healthy_on_loopback_and_publishes_its_swagger(service):
    assert service.state == "Healthy"
    assert service.scoring_uri.startswith("http://127.0.0.1:") and service.scoring_uri.endswith("/score")
    swagger = requests.get(service.swagger_uri, timeout=10).json()
    assert "data" in swagger["definitions"]["ServiceInput"]["properties"]
    assert requests.get(service.scoring_uri.replace("/score", "/"), timeout=10).text == "Healthy"


def test_run_and_plain_http_with_the_key_agree_with_the_model_in_process(service, env):
    answers = service.run(payload(env["images"][:8]))
    assert [a["digit"] for a in answers] == env["expected"][:8].tolist()
    assert all(abs(sum(a["probabilities"]) - 1) < 1e-5 and len(a["probabilities"]) == 10 for a in answers)
    primary, secondary = service.get_keys()
    as_28_by_28 = payload(env["images"][:8].reshape(8, 28, 28))
    for key in (primary, secondary):
        assert post(service, as_28_by_28, key).json() == answers


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_without_the_right_key_it_is_401(service, env, key):
    response = post(service, payload(env["images"][:1]), key)
    assert response.status_code == 401 and "Authorization" in response.json()["message"]


def test_regenerated_key_replaces_the_old_one_at_once(own_service, env):
    service = own_service
    old = service.get_keys()[1]
    keys = backend_of(service).service(service.name).keys
    assert keys.stat().st_mode & 0o077 == 0  # the keys are this user's alone
    service.regen_key("Secondary")
    new = service.get_keys()[1]
    assert new != old
    assert keys.stat().st_mode & 0o077 == 0
    assert post(service, payload(env["images"][:1]), old).status_code == 401
    assert post(service, payload(env["images"][:1]), new).status_code == 200
    with pytest.raises(WebserviceException, match="Valid options are: Primary, Secondary"):
        service.regen_key("Tertiary")


def twenty_megabytes_of_images():
    return b'{"data": [' + b",".join([b"[" + b",".join([b"255"] * 784) + b"]"] * 7000) + b"]}"


def body_over_the_cap():
    return b'{"data": [' + b" " * MAX_BODY_BYTES + b"]}"


BAD = {
    "malformed JSON": (b'{"data": [[1, 2', 400, "could not be decoded as JSON"),
    "empty body": (b"", 400, "empty"),
    "not JSON": (b"data=1", 415, "application/json"),
    "JSON but not an object": (b"[1, 2]", 400, "JSON dictionary"),
    "no data": (b'{"images": []}', 400, "'data'"),
    "data not a list": (b'{"data": "seven"}', 400, "non-empty list"),
    "no images": (b'{"data": []}', 400, "non-empty list"),
    "too short": (json.dumps({"data": [[0] * 783]}).encode(), 400, "784 numbers"),
    "28 x 27": (json.dumps({"data": [[[0] * 27] * 28]}).encode(), 400, "784 numbers"),
    "ragged": (json.dumps({"data": [[0] * 784, [0] * 10]}).encode(), 400, "784 numbers"),
    "strings": (json.dumps({"data": [["x"] * 784]}).encode(), 400, "784 numbers"),
    "nulls": (json.dumps({"data": [[None] * 784]}).encode(), 400, "not NaN, Infinity or null"),
    "NaN": (b'{"data": [[' + b"NaN," * 783 + b"0]]}", 400, "not NaN, Infinity or null"),
    "Infinity": (b'{"data": [[' + b"Infinity," * 783 + b"0]]}", 400, "not NaN, Infinity or null"),
    "above 255": (json.dumps({"data": [[256] * 784]}).encode(), 400, "between 0 and 255"),
    "negative": (json.dumps({"data": [[-1] * 784]}).encode(), 400, "between 0 and 255"),
    "too many images": (json.dumps({"data": [[0] * 784] * 1001}).encode(), 400, "at most 1000"),
    "7000 images, 20 MB: past the server, to score.py": (twenty_megabytes_of_images, 400, "at most 1000"),
    "a body over the server's cap": (body_over_the_cap, 413, "are accepted"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_a_4xx_with_a_message_and_the_service_stays_up(service, env, name):
    body, status, words = BAD[name]
    body = body() if callable(body) else body  # the large ones made here, not kept for the whole session
    content_type = "text/plain" if name == "not JSON" else "application/json"
    response = post(service, body, service.get_keys()[0], content_type)
    assert response.status_code == status, response.text
    assert words in response.json()["message"] and "Traceback" not in response.text
    assert service.run(payload(env["images"][:1]))[0]["digit"] == env["expected"][0]


def test_eight_concurrent_clients_are_all_answered_correctly(service, env):
    images, expected = env["images"], env["expected"]
    key = service.get_keys()[0]
    wrong = []

    def client(number):
        with requests.Session() as session:
            for request in range(200):
                i = (number * 200 + request) % len(images)
                response = session.post(
                    service.scoring_uri,
                    data=payload(images[i : i + 1]),
                    timeout=30,
                    headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
                )
                if response.status_code != 200 or response.json()[0]["digit"] != expected[i]:
                    wrong.append((i, response.status_code, response.text[:200]))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_a_local_service_beside_the_first_then_deleted_while_requests_are_in_flight(service, env):
    port = free_port()
    second = Model.deploy(
        env["workspace"],
        "mnist-local",
        [env["model"]],
        inference_config(env),
        LocalWebservice.deploy_configuration(port=port),
    )
    second.wait_for_deployment()
    assert second.state == "running" and second.scoring_uri == f"http://localhost:{port}/score"
    assert second.scoring_uri.split(":")[2] != service.scoring_uri.split(":")[2] and not second.auth_enabled
    # Azure lists its services, Docker the local ones.
    assert "mnist-auth" in env["workspace"].webservices and "mnist-local" not in env["workspace"].webservices
    assert "mnist-local" in [each.name for each in LocalWebservice.list(env["workspace"])]
    assert second.run(payload(env["images"][:1]))[0]["digit"] == env["expected"][0]
    with pytest.raises(NotImplementedError):
        second.get_keys()
    outcomes, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                response = post(second, payload(env["images"][:4]))
                ok = (
                    response.status_code == 200
                    and [a["digit"] for a in response.json()] == env["expected"][:4].tolist()
                )
                outcomes.append("answered" if ok else f"wrong: {response.status_code} {response.text[:200]}")
            except requests.ConnectionError:
                outcomes.append("refused")

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    try:
        second.delete()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    with pytest.raises(requests.ConnectionError):  # nothing listens on the port any more
        requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    with socket.socket() as s:  # and a new server can bind it (as servers do, past closed connections' TIME_WAIT)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
    assert "answered" in outcomes and set(outcomes) <= {"answered", "refused"}, set(outcomes)
    assert second.state == "deleted" and LocalWebservice.list(env["workspace"]) == []
    with pytest.raises(WebserviceException, match="WebserviceNotFound"):
        Webservice(env["workspace"], "mnist-local")
    assert service.run(payload(env["images"][:1]))[0]["digit"] == env["expected"][0]


def test_failed_deployments_say_why_in_the_error_and_the_logs(env, own_source, capsys):
    (own_source / "broken.py").write_text(
        "def init():\n    raise RuntimeError('the broken script')\ndef run(data):\n    return data\n"
    )
    config = inference_config(env, "broken.py", own_source)
    broken = Model.deploy(env["workspace"], "broken-script", [env["model"]], config, OPEN, show_output=True)
    assert f"Models: ['{env['model'].id}']\nEntry script: " in capsys.readouterr().out  # the SDK's configuration
    no_model = Model.deploy(env["workspace"], "no-model", [], inference_config(env), OPEN)
    for service, error in (
        (broken, "RuntimeError: the broken script"),
        (no_model, "FileNotFoundError: expected one model.npz"),
    ):
        with pytest.raises(WebserviceException, match="current service state: Failed") as raised:
            service.wait_for_deployment()
        assert error in str(raised.value) and error in service.get_logs()
        assert service.state == "Failed"
        service.delete()


def test_a_service_outlives_the_process_that_deployed_it_and_stops_when_its_folder_goes(env):
    deployer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
import sys
from azureml.core.model import InferenceConfig
from azureml.core.webservice import AciWebservice as SdkAciWebservice
from azureml.core.webservice import Webservice as SdkWebservice
from azureml_offline.model import Model
from azureml_offline.webservice import AciWebservice
from azureml_offline.workspace import workspace_at
ws = workspace_at({str(backend_of(env["workspace"]).root)!r})
config = InferenceConfig(entry_script="score.py", source_directory={str(env["source"])!r})
service = Model.deploy(ws, "from-a-kernel", [Model(ws, "chainer-dnn-mnist")], config,
                       AciWebservice.deploy_configuration(auth_enabled=True))
service.wait_for_deployment()
print("deployed", flush=True)
sys.stdin.read()  # stays until killed, as a kernel
""",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert "deployed\n" in iter(deployer.stdout.readline, "")
    deployer.send_signal(signal.SIGKILL)  # the kernel dies
    deployer.wait()
    found = Webservice(env["workspace"], "from-a-kernel")
    assert found.state == "Healthy" and isinstance(found, AciWebservice)
    assert found.run(payload(env["images"][:2]))[1]["digit"] == env["expected"][1]
    folder = backend_of(env["workspace"]).service("from-a-kernel").path
    shutil.rmtree(folder)  # the workspace is removed for good: its server stops by itself
    deadline = time.monotonic() + 15
    while server_processes(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server_processes(folder) == []


def test_update_turns_auth_off_and_redeploys_another_script_that_finds_the_model_as_on_azure(
    own_service, env, own_source
):
    service = own_service
    service.update(auth_enabled=False, tags={"lesson": "03"})
    assert post(service, payload(env["images"][:1])).status_code == 200
    service.update(auth_enabled=True)
    assert post(service, payload(env["images"][:1])).status_code == 401
    (own_source / "model_path.py").write_text(
        "import os\nfrom azureml.core.model import Model\ndef init():\n    pass\n"
        "def run(data):\n"
        "    return os.path.relpath(Model.get_model_path('chainer-dnn-mnist'), os.environ['AZUREML_MODEL_DIR'])\n"
    )
    service.update(models=[env["model"]], inference_config=inference_config(env, "model_path.py", own_source))
    service.wait_for_deployment()
    assert service.tags == {"lesson": "03"} and service.state == "Healthy"
    assert service.run("{}") == "model.npz"  # AZUREML_MODEL_DIR is azureml-models/<name>/<version>, as on Azure
    with pytest.raises(WebserviceException, match="ssl_enabled"):
        service.update(ssl_enabled=True)


RELOADED = "import os\n\ndef init():\n    pass\n\ndef run(data):\n    return [{answer!r}, os.environ['GREETING']]\n"


def test_a_local_service_reloads_and_updates_as_microsoft_s_deploy_to_local_notebook_does(env, tmp_path, monkeypatch):
    """register-model-deploy-local.ipynb: an entry script beside the notebook (no source directory), edited, then
    reload(), and run() at once (it waits for the restart, as the SDK's does); update() to another port; the
    environment's variables set in the server, as in the SDK's container."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "score.py").write_text(RELOADED.format(answer="first"))
    environment = Environment("local-deploy")
    environment.environment_variables = {"GREETING": "hello"}
    config = InferenceConfig(entry_script="score.py", environment=environment)
    local = Model.deploy(env["workspace"], "reloaded", [env["model"]], config, LocalWebservice.deploy_configuration())
    local.wait_for_deployment()
    try:
        assert local.run("{}") == ["first", "hello"]
        assert (local.environment.name, local.environment.environment_variables) == (
            "local-deploy",
            {"GREETING": "hello"},
        )
        (tmp_path / "score.py").write_text(RELOADED.format(answer="second"))
        monkeypatch.chdir(tmp_path.parent)  # copied again from where it was deployed from, not from here
        local.reload()
        assert local.run("{}") == ["second", "hello"]
        port = free_port()
        local.update(deployment_config=LocalWebservice.deploy_configuration(port=port))
        assert local.port == port and local.run("{}") == ["second", "hello"]
        with pytest.raises(WebserviceException, match="LocalWebserviceDeploymentConfiguration"):
            local.update(deployment_config=OPEN)
        with pytest.raises(WebserviceException, match="needs an Azure ML workspace"):
            local.deploy_to_cloud()
        # The notebook's deploy cell run again: the SDK replaces a local service of that name, overwrite or not.
        monkeypatch.chdir(tmp_path)
        local = Model.deploy(
            env["workspace"], "reloaded", [env["model"]], config, LocalWebservice.deploy_configuration()
        )
        assert local.run("{}") == ["second", "hello"]
        listed = LocalWebservice.list(env["workspace"])  # local services alone, as the SDK's lists its containers
        assert "reloaded" in [each.name for each in listed] and {each.compute_type for each in listed} == {"Local"}
    finally:
        local.delete()
    with pytest.raises(WebserviceException, match=r"Cannot call run\(\) when service is deleted"):  # the SDK's guard
        local.run("{}")


LAID_OUT = """
import json
from greeting import greet

def init():
    global name
    with open("./source_directory/data.json") as f:
        name = json.load(f)["name"]

def run(data):
    return greet(name)
"""


def test_the_source_directory_lands_in_a_folder_of_its_own_name_as_on_azure(env, tmp_path):
    """What register-model-deploy-local-advanced.ipynb relies on (and the SDK's InferenceConfig sets up for
    Azure's image): the entry script x/y/score.py reads ./<source directory>/data.json from the app's root, and
    imports a module at the top of the source directory."""
    source = tmp_path / "source_directory"
    (source / "x" / "y").mkdir(parents=True)
    (source / "data.json").write_text('{"name": "Mrudula"}')
    (source / "greeting.py").write_text("def greet(name):\n    return 'Hello ' + name\n")
    (source / "x" / "y" / "score.py").write_text(LAID_OUT)
    config = InferenceConfig(entry_script="x/y/score.py", source_directory=str(source))
    service = Model.deploy(env["workspace"], "laid-out", [env["model"]], config, OPEN)
    service.wait_for_deployment()
    try:
        assert service.run("{}") == "Hello Mrudula"
    finally:
        service.delete()


def test_the_app_is_copied_as_a_snapshot_never_with_the_workspace_inside_it(tmp_path):
    (tmp_path / "score.py").write_text("def init():\n    pass\n")
    (tmp_path / "__pycache__").mkdir()
    backend = WorkspaceFolder.open(tmp_path / ".azureml-offline")  # the notebook's folder holds its workspace
    service = backend.service("copied")
    config = InferenceConfig(entry_script="score.py", source_directory=str(tmp_path))
    # As Azure lays it out: the source directory as a folder of its own name (AZUREML_SOURCE_DIRECTORY).
    assert copy_app(service, backend, config)["entryScript"] == f"{tmp_path.name}/score.py"
    assert sorted(p.name for p in (service.app / tmp_path.name).iterdir()) == ["score.py"]


def test_names_are_checked_as_the_sdk_does(service, env):
    with pytest.raises(WebserviceException, match="provided service name is invalid"):
        Model.deploy(env["workspace"], "Bad_Name", [env["model"]], inference_config(env), OPEN)
    with pytest.raises(WebserviceException, match="with the same name already exists"):
        Model.deploy(env["workspace"], "mnist-auth", [env["model"]], inference_config(env), OPEN)


def test_a_damaged_service_record_hides_no_other_service(service, tmp_path):
    # A copy of the shared service's record in a workspace of this test's own (its server is not touched), beside
    # a service.json cut short and a service folder without one (a deletion that stopped half-way).
    folder = WorkspaceFolder.open(tmp_path / "workspace")
    shutil.copytree(backend_of(service).service(service.name).path, folder.service(service.name).path)
    folder.service("cut-short").path.mkdir()
    folder.service("cut-short").definition.write_text('{"name": "cut-sh')
    folder.service("half-deleted").path.mkdir()
    with pytest.warns(DamagedRecordWarning, match="cut-short"):
        assert list(workspace_at(folder.root).webservices) == [service.name]


@pytest.mark.parametrize("damage", [shutil.rmtree, lambda files: [path.unlink() for path in files.iterdir()]])
def test_deploying_a_model_whose_files_are_gone_says_which_and_leaves_no_service(env, tmp_path, damage):
    workspace = workspace_at(tmp_path / "workspace")
    with contextlib.chdir(tmp_path):
        model = Model.register(workspace, env["model"].download("model"), "chainer-dnn-mnist")
    files = backend_of(workspace).folder.model_entry(model.name, model.version).parent
    damage(files)  # the folder removed, or emptied
    with pytest.raises(UserErrorException, match=f"{files} is damaged"):
        Model.deploy(workspace, "no-model", [model], inference_config(env), OPEN)
    assert workspace.webservices == {}


# A scoring script whose init() starts a helper in a session of its own, out of the server's process group.
SPAWNING = """
import signal, subprocess, sys, time
def init():
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    with open("helpers.txt", "a") as pids:
        pids.write(f"{helper.pid}\\n")
def run(data):
    return "ok"
"""


def test_delete_stops_what_init_started_in_a_session_of_its_own(env, own_source):
    (own_source / "spawning.py").write_text(SPAWNING)
    config = inference_config(env, "spawning.py", own_source)
    service = Model.deploy(env["workspace"], "spawning", [env["model"]], config, OPEN)
    service.wait_for_deployment()
    helpers = [int(pid) for pid in (backend_of(service).service("spawning").app / "helpers.txt").read_text().split()]
    assert helpers and all(alive(pid) for pid in helpers)
    service.delete()
    eventually(lambda: not any(alive(pid) for pid in helpers))


# As SPAWNING, but only the first worker's init() returns; the other's raises when the server stops it (SIGTERM):
# that worker fails to boot while gunicorn stops, which ends gunicorn's stop with an exception.
SPAWNING_THEN_FAILING = SPAWNING.replace(
    "def run(data):",
    """    try:
        open("booted", "x").close()
    except FileExistsError:
        def stopped(signum, frame):
            raise RuntimeError("stopped while booting")
        signal.signal(signal.SIGTERM, stopped)
        time.sleep(600)
def run(data):""",
)


@pytest.mark.parametrize(
    "name, script",
    [("spawning-booted", SPAWNING), ("spawning-failing", SPAWNING_THEN_FAILING)],
    ids=["booted", "failing"],
)
def test_a_server_that_ends_by_itself_stops_what_init_started_in_a_session_of_its_own(env, own_source, name, script):
    (own_source / "spawning.py").write_text(script)
    config = inference_config(env, "spawning.py", own_source)
    service = Model.deploy(env["workspace"], name, [env["model"]], config, OPEN)
    service.wait_for_deployment()
    folder = backend_of(service).service(name)
    eventually(lambda: len((folder.app / "helpers.txt").read_text().split()) == WORKERS)  # each in init()
    helpers = [int(pid) for pid in (folder.app / "helpers.txt").read_text().split()]
    assert all(alive(pid) for pid in helpers)
    server = json.loads(folder.server.read_text())["pid"]
    shutil.rmtree(folder.path)  # the service's folder is gone: its server stops by itself, and all it started
    eventually(lambda: not alive(server))
    eventually(lambda: not any(alive(pid) for pid in helpers), seconds=5)


def test_delete_stops_the_workers_of_a_server_whose_master_was_killed(env):
    service = Model.deploy(env["workspace"], "orphans", [env["model"]], inference_config(env), OPEN)
    service.wait_for_deployment()
    folder = backend_of(service).service("orphans")
    master = json.loads(folder.server.read_text())["pid"]
    os.kill(master, signal.SIGKILL)
    eventually(lambda: not alive(master))
    assert server_processes(folder.path)  # its workers, orphaned
    service.update_deployment_state()
    # What happened, not the last line of the log (before: "Booting worker ...", given as the error).
    assert service.state == "Failed"
    assert service.error["message"].startswith("The server process was killed by signal 9 (Killed); its log ends:")
    service.delete()
    eventually(lambda: not server_processes(folder.path))


def test_the_sdks_class_members_list_check_and_serialize_services(service, env):
    workspace, model_id = env["workspace"], env["model"].id
    assert service.name in [each.name for each in Webservice.list(workspace)]
    for filters in ({"compute_type": "aci"}, {"model_name": "chainer-dnn-mnist"}, {"model_id": model_id}):
        assert service.name in [each.name for each in Webservice.list(workspace, **filters)], filters
    for filters in ({"compute_type": "AKS"}, {"model_name": "another"}, {"tags": ["absent"]}, {"image_id": "x"}):
        assert Webservice.list(workspace, **filters) == [], filters
    with pytest.raises(WebserviceException, match="Invalid compute type"):
        Webservice.list(workspace, compute_type="GPU")
    with pytest.raises(WebserviceException, match="already exists"):
        Webservice.check_for_existing_webservice(workspace, service.name)
    Webservice.check_for_existing_webservice(workspace, service.name, overwrite=True)
    Webservice.check_for_existing_webservice(workspace, "no-such-service")
    payload = service.serialize()
    assert (payload["name"], payload["computeType"], payload["state"]) == (service.name, "ACI", "Healthy")
    assert payload["scoringUri"] == service.scoring_uri
    assert AciWebservice.deserialize(workspace, payload).scoring_uri == service.scoring_uri
    with pytest.raises(WebserviceException, match="computeType is not Local"):
        LocalWebservice.deserialize(workspace, payload)
    with pytest.raises(WebserviceException, match="needs an Azure ML workspace"):
        Webservice.deploy_from_image(workspace, "other", image=None)
    with pytest.raises(NotImplementedError, match="Token Authentication"):
        service.get_token()
    # As the SDK's: only deploy() or update() start an operation to follow; a service found by name has none.
    with pytest.raises(WebserviceException, match="unable to poll. Current state is Healthy"):
        Webservice(workspace, service.name).wait_for_deployment()


def test_tags_and_properties_are_added_and_removed_as_the_sdk_does(own_service):
    own_service.add_tags({"stage": "test", "owner": "me"})
    own_service.remove_tags("owner")
    own_service.add_properties({"approved": "yes"})
    found = Webservice(own_service.workspace, own_service.name)
    assert found.tags == {"stage": "test"}
    assert found.properties["approved"] == "yes"
    assert [each.name for each in Webservice.list(own_service.workspace, tags=[["stage", "test"]])] == [found.name]
    assert found.updated_time > found.created_time  # datetimes, as the SDK's
    with pytest.raises(WebserviceException, match="No parameters provided to update"):  # the SDK's checks
        found.update()
    with pytest.raises(WebserviceException, match='both "models" and "inference_config"'):
        found.update(models=[Model(found.workspace, id=found.models[0])])


def test_a_service_has_the_sdk_s_attributes(service, env):
    """Those that the SDK's Webservice and AciWebservice set, read from the installed SDK's source."""
    sdk = {
        name
        for sdk_class in (SdkWebservice, SdkAciWebservice)
        for name in re.findall(r"self\.([a-z]\w*) = ", inspect.getsource(sdk_class))
    }
    assert sorted(name for name in sdk if not hasattr(service, name)) == []
    assert service.environment is None and service.container_resource_requirements.cpu == 1  # as deployed (ACI)
