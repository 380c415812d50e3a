import collections
import gc
import os

import pytest
from synthetic_mnist import write_dataset

import azureml_offline
from azureml_offline.engine.processes import thread_environment
from azureml_offline.workspace import Workspace

# The lessons' nbval runs and the MPI jobs take the longest: started first, they overlap the rest of the suite on the
# other workers. The other modules follow, those with the most tests first (as xdist orders them unless told not
# to, as pyproject does). pytest-random-order shuffles after this hook; pytest-reverse reverses before it.
SLOWEST_FIRST = (
    "test_notebook.py",
    "test_notebook_distributed.py",
    "test_notebook_deploy.py",
    "test_chainer_mnist_mpi.py",
)


def pytest_configure(config):
    """xdist's workers share the machine's cores as a sweep's children do: each, and what it starts, gets
    cores // workers threads per pool, unless the environment names a number. Set before the workers start, so
    that NumPy's OpenBLAS reads it when it loads; without it, each worker's pools would spin for every core."""
    workers = config.getoption("numprocesses", None)
    if workers and not hasattr(config, "workerinput"):
        for name, value in thread_environment(workers).items():
            os.environ.setdefault(name, value)


def pytest_collection_modifyitems(config, items):
    if not config.getoption("reverse", False):
        tests = collections.Counter(item.path for item in items)
        items.sort(key=lambda item: (item.path.name not in SLOWEST_FIRST, -tests[item.path]))


def pytest_collection_finish(session):
    """The modules collection imports (the SDK's above all) leave objects that live as long as the process: frozen,
    the garbage collector no longer walks them on each full collection, nor at the end of the run."""
    gc.freeze()


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A small, learnable MNIST-format data set (no network, no ../shared)."""
    return write_dataset(tmp_path_factory.mktemp("mnist"), n_train=2000, n_test=500)


@pytest.fixture(scope="session")
def lesson_mnist_dir(tmp_path_factory):
    """A smaller one for the lessons under nbval, which train many times (lesson 01 three times, lesson 02's
    sweep eight children) and whose outputs mask every figure that depends on the data."""
    return write_dataset(tmp_path_factory.mktemp("lesson-mnist"), n_train=1000, n_test=250)


@pytest.fixture
def fresh_workspace(tmp_path, monkeypatch):
    """An empty offline workspace of this test's own, also for the processes it starts (AZUREML_OFFLINE_DIR), with
    the test's folder as the working folder, where the SDK's Model.register takes model files from."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AZUREML_OFFLINE_DIR", str(tmp_path / "workspace"))
    return Workspace.from_config()


@pytest.fixture(autouse=True)
def real_sdk():
    """Every test starts and ends with the real SDK classes in place, whatever it switched on."""
    azureml_offline.deactivate()
    yield
    azureml_offline.deactivate()
