"""Which OpenBLAS kernel a Python process should use, chosen from the CPU's flags.

NumPy's OpenBLAS picks its kernel by the CPU's model number, and on models newer than the build knows it falls
back to the slowest x86-64 kernel (Prescott, SSE3) even where AVX-512 or AVX2 is there. OPENBLAS_CORETYPE, read
once when OpenBLAS loads, names the kernel instead. Every process the offline workspace starts gets it
(processes.child_environment), unless the user set it (theirs wins) or the CPU supports none of these.

The kernel must be chosen before NumPy loads: in a notebook's kernel, azureml_offline.activate() sets it only
while NumPy is not imported yet; `env $(python -m azureml_offline.engine.openblas) jupyter ...` sets it for a
whole Jupyter server. `python -m azureml_offline.engine.openblas` prints `OPENBLAS_CORETYPE=<kernel>`, or
nothing when there is nothing to set.
"""

import os
import sys

VARIABLE = "OPENBLAS_CORETYPE"
CPUINFO = "/proc/cpuinfo"
CPUINFO_VARIABLE = "AZUREML_OFFLINE_CPUINFO"  # another CPU description to read instead (a stand-in, in tests)
# Best first: a kernel is chosen when the CPU has every flag it needs.
KERNELS = (
    ("SkylakeX", frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"})),
    ("Haswell", frozenset({"avx2", "fma"})),
)


def cpu_flags(path=None):
    """The CPU's feature flags, from the first `flags` line of /proc/cpuinfo (none where it is missing)."""
    path = path or os.environ.get(CPUINFO_VARIABLE) or CPUINFO
    try:
        with open(path) as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def kernel(flags=None):
    """The best kernel the CPU supports (e.g. "SkylakeX"), or None: OpenBLAS's own choice stands."""
    flags = cpu_flags() if flags is None else flags
    return next((name for name, needed in KERNELS if needed <= flags), None)


def setting(environ):
    """What a child process with environment `environ` should be given: {VARIABLE: kernel}, or {} when the
    environment already sets it (the user's choice) or the CPU supports no kernel of ours."""
    if environ.get(VARIABLE):
        return {}
    chosen = kernel()
    return {VARIABLE: chosen} if chosen else {}


def choose_for_this_process():
    """Set the kernel in os.environ if NumPy has not loaded yet (later it would change nothing); return the
    kernel in effect by the environment, or None."""
    if "numpy" not in sys.modules:
        os.environ.update(setting(os.environ))
    return os.environ.get(VARIABLE)


def main():
    for name, value in setting(os.environ).items():
        print(f"{name}={value}")


if __name__ == "__main__":
    main()
