# Every target creates .venv on first use, so a fresh clone needs only Python >= 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/wcfollowup demo

test: $(STAMP)
	$(BIN)/ruff check wcfollowup tests
	$(BIN)/mypy wcfollowup
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/backlog.py

lint: $(STAMP)
	$(BIN)/ruff check wcfollowup tests bench

typecheck: $(STAMP)
	$(BIN)/mypy wcfollowup

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
