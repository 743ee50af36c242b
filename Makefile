# Every target creates .venv on first use, so a fresh clone needs only Python >= 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck check bench audit clean

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
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/backlog.py

lint: $(STAMP)
	$(BIN)/ruff check wcfollowup tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy wcfollowup

# Known vulnerabilities in our dependencies, at the lowest versions pyproject.toml allows and as
# installed in .venv (psycopg, an extra, only as installed: psycopg-binary has no 3.1.0).
# Needs the internet (PyPI's vulnerability data), so it is NOT part of `test`.
# pip-audit gets its own venv so its dependencies never leak into the project's.
# --strict: a package that could not be checked (no network) fails the audit instead of passing.
AUDIT_VENV := .venv-audit
audit: $(STAMP)
	test -x $(AUDIT_VENV)/bin/pip-audit || ($(PYTHON) -m venv $(AUDIT_VENV) && \
		$(AUDIT_VENV)/bin/python -m pip install --quiet pip-audit)
	$(BIN)/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
		print("\n".join(d.split(",")[0].replace(">=", "==") for d in p["dependencies"]))' \
		> $(AUDIT_VENV)/lower-bounds.txt
	$(AUDIT_VENV)/bin/pip-audit --strict --progress-spinner off -r $(AUDIT_VENV)/lower-bounds.txt
	$(AUDIT_VENV)/bin/pip-audit --strict --progress-spinner off --path \
		"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

clean:
	rm -rf $(VENV) $(AUDIT_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
