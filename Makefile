# Two commands for a fresh machine with Python 3.11 and pip: `make tutorial` and `make test`.
# Each creates .venv when it is missing (or when pyproject.toml changed).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: tutorial refresh-notebook test benchmark clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# Chainer 7.8.1 is an sdist whose setup.py imports pkg_resources, which setuptools 82 removed:
	# build it without build isolation, against a setuptools that still has it.
	$(BIN)/python -m pip install "setuptools<74" wheel "numpy>=1.26,<2"
	$(BIN)/python -m pip install --no-build-isolation chainer==7.8.1
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

# The notebook and its runs work in other folders: a relative MNIST_DIR must become absolute, also when it is
# given on make's command line (`make tutorial MNIST_DIR=...`), which only `override` can change.
ifdef MNIST_DIR
override MNIST_DIR := $(abspath $(MNIST_DIR))
export MNIST_DIR
endif

# OPENBLAS_CORETYPE=<the kernel this CPU supports>, or nothing where it is set already or there is none to set:
# NumPy's OpenBLAS falls back to its slowest kernel on CPUs newer than it knows, and reads this once, at load.
OPENBLAS = env $$($(abspath $(BIN))/python -m azureml_offline.engine.openblas)

# The lessons, in their order: 01-..., 02-..., each executed after the one before, in one workspace.
NOTEBOOKS := $(sort $(notdir $(wildcard notebooks/[0-9][0-9]-*.ipynb)))
# Headless, offline, cell by cell as a reader would; no per-cell time limit (training takes a minute on a CPU).
EXECUTE = $(OPENBLAS) AZUREML_OFFLINE=1 ../$(BIN)/jupyter nbconvert --to notebook --execute $(NOTEBOOKS) \
	--ExecutePreprocessor.timeout=-1 --ExecutePreprocessor.record_timing=False

tutorial: $(VENV)/.installed
	cd notebooks && $(EXECUTE) --output-dir ../build
	@echo "Executed notebooks: $(addprefix build/,$(NOTEBOOKS))"
	@echo "Downloaded model:  notebooks/model/model.npz (and model.json)"
	@echo "Offline workspace: notebooks/.azureml-offline (runs, logs, registered models)"

# Re-run the tutorial in a fresh offline workspace on real MNIST and keep its outputs in the committed notebook.
refresh-notebook: $(VENV)/.installed
	test -n "$$MNIST_DIR" || { echo "set MNIST_DIR to a folder with the four MNIST files"; exit 1; }
	rm -rf notebooks/.azureml-offline notebooks/model notebooks/chainer-mnist notebooks/chainer-mnist-service notebooks/chainer-mnist-distributed
	cd notebooks && unset AZUREML_OFFLINE_DIR && $(EXECUTE) --inplace

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(OPENBLAS) $(BIN)/python -m pytest

# chainer_mnist.py against PyTorch's CPU build (installed here, never by `make test`); see benchmarks/.
benchmark: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -m pip install -q --no-deps torch==2.13.0
	$(BIN)/python benchmarks/benchmark_epoch.py

clean:
	rm -rf $(VENV) outputs build notebooks/.azureml-offline notebooks/model notebooks/chainer-mnist notebooks/chainer-mnist-service notebooks/chainer-mnist-distributed
