# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-deep lint install browser java clean bench prereqs

prereqs:
	@bash scripts/check-prereqs.sh $(PYTHON)

$(BIN)/python: | prereqs
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

# Re-install when the dependency list or the lock changes. Bytecode is compiled at install time: with
# PYTHONDONTWRITEBYTECODE set (as on CI machines) every `churn` run would otherwise recompile MLflow,
# scikit-learn and pandas from source, ~9 s per command. The spark extra (pyspark) is installed too: the
# Spark engine's parity tests run in `make test`.
$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.lock -e '.[dev,spark]'
	touch $(STAMP)

install: $(STAMP)

# Chromium (from the OS packages) for the report's browser test.
browser:
	bash scripts/install-chromium.sh

# Java 17 (from the OS packages) for the Spark engine's tests; fails with what to install where it cannot.
java:
	bash scripts/install-java.sh

demo: $(STAMP)
	OMP_NUM_THREADS=2 $(BIN)/churn demo

# Every core (pytest-xdist); groups of tests that share a mutable fixture stay on one worker (loadgroup).
# Hypothesis draws ~200 examples a property here (profile `ci`); `make test-deep` draws 1,000 (`deep`).
# Bytecode is written during the tests even where PYTHONDONTWRITEBYTECODE is set (CI): churn's own modules
# (installed editable, so not compiled at install) and the assertion-rewritten test modules are compiled once
# (into the gitignored __pycache__ folders), not again by each of the ~100 `churn` processes the suite starts.
PYTEST := PYTHONDONTWRITEBYTECODE= OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto --dist loadgroup --durations=15

test: prereqs $(STAMP) browser java
	$(PYTEST)

test-deep: prereqs $(STAMP) browser java
	HYPOTHESIS_PROFILE=deep $(PYTEST)

lint: $(STAMP)
	$(BIN)/ruff check --select F,E9 src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/score.py

clean:
	rm -rf outputs mlruns.db mlartifacts models/*/ data/demo
