# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The demo needs the runtime only; the tests, linters and notebooks the dev extras.
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck install install-dev clean bench browser mosquitto postgres

# apt needs root; elsewhere ask sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# pip's own output (not -q): a first install downloads for a minute or two.
$(RUNTIME): $(BIN)/python pyproject.toml
	@echo "Installing gridshare and its runtime dependencies into $(VENV)..."
	$(BIN)/python -m pip install --progress-bar on -e .
	touch $(RUNTIME)

# the dev extras include the runtime: the runtime stamp is then current too
$(DEV): $(BIN)/python pyproject.toml
	@echo "Installing gridshare with its development tools into $(VENV)..."
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	touch $(DEV) $(RUNTIME)

install: $(RUNTIME)

install-dev: $(DEV)

demo: $(RUNTIME)
	@echo "gridshare is installed in $(VENV): run $(BIN)/gridshare, or 'source $(BIN)/activate' first."
	$(BIN)/gridshare demo

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check optimizer forecasts ocpp_adapter oscp gridshare tests benchmarks

typecheck: $(DEV)
	$(BIN)/mypy

# The dashboard's browser test drives Debian's headless Chromium.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; }

# The meter tests run an MQTT broker: Debian's mosquitto.
mosquitto:
	@command -v mosquitto >/dev/null || PATH="$$PATH:/usr/sbin" command -v mosquitto >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto >/dev/null; }

# The store's tests run on PostgreSQL too: the machine's if one answers on
# 127.0.0.1:5432, else a throwaway cluster made with Debian's binaries.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql >/dev/null; }

test: $(DEV) lint typecheck browser mosquitto postgres
	$(BIN)/python -m pytest -q

bench: $(RUNTIME)
	$(BIN)/python benchmarks/plan_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
