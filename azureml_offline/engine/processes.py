"""Linux process control for the offline workspace: the environment of the processes it starts, and finding and
stopping process trees (psutil), so that nothing a run's script or a web service starts outlives it.

A script's processes may leave its process group, even its session (setsid, daemons), and may ignore
SIGTERM. The runner is their subreaper, so whatever they orphan becomes its child, and it stops every
descendant it has when the run ends. Should the runner itself be killed, each of them still carries the
run's folder in its environment (state.layout.RUN_DIR_VARIABLE): whoever finds the run's runner dead kills them.
"""

import ctypes
import os
import select
import signal
import sys
import time

import psutil

from . import openblas

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# The thread pools of NumPy's BLAS, OpenMP and numba: sized so that processes sharing the machine together use
# its cores, not each all of them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
POLL_SECONDS = 0.05


def child_environment(base=None, **changes):
    """The environment of a process the workspace starts: `base` (default: this process's) with `changes`, and
    the OpenBLAS kernel this CPU supports unless the environment names one already (openblas.py)."""
    env = dict(os.environ if base is None else base, **changes)
    env.update(openblas.setting(env))
    return env


def thread_environment(sharing, cores=None):
    """{variable: threads} for THREAD_VARIABLES when `sharing` processes run at once on this process's cores:
    cores // sharing each, at least one."""
    cores = cores or len(os.sched_getaffinity(0))
    return {name: str(max(1, cores // sharing)) for name in THREAD_VARIABLES}


def prctl(option, value):
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def become_subreaper():
    """Orphans among this process's descendants become its children (not init's), so it can stop them."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent():
    """For preexec_fn: this process gets SIGKILL when its parent dies (SIGKILL gives the parent no chance to act)."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def living(processes):
    """Those of `processes` (psutil.Process) that still run; a zombie has exited."""
    found = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


def alive(pid):
    """Whether process `pid` exists and is not a zombie."""
    try:
        return bool(living([psutil.Process(pid)]))
    except psutil.NoSuchProcess:
        return False


def descendants(pid):
    """The living descendants of process `pid`."""
    try:
        return living(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def group_members(pgid):
    """The living processes of process group `pgid` (those that left it are not found here)."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return living(members)


def start_time(pid):
    """When process `pid` started (seconds since the epoch), which tells it from a later one with its pid; None if
    it is gone or a zombie."""
    try:
        process = psutil.Process(pid)
        return process.create_time() if living([process]) else None
    except psutil.NoSuchProcess:
        return None


def how_it_ended(returncode):
    """A process's end, from Popen's returncode: "was killed by signal 9 (Killed)" or "exited with code 1"."""
    if returncode < 0:
        return f"was killed by signal {-returncode} ({signal.strsignal(-returncode)})"
    return f"exited with code {returncode}"


def wait_for_any(children, seconds):
    """Wait `seconds`, or less: until one of `children` (Popen objects of this process) exits."""
    fds, exits = [], select.poll()  # poll, not select: a kernel's fds can be numbered past select's limit
    try:
        for child in children:
            if child.poll() is not None:
                return
            fds.append(os.pidfd_open(child.pid))  # readable once the process has exited
            exits.register(fds[-1], select.POLLIN)
        exits.poll(seconds * 1000)
    except ProcessLookupError:  # reaped meanwhile: it has exited
        return
    except OSError:  # a kernel older than pidfds (Linux 5.3)
        time.sleep(seconds)
    finally:
        for fd in fds:
            os.close(fd)


def stop_group(find, grace_seconds, reap=lambda: None):
    """Stop the processes that find() returns (called again and again: new ones may appear as others exit):
    SIGTERM, then SIGKILL for those left after `grace_seconds`; return once find() finds none. reap() is called
    while waiting, for a caller that must collect its children's exit status."""
    signal_all(find(), signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while find() and time.monotonic() < deadline:
        reap()
        time.sleep(POLL_SECONDS)
    while True:
        left = find()
        if not left:
            break
        signal_all(left, signal.SIGKILL)
        time.sleep(POLL_SECONDS / 5)
        reap()
    reap()


def stop_descendants(script, grace_seconds):
    """Stop every descendant of this process (see stop_group). `script` (a Popen, this process's child) is waited
    for, so its returncode stays known; the other children are reaped."""
    stop_group(lambda: descendants(os.getpid()), grace_seconds, lambda: reap(script))
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


def signal_all(processes, signum):
    for process in processes:
        try:
            process.send_signal(signum)
        except psutil.NoSuchProcess:
            pass


def kill_marked(variable, value):
    """SIGKILL every process of this user whose environment has variable=value (what a dead runner left)."""
    marked = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get(variable) == value:
                marked.append(process)
        except psutil.Error:  # ended meanwhile, or another user's
            continue
    signal_all(marked, signal.SIGKILL)
