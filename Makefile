# Two commands for a fresh machine with Python 3.11 and pip: `make tutorial` and `make test`.
# Each creates .venv when it is missing (or when pyproject.toml changed).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: tutorial test benchmark clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# Chainer 7.8.1 is an sdist whose setup.py imports pkg_resources, which setuptools 82 removed:
	# build it without build isolation, against a setuptools that still has it.
	$(BIN)/python -m pip install "setuptools<74" wheel "numpy>=1.26,<2"
	$(BIN)/python -m pip install --no-build-isolation chainer==7.8.1
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

tutorial: $(VENV)/.installed
	$(BIN)/python chainer_mnist.py

test: $(VENV)/.installed
	$(BIN)/python -m pytest

benchmark: $(VENV)/.installed
	$(BIN)/python benchmarks/benchmark_epoch.py

clean:
	rm -rf $(VENV) outputs build .azureml-offline
