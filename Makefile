# disco-bench: `make install` then `make bench`. `make test` is what CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= tiny
SEEDS ?= 1
BENCH_ARGS ?=

.PHONY: install bench reference lint test test-fast report validate image perf clean-artifacts

install: $(BIN)/disco-bench

$(BIN)/disco-bench: pyproject.toml requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -r requirements.lock -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

# this machine's run goes to runs/ (git-ignored), reported beside the committed reference run
bench: install
	$(BIN)/disco-bench run --pair r50-effb0 --profile $(PROFILE) --seeds $(SEEDS) $(BENCH_ARGS)

# make the latest run the committed reference (results/reference/<profile>/, results/README.md)
reference: install
	$(BIN)/disco-bench promote --profile $(PROFILE)

report: install
	$(BIN)/disco-bench report --profile $(PROFILE)

validate: install
	$(BIN)/disco-bench validate benchmarks.yaml

# ruff (format and lint, 120 columns) and mypy, as configured in pyproject.toml
lint: install
	$(BIN)/ruff format --check disco harness tests
	$(BIN)/ruff check disco harness tests
	$(BIN)/mypy

test: install lint
	$(BIN)/python -m pytest -q -ra tests

test-fast: install
	$(BIN)/python -m pytest -q -ra -m "not slow and not docker and not slurm" tests

image: install
	$(BIN)/disco-bench build

perf: install
	$(BIN)/disco-bench perf --pair r50-effb0 --device cpu --resolution 32 --batch 64

clean-artifacts:
	rm -rf artifacts runs
