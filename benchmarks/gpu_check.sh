#!/usr/bin/env bash
# The GPU path of chainer_mnist.py (--device 0, CuPy), proven in one go on a bare Linux machine with an NVIDIA GPU
# and its driver (e.g. an H100 or H200), with nothing reachable but the package registries. Under 8 minutes:
#   1. a virtual environment like the Azure ML job's (job-environment.yml): Python 3.11, NumPy 1.26, Chainer 7.8.1,
#      numba, pooch, azureml-core, and CuPy 13 for CUDA 11.x, with the CUDA 11.8 libraries it loads, from PyPI;
#   2. the GPU tests (pytest -m gpu): one training step on the GPU against the CPU from the same weights (the
#      largest parameter difference is printed), and a run on the GPU whose model the CPU loads;
#   3. the script for a few epochs on the GPU and on the CPU, from the same seed: seconds per epoch and accuracy.
#
#   MNIST_DIR=/path/to/mnist bash benchmarks/gpu_check.sh [EPOCHS]
#
# MNIST_DIR: the four MNIST files (default: ../shared/data/mnist, else a synthetic stand-in of MNIST's size, for
# timings only). GPU_VENV: where to build the environment (default: build/gpu-check/venv). Outputs: build/gpu-check/.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-3}
VENV=$(realpath -m "${GPU_VENV:-build/gpu-check/venv}")
started=$SECONDS
say() { printf '\n== %s (%d s)\n' "$*" $((SECONDS - started)); }

say "GPU and driver"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

if [ ! -x "$VENV/bin/python" ]; then
    say "Python 3.11 and the environment in $VENV"
    PYTHON=$(command -v python3.11 || true)
    if [ -z "$PYTHON" ] && command -v apt-get >/dev/null; then  # Chainer 7.8.1 needs Python 3.11 exactly.
        apt-get update -qq && apt-get install -y -qq python3.11 python3.11-venv >/dev/null
        PYTHON=$(command -v python3.11)
    fi
    [ -n "$PYTHON" ] || { echo "Python 3.11 is needed (Chainer 7.8.1 does not run on 3.12)"; exit 1; }
    mkdir -p "$(dirname "$VENV")" && "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip install -q --disable-pip-version-check"
$PIP --upgrade pip
$PIP "setuptools<74" wheel "numpy>=1.26,<2"
$PIP --no-build-isolation chainer==7.8.1  # An sdist whose setup.py needs pkg_resources: as the Makefile builds it.
# The job's packages (job-environment.yml), CuPy 13 for CUDA 11.x (the job's base image has CUDA 11.8), and the
# CUDA 11.8 libraries from PyPI that the wheel links to (it carries the CUDA runtime itself): NVRTC compiles
# CuPy's kernels, cuBLAS the matrix products, cuRAND, cuSOLVER and cuSPARSE load with the modules Chainer imports.
# No cuDNN: an MLP does not use it. Then what the tests import.
$PIP "numba>=0.60" "pooch>=1.8" azureml-core==1.61.0.post4 "cupy-cuda11x>=13,<14" \
    nvidia-cuda-runtime-cu11==11.8.89 nvidia-cuda-nvrtc-cu11==11.8.89 nvidia-cublas-cu11==11.11.3.6 \
    nvidia-curand-cu11==10.3.0.86 nvidia-cusolver-cu11==11.4.1.48 nvidia-cusparse-cu11==11.7.5.86 \
    nvidia-cufft-cu11==10.9.0.58 \
    "pytest>=8" "pytest-timeout>=2" matplotlib pyyaml "setuptools<74" "numpy>=1.26,<2"
# CuPy 13 finds the CUDA 11 libraries through the dynamic loader only (not in these wheels' folders).
LD_LIBRARY_PATH=$(echo "$VENV"/lib/python3.11/site-packages/nvidia/*/lib | tr ' ' ':')${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
PY="$VENV/bin/python"
$PY -c "import chainer, cupy; print('Chainer', chainer.__version__, '| CuPy', cupy.__version__, '| CUDA runtime',
    cupy.cuda.runtime.runtimeGetVersion(), '| chainer.backends.cuda.available:', chainer.backends.cuda.available)"

say "GPU tests"
$PY -m pytest tests/test_chainer_mnist.py -m gpu -p no:cacheprovider -q -s -rs

say "MNIST"
MNIST_DIR=${MNIST_DIR:-../shared/data/mnist}
if [ ! -d "$MNIST_DIR" ]; then  # Not a download: where the internet is cut off, each try would wait a minute.
    echo "No MNIST at $MNIST_DIR: a synthetic stand-in of its size (the timings hold, the accuracy does not)"
    MNIST_DIR=build/gpu-check/mnist
    $PY tests/synthetic_mnist.py "$MNIST_DIR" --train 60000 --test 10000 >/dev/null
fi
echo "$MNIST_DIR"

say "$EPOCHS epochs on the GPU and on the CPU, seed 0, the defaults (784-1000-1000-10, batch 128)"
mkdir -p build/gpu-check
for device in 0 -1; do
    $PY chainer_mnist.py --data-dir "$MNIST_DIR" --epochs "$EPOCHS" --device $device --no-resume \
        -o "build/gpu-check/device$device" | grep -E "^(OpenBLAS|Device|epoch|Saved)" | tee "build/gpu-check/device$device.log"
done
$PY - <<'EOF'
import re, statistics
for device, name in ((0, "GPU"), (-1, "CPU")):
    log = open(f"build/gpu-check/device{device}.log").read()
    seconds = [float(s) for s in re.findall(r"^epoch .* ([\d.]+) s$", log, re.M)]
    accuracy = re.findall(r"accuracy ([\d.]+)\)$", log, re.M)[-1]
    print(f"{name}: {statistics.median(seconds[1:] or seconds):.2f} s per epoch (median after the first, "
          f"which compiles kernels), test accuracy {accuracy} after {len(seconds)} epochs")
print("Goal on an H100/H200: <= 0.5 s per epoch on the GPU")
EOF
say "done"
