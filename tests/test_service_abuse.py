"""A web service under hostile but ordinary use: clients that hold connections or send slowly, a source folder that
cannot be copied, an init() or run() that never returns, JSON nested past any parser's depth."""

import http.client
import json
import os
import socket
import threading
import time

import pytest
import requests
import test_webservice
from azureml.exceptions import WebserviceException
from test_webservice import OPEN, inference_config, payload

from azureml_offline import webservice
from azureml_offline.engine import server
from azureml_offline.model import Model
from azureml_offline.webservice import Webservice

env, own_source = test_webservice.env, test_webservice.own_source  # its fixtures: a workspace with a model, a source
HANGING = "import time\ndef init():\n    {init}\ndef run(data):\n    {run}\n"


@pytest.fixture(scope="module")
def service(env):
    service = Model.deploy(env["workspace"], "abused", [env["model"]], inference_config(env), OPEN)
    service.wait_for_deployment()
    yield service
    service.delete()


def connect(service):
    host, port = service.scoring_uri.split("/")[2].split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def idle(service, stop):
    """A client that connects and sends nothing."""
    with connect(service):
        stop.wait()


def kept_alive(service, stop):
    """A client that is answered once and then keeps its connection open, sending nothing."""
    with connect(service) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        client.recv(4096)
        stop.wait()


def dripping(head, message):
    def client(service, stop):
        """A client that sends `head`, then `message` at one byte a second."""
        with connect(service) as sending:
            sending.sendall(head)
            for byte in message:
                if stop.wait(1):
                    return
                try:
                    sending.sendall(bytes([byte]))
                except OSError:  # the server gave up on it
                    return

    return client


SCORE = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
ABUSERS = {
    "2 idle": (2, idle),
    "2 sending their body at a byte a second": (
        2,
        dripping(SCORE + b"Content-Length: 99\r\n\r\n", b"{" * 99),
    ),
    "2 sending their headers at a byte a second": (2, dripping(b"", SCORE + b"X-Padding: " + b"a" * 99)),
    "30 idle": (30, idle),
    "30 kept alive": (30, kept_alive),
}


@pytest.mark.parametrize("abusers", ABUSERS)
def test_clients_that_hold_connections_hold_up_no_request_nor_the_liveness(service, env, abusers):
    count, abuser = ABUSERS[abusers]
    stop = threading.Event()
    threads = [threading.Thread(target=abuser, args=(service, stop)) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)  # the abusers are connected
        start = time.monotonic()
        response = requests.post(
            service.scoring_uri,
            data=payload(env["images"][:1]),
            headers={"Content-Type": "application/json"},
            timeout=5,
        )
        assert response.status_code == 200 and response.json()[0]["digit"] == env["expected"][0]
        assert time.monotonic() - start < 2
        service.update_deployment_state()
        assert service.state == "Healthy"
    finally:
        stop.set()
        for thread in threads:
            thread.join()


@pytest.mark.timeout(60)
def test_slow_clients_beyond_the_threads_hold_them_only_until_the_read_deadline(env, monkeypatch):
    # One worker with one thread: both slow clients are ahead of the request, whatever the kernel's choice of worker.
    monkeypatch.setattr(server, "WORKERS", 1)
    monkeypatch.setattr(server, "THREADS", 1)
    monkeypatch.setattr(server, "READ_SECONDS", 1)
    monkeypatch.setattr(webservice, "REQUEST_SECONDS", 15)  # the slow clients ahead, cut off one deadline each
    service = Model.deploy(env["workspace"], "deadline", [env["model"]], inference_config(env), OPEN)
    service.wait_for_deployment()
    stop = threading.Event()
    body = dripping(SCORE + b"Content-Length: 99\r\n\r\n", b"{" * 99)  # far longer to send than the request waits
    threads = [threading.Thread(target=body, args=(service, stop)) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)  # the thread reads one slow client's body; the other waits for it
        assert service.run(payload(env["images"][:1]))[0]["digit"] == env["expected"][0]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        service.delete()


@pytest.mark.parametrize(
    "uncopyable", [lambda path: path.symlink_to(path.with_name("nowhere")), os.mkfifo], ids=["dangling link", "pipe"]
)
def test_an_update_whose_source_cannot_be_copied_leaves_the_old_server_serving(env, own_source, uncopyable):
    service = Model.deploy(env["workspace"], "kept", [env["model"]], inference_config(env), OPEN)
    service.wait_for_deployment()
    try:
        uncopyable(own_source / "weights.npz")
        with pytest.raises(WebserviceException, match="weights.npz") as raised:
            service.update(models=[env["model"]], inference_config=inference_config(env, source=own_source))
        assert "\n" not in raised.value.message
        found = Webservice(env["workspace"], "kept")
        assert found.state == "Healthy"
        assert found.run(payload(env["images"][:1]))[0]["digit"] == env["expected"][0]
    finally:
        service.delete()


@pytest.mark.timeout(60)
def test_an_init_that_never_returns_fails_within_the_worker_timeout(env, own_source, monkeypatch):
    monkeypatch.setenv("WORKER_TIMEOUT", "3")  # azmlinfsrv's own setting: see docs/deployment.md
    (own_source / "hanging.py").write_text(HANGING.format(init="time.sleep(600)", run="return data"))
    service = Model.deploy(env["workspace"], "hanging-init", [], inference_config(env, "hanging.py", own_source), OPEN)
    try:
        start = time.monotonic()
        with pytest.raises(WebserviceException, match="current service state: Failed") as raised:
            service.wait_for_deployment()
        assert time.monotonic() - start < 30
        assert "init() did not finish within 3 s" in str(raised.value)
    finally:
        service.delete()


@pytest.mark.timeout(60)
def test_run_on_a_run_that_never_returns_raises_within_the_request_timeout(env, own_source, monkeypatch):
    monkeypatch.setattr(webservice, "REQUEST_SECONDS", 2)
    (own_source / "hanging.py").write_text(HANGING.format(init="pass", run="time.sleep(600)"))
    service = Model.deploy(env["workspace"], "hanging-run", [], inference_config(env, "hanging.py", own_source), OPEN)
    try:
        service.wait_for_deployment()
        start = time.monotonic()
        with pytest.raises(WebserviceException, match="no answer within 2 s"):
            service.run("{}")
        assert time.monotonic() - start < 10
        service.update_deployment_state()
        assert service.state == "Healthy"  # the server still answers: only one of its threads hangs
    finally:
        service.delete()


DEEP = "[" * 10_000 + "]" * 10_000


def sent(service, method, url, body=None):
    """(status, JSON answer) of a request sent as it is: brackets in the URL are not quoted, as requests would."""
    host, port = service.scoring_uri.split("/")[2].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, url, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "method, url, body",
    [
        ("POST", "/score", f'{{"data": {DEEP}}}'),
        ("GET", "/score?data=" + "[" * 1500 + "]" * 1500, None),  # as deep as a request line allows
    ],
    ids=["body", "query"],
)
def test_json_nested_past_the_parsers_depth_is_a_400(service, env, method, url, body):
    status, answer = sent(service, method, url, body)
    assert status == 400 and "nested too deeply" in json.loads(answer)["message"], answer
    assert service.run(payload(env["images"][:1]))[0]["digit"] == env["expected"][0]
