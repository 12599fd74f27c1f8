# The two commands of the README, and a few more for development.
#   make run    the service on the embedded default (SQLite + local files), port 8080
#   make test   lint, then the whole test suite against a real local Cassandra + HDFS
#   make lint   ruff (rules and formatting) and mypy, as make test runs them first
#   make hooks  check each commit message as it is made (scripts/hooks/commit-msg)
# and one for each tier of tests (tests/README.md), each a pytest you may also type:
#   make test-fast     every test that needs no cluster, on 3 processes (about 2 minutes)
#   make test-fuzz     every API operation driven from the spec (a minute of CPU)
#   make test-unit     tests/unit: the pure rules
#   make test-cluster  the tests on the running 1 + 1 cluster (make cluster-up first)
#   make test-faults   tests/faults: kills and outages (starts a 3 + 3 and a cluster of its own)
VENV ?= .venv
export PIP_RETRIES ?= 0

.PHONY: hooks venv run test test-fast test-fuzz test-unit test-cluster test-faults lint cluster-up cluster-status cluster-down clean

venv:
	@scripts/bootstrap $(VENV)

run: venv
	$(VENV)/bin/instastore serve

test:
	VENV=$(VENV) scripts/test $(PYTEST_ARGS)

lint: venv
	VENV=$(VENV) scripts/lint

hooks:
	git config core.hooksPath scripts/hooks

# Every test that needs no cluster (marked so by tests/conftest.py): none skips. Three
# processes on 2 cores, the kill tests first (tests/conftest.py), each process taking
# work from a busy one when it runs out: half of these tests' time is their own waits
# (kills at set moments, the packer's wait for record caches, servers' timeouts), which
# the others fill: 1 min 58 s so on a quiet machine (827 tests), without the spec fuzzers
# (a minute of CPU; make test-fuzz), which take it to 2 min 27 s.
test-fast: venv
	$(VENV)/bin/python -m pytest -n 3 --dist worksteal -m "not (cluster or spec_fuzz)" $(PYTEST_ARGS)

# The API driven from its description (tests/api/test_openapi_fuzz.py), embedded store.
test-fuzz: venv
	$(VENV)/bin/python -m pytest -m "spec_fuzz and not cluster" $(PYTEST_ARGS)

test-unit: venv
	$(VENV)/bin/python -m pytest tests/unit $(PYTEST_ARGS)

# A missing cluster fails these, never skips them.
test-cluster: venv
	INSTASTORE_REQUIRE_CLUSTER=1 $(VENV)/bin/python -m pytest \
		-m "cluster and not (three_plus_three or own_cluster)" $(PYTEST_ARGS)

test-faults: venv
	INSTASTORE_REQUIRE_CLUSTER=1 $(VENV)/bin/python -m pytest tests/faults $(PYTEST_ARGS)

cluster-up: venv
	$(VENV)/bin/instastore cluster up

cluster-status: venv
	$(VENV)/bin/instastore cluster status

cluster-down: venv
	$(VENV)/bin/instastore cluster down

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .instastore .mypy_cache .ruff_cache
