# `make demo` and `make test` do all set-up on a fresh machine: they create .venv when missing,
# install torch==2.13.0 first (a CPU build here; an unpinned torch would pull a multi-GB CUDA build),
# then Strata with the exact versions in requirements.lock.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest

.PHONY: venv demo test test-slow test-all bench lint clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/strata train examples/penguins.yaml --out models/penguins
	$(BIN)/strata predict models/penguins examples/penguins_new.csv --id penguin_id --out models/penguins_predictions.csv
	@echo "--- predictions (models/penguins_predictions.csv) ---"
	@cat models/penguins_predictions.csv
	@echo "--- report: models/penguins/report.html (plots, metrics with intervals, diagnosis); model card: models/penguins/model_card.md ---"
	$(BIN)/strata runs list --limit 3
	@echo "--- browse the runs: $(BIN)/mlflow ui --backend-store-uri sqlite:///strata-runs/mlflow.db ---"

test: $(STAMP)
	$(PYTEST) -n 2 -q

test-slow: $(STAMP)
	$(PYTEST) -n 2 -q -m slow

test-all: $(STAMP)
	$(PYTEST) -n 2 -q -m "slow or not slow"

# The benchmark suite (bench/suite.py): peers, scaling, start-up; writes bench/results.md. The peers
# (Lightning, Keras, skorch) are not Strata's dependencies: give their virtualenv with
# `make bench PEER_PYTHON=/tmp/peers-venv/bin/python` (bench/README.md), else they are skipped.
PEER_PYTHON ?=
bench: $(STAMP)
	$(BIN)/python bench/suite.py $(if $(PEER_PYTHON),--peer-python $(PEER_PYTHON)) --out bench/results.md

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) models .pytest_cache
