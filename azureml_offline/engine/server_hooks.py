"""gunicorn settings and hooks of an offline web service's azmlinfsrv (it reads them through GUNICORN_CMD_ARGS).

azmlinfsrv runs its Flask app in gunicorn as it does in Azure's container. These hooks add what the offline
service needs around it, and change nothing in the app itself:
  - listen on loopback only: azmlinfsrv binds 0.0.0.0, right in a container, not on a workstation;
  - the key check of an auth-enabled service (401 without it), done by Azure's front end before a request
    reaches the container, and a cap on the request body (413), so that a huge body is refused unparsed;
  - a `ready` file once a worker has run init(), and a stop once the service's folder is gone
    (deleted, or its workspace removed), so no server, nor what its workers started, outlives its service;
  - threaded workers, where a client that connects and sends nothing holds no thread (ThreadWorker) and one that
    sends slowly holds one thread, not a worker, for a bounded time; an init() bounded by the worker timeout;
    JSON nested deeper than the parser goes answered 400, not 500.
The deploying process passes the files through environment variables (server.start).
"""

import atexit
import contextlib
import json
import os
import selectors
import signal
import socket
import threading
import time
from functools import partial

from gunicorn.workers import gthread

from azureml_offline.engine import processes

DEFINITION = os.environ["AZUREML_OFFLINE_SERVICE_DEFINITION"]  # service.json; gone: stop
SERVICE_ID = os.environ["AZUREML_OFFLINE_SERVICE_ID"]  # ... or holding another deployment's id: stop
KEYS = os.environ["AZUREML_OFFLINE_SERVICE_KEYS"]
READY = os.environ["AZUREML_OFFLINE_SERVICE_READY"]
MAX_BODY_BYTES = int(os.environ["AZUREML_OFFLINE_SERVICE_MAX_BODY"])
DRAIN_LIMIT_BYTES = MAX_BODY_BYTES + (28 << 20)  # a rejected body is read (and dropped) up to this size first
WATCH_SECONDS = 1.0

control_socket_disable = True  # gunicorn 24+ would share one control socket in ~/.gunicorn between services
graceful_timeout = 2  # delete(): requests in flight get this long to finish (scoring takes milliseconds)
threads = int(os.environ["AZUREML_OFFLINE_SERVICE_THREADS"])  # per worker: requests in flight, slow clients too
READ_SECONDS = float(os.environ["AZUREML_OFFLINE_SERVICE_READ_SECONDS"])  # for a request to be read: ThreadWorker


class ThreadWorker(gthread.ThreadWorker):
    """gunicorn's threaded worker, but a new connection waits in the worker's poller (as a kept-alive one does)
    until it has sent something, for at most the keep-alive timeout: gunicorn's own gives it a thread meanwhile,
    so that a few clients that connect and send nothing would hold every thread. And READ_SECONDS after a
    thread took a request, its socket's reading is shut down: a client that sends slowly holds its thread that
    long at most, not for as long as it keeps sending (a run() that takes longer still answers; its connection
    is then not kept alive)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reading = {}  # connection -> when its request must have arrived

    def handle(self, conn):
        self.reading[conn] = time.monotonic() + READ_SECONDS
        try:
            return super().handle(conn)
        finally:
            del self.reading[conn]

    def murder_keepalived(self, force=False):
        """gunicorn's worker loop calls this each time round: the read deadlines are checked here too."""
        super().murder_keepalived(force)
        now = time.monotonic()
        for conn, deadline in self.reading.copy().items():  # a copy: the threads add and remove connections
            if now > deadline:
                with contextlib.suppress(OSError):  # closed meanwhile
                    conn.sock.shutdown(socket.SHUT_RD)  # a read in progress returns at once, with nothing

    def enqueue_req(self, conn):
        if conn.initialized or conn.data_ready:
            super().enqueue_req(conn)
            return
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))


worker_class = ThreadWorker


def on_starting(server):
    server.cfg.set("bind", [f"127.0.0.1:{os.environ['SERVER_PORT']}"])
    processes.become_subreaper()  # what a worker starts stays below the master when the worker exits
    # At the master's exit, not in gunicorn's on_exit hook, which a worker failing to boot while gunicorn stops
    # skips (its stop raises).
    atexit.register(stop_what_is_left, os.getpid(), server.cfg.graceful_timeout)


def stop_what_is_left(master, grace_seconds):
    """What init() or run() started and left running (in a session of its own, say) became the master's children,
    its subreaper's, when their worker exited: they end with the server, however it stops (delete(), its folder
    gone, a worker that failed to boot). The workers, forked from the master, inherit this and do nothing. A
    master that is killed runs nothing: delete() stops them then."""
    if os.getpid() == master:
        processes.stop_group(lambda: processes.descendants(master), grace_seconds)


def when_ready(server):
    threading.Thread(target=stop_when_service_is_gone, daemon=True).start()


def post_fork(server, worker):
    # gunicorn's first heartbeat comes from the worker's request loop, after init(): without this one the worker
    # timeout never bounds init(), and an init() that never returns leaves the service Transitioning for ever.
    worker.notify()


def worker_abort(worker):
    """The worker timeout has passed. Before init() returned, this fails init() as an exception of its own would:
    the worker fails to boot and the server stops, as a deployment on Azure fails."""
    if not worker.booted:
        raise TimeoutError(
            f"init() did not finish within {worker.cfg.timeout:g} s, the server's worker timeout "
            f"(the environment variable WORKER_TIMEOUT)"
        )


def post_worker_init(worker):
    app = worker.wsgi
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES  # also bounds chunked bodies, which have no length
    # json.loads raises RecursionError on deep nesting, which azmlinfsrv answers 500; its blueprints' handler of
    # every Exception comes before the app's, so the handler goes in every scope.
    for scope in (None, *app.blueprints):
        app.error_handler_spec[scope][None][RecursionError] = too_deep
    worker.wsgi = Gate(app)
    with open(READY, "w"):
        pass


def too_deep(error):
    return {"message": f"the JSON is nested too deeply to be parsed ({error})"}, 400


def stop_when_service_is_gone():
    while True:
        time.sleep(WATCH_SECONDS)
        try:
            with open(DEFINITION) as f:
                if json.load(f)["serviceId"] == SERVICE_ID:
                    continue
        except (OSError, ValueError, KeyError):
            pass
        os.kill(os.getpid(), signal.SIGTERM)  # gunicorn's graceful stop
        return


class Gate:
    """WSGI middleware in front of azmlinfsrv's app: a size cap on /score bodies, then the key check."""

    def __init__(self, app):
        self.app = app
        self.keys_stat = None
        self.accepted = set()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != "/score":  # liveness and Swagger are open, as on Azure
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY_BYTES:
            return self.reject(
                environ,
                start_response,
                "413 Request Entity Too Large",
                f"the request body has {length} bytes; at most {MAX_BODY_BYTES} are accepted",
            )
        accepted = self.current_keys()
        if accepted and environ.get("HTTP_AUTHORIZATION") not in accepted:
            return self.reject(
                environ,
                start_response,
                "401 Unauthorized",
                "this service needs the header 'Authorization: Bearer <key>' with one of its keys (service.get_keys())",
            )
        return self.app(environ, start_response)

    def current_keys(self):
        """The accepted Authorization headers; empty when auth is off. Re-read when keys.json is replaced."""
        stat = os.stat(KEYS)
        if (stat.st_ino, stat.st_mtime_ns) != self.keys_stat:
            with open(KEYS) as f:
                keys = json.load(f)
            self.accepted = (
                {f"Bearer {keys[k]}" for k in ("primaryKey", "secondaryKey")} if keys["authEnabled"] else set()
            )
            self.keys_stat = (stat.st_ino, stat.st_mtime_ns)
        return self.accepted

    @staticmethod
    def reject(environ, start_response, status, message):
        # Read the body first: closing a socket with unread data resets it, and the client may then
        # never see this answer.
        body, left = environ["wsgi.input"], min(int(environ.get("CONTENT_LENGTH") or 0), DRAIN_LIMIT_BYTES)
        while left > 0:
            chunk = body.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
        data = json.dumps({"message": message}).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
