# Two entry points (see README): `make demo` and `make test`. Both set up .venv first, with the
# exact versions in constraints.txt (what CI and the benchmarks ran with).
# `make test-latest` installs the newest versions pyproject.toml allows into .venv-latest (no
# constraints) and runs the tests whose verdicts depend on them: drift shows up here first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LATEST := .venv-latest
EXTRAS := .[train,cpu,dev]
VERDICT_TESTS := tests/runtime/verify/test_geometric.py tests/export/test_calibration.py tests/runtime/image/test_image_io.py \
	tests/training/test_simulator.py

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '$(EXTRAS)'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/sitelens demo --out out/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

test-latest:
	$(PY) -m venv $(LATEST)
	$(LATEST)/bin/pip install -q --upgrade pip
	$(LATEST)/bin/pip install -q --upgrade --upgrade-strategy eager -e '$(EXTRAS)'
	$(LATEST)/bin/python -c "from runtime.versions import installed; print(installed(build=True))"
	$(LATEST)/bin/python -m pytest -q $(VERDICT_TESTS)

.PHONY: setup demo test test-latest
