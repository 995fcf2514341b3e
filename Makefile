# The two set-up commands of the README:
#   make run    start the bot on embedded defaults (installs first if needed): the SMS webhook on
#               127.0.0.1:8000 in dev mode (unsigned webhooks, loopback only), SQLite history,
#               in-memory context, this host as its monitor
#   make test   install everything (Python packages and the Debian servers the integration tests
#               run: Prometheus, Alertmanager, PostgreSQL, pgBouncer, Redis; Chromium for the
#               dashboard) and run every test
# For the edit-test loop: make unit (every test that starts no server, property tests on a fifth of
# their examples, one worker more than cores: a third of the loop waits on sockets and timeouts).
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

UNIT_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))

unit: install
	QUICK_TESTS=1 $(BIN)/pytest -m "not servers" -n $(UNIT_WORKERS) --dist worksteal -q

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
