# The two commands: `make run` (embedded, nothing but Python) and `make test` (real PostgreSQL
# and RabbitMQ, started if they are down).  Everything installs into .venv from requirements.lock.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := $(sort $(dir $(wildcard libs/*/pyproject.toml services/*/pyproject.toml gateway/pyproject.toml)))
PYPROJECTS := $(wildcard libs/*/pyproject.toml services/*/pyproject.toml gateway/pyproject.toml)

.PHONY: install run up test lint format lock services-up bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock $(PYPROJECTS)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is needed"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation $(addprefix -e ,$(PACKAGES))
	touch $@

run: install
	$(BIN)/python -m callcenter_platform.embedded

up: install services-up
	$(BIN)/python -m callcenter_platform.fullstack

services-up:
	@bash scripts/ensure-services.sh

test: install services-up
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs/common/src libs/platform/src libs/pbxsim/src gateway/src services/*/src

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-pin after adding a dependency to a pyproject.toml (and installing it into .venv).
lock:
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -v '^pip==' > requirements.lock

bench: install services-up
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
