"""Linux process control for runs: nothing a run's script starts outlives the run.

A script's processes may leave its process group, even its session (setsid, daemons), and may ignore
SIGTERM. The runner is their subreaper, so whatever they orphan becomes its child, and it stops every
descendant it has when the run ends. Should the runner itself be killed, each of them still carries the
run's folder in its environment (backend.RUN_DIR_VARIABLE): whoever finds the run's runner dead kills them.
"""
import ctypes
import os
import signal
import sys
import time

from . import openblas

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def child_environment(base=None, **changes):
    """The environment of a process the workspace starts: `base` (default: this process's) with `changes`, and
    the OpenBLAS kernel this CPU supports unless the environment names one already (openblas.py)."""
    env = dict(os.environ if base is None else base, **changes)
    env.update(openblas.setting(env))
    return env


def prctl(option, value):
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def become_subreaper():
    """Orphans among this process's descendants become its children (not init's), so it can stop them."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent():
    """For preexec_fn: this process gets SIGKILL when its parent dies (SIGKILL gives the parent no chance to act)."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def descendants(pid):
    """The living (not zombie) descendants of `pid`, found through /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:  # it ended meanwhile
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_descendants(script, grace_seconds):
    """Stop every descendant of this process: SIGTERM, then SIGKILL for those left after `grace_seconds`.

    `script` (a Popen, this process's child) is waited for, so its returncode stays known; the other
    children are reaped.
    """
    signal_all(descendants(os.getpid()), signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while descendants(os.getpid()) and time.monotonic() < deadline:
        reap(script)
        time.sleep(0.05)
    while True:
        left = descendants(os.getpid())
        if not left:
            break
        signal_all(left, signal.SIGKILL)
        time.sleep(0.01)
        reap(script)
    script.wait()
    reap(script)


def reap(script):
    """Collect the exit status of ended children; the script's through its Popen, which keeps its returncode."""
    script.poll()
    while True:
        try:
            ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if ended is None:
            return
        if ended.si_pid == script.pid:
            script.poll()
        else:
            os.waitpid(ended.si_pid, 0)


def signal_all(pids, signum):
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def kill_marked(variable, value):
    """SIGKILL every process of this user whose environment has variable=value (what a dead runner left)."""
    marker = f"{variable}={value}".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as environ:
                    found = marker in environ.read().split(b"\0")
            except OSError:  # ended meanwhile, or another user's
                continue
            if found:
                signal_all([int(entry)], signal.SIGKILL)
