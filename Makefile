# The two commands of the README, and a few more for development.
#   make run    the service on the embedded default (SQLite + local files), port 8080
#   make test   lint, then the whole test suite against a real local Cassandra + HDFS
#   make lint   ruff (rules and formatting) and mypy, as make test runs them first
VENV ?= .venv
export PIP_RETRIES ?= 0

.PHONY: venv run test test-fast lint cluster-up cluster-status cluster-down clean

venv:
	@scripts/bootstrap $(VENV)

run: venv
	$(VENV)/bin/instastore serve

test:
	VENV=$(VENV) scripts/test $(PYTEST_ARGS)

lint: venv
	VENV=$(VENV) scripts/lint

# Without a running cluster: the tests that need one skip, with the reason.
test-fast: venv
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

cluster-up: venv
	$(VENV)/bin/instastore cluster up

cluster-status: venv
	$(VENV)/bin/instastore cluster status

cluster-down: venv
	$(VENV)/bin/instastore cluster down

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .instastore .mypy_cache .ruff_cache
