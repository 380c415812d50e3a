import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_mnist import write_dataset  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A small, learnable MNIST-format data set (no network, no ../shared)."""
    return write_dataset(tmp_path_factory.mktemp("mnist"), n_train=2000, n_test=500)
