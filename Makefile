# The two set-up commands of the README:
#   make run    start the bot on embedded defaults (installs first if needed): the SMS webhook on
#               127.0.0.1:8000 in dev mode (unsigned webhooks, loopback only), SQLite history,
#               in-memory context, this host as its monitor
#   make test   install everything (Python packages and the Debian servers the integration tests
#               run: Prometheus, Alertmanager, PostgreSQL, pgBouncer, Redis; Chromium for the
#               dashboard) and run every test
# For the edit-test loop: make unit (the tests that start no server, on both cores).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install servers run test unit lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/operator serve --dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

servers:
	scripts/install-servers

test: lint servers
	$(BIN)/pytest

unit: install
	$(BIN)/pytest -m "not servers" -n 2 -q

bench: install
	$(BIN)/python -m bench.intents
	$(BIN)/python -m bench.monitors
	$(BIN)/python -m bench.webhook
	$(BIN)/python -m bench.alerts
	$(BIN)/python -m bench.scale
	$(BIN)/python -m bench.graph
	$(BIN)/python -m bench.dashboard
	$(BIN)/python -m bench.oncall

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
