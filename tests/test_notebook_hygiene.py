"""Committed notebooks hold no secrets, ids or paths of the machine that ran them."""

import re
import subprocess

import pytest
from helpers import REPO

FORBIDDEN = {
    "a GUID (subscription, tenant or run id)": r"\b[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b",
    "an absolute home or machine path": (
        r"(?<![\w.])(/(home|root|Users|work|tmp|mnt|opt|var)/[\w.-]+|[A-Za-z]:\\\\[\w.-]+)"
    ),
    "a storage key or SAS token": r"(AccountKey=|SharedAccessSignature=|[?&]sig=[\w%]{10,})",
    "a private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "a workspace configuration": r'\\?"subscription_id\\?"\s*:',
}


def problems(text):
    return [what for what, pattern in FORBIDDEN.items() if re.search(pattern, text)]


def committed_notebooks():
    names = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / name for name in names.stdout.split()]


@pytest.mark.parametrize("path", committed_notebooks(), ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    assert problems(path.read_text()) == []


def test_there_are_committed_notebooks():
    assert committed_notebooks(), "no notebook is committed"


@pytest.mark.parametrize(
    "text, what",
    [
        ('"text": "run 3f2b8c1e-9a7d-4e2f-8b1a-0c9d8e7f6a5b"', "a GUID (subscription, tenant or run id)"),
        ('"Downloaded to /home/alice/model.npz"', "an absolute home or machine path"),
        ('"C:\\\\Users\\\\alice"', "an absolute home or machine path"),
        ('"DefaultEndpointsProtocol=https;AccountKey=abc"', "a storage key or SAS token"),
        ('"{\\"subscription_id\\": \\"x\\", \\"resource_group\\": \\"rg\\"}"', "a workspace configuration"),
    ],
)
def test_each_kind_of_leak_is_caught(text, what):
    assert what in problems(text)


def test_relative_paths_and_urls_pass():
    assert problems('"Downloaded outputs/model.npz to ./model/model.npz from https://ml.azure.com/runs"') == []
