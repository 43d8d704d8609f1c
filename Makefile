# Two commands on a fresh machine: `make up` and `make test` (each creates .venv if missing).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# checkov (the manifests' policy check in tests/deploy) in a venv of its own: its pins conflict with ours
CHECKOV_PINS := tests/deploy/checkov-constraints.txt
CHECKOV_STAMP := $(VENV)/checkov/.installed-$(shell cksum < $(CHECKOV_PINS) | cut -d' ' -f1)
# openapi-python-client (tests/gateway/test_openapi_client.py generates a client) in a venv of its own too
OAPC_PINS := tests/gateway/openapi-client-constraints.txt
OAPC_STAMP := $(VENV)/openapi-client/.installed-$(shell cksum < $(OAPC_PINS) | cut -d' ' -f1)

.PHONY: up test bench lint migrate clean checkov openapi-client

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

$(CHECKOV_STAMP): $(CHECKOV_PINS)
	@test -x $(VENV)/checkov/bin/python || $(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install -q --disable-pip-version-check -c $(CHECKOV_PINS) checkov
	@rm -f $(VENV)/checkov/.installed-* && touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)  ## checkov in .venv/checkov (tests/deploy/test_k8s.py runs it)

$(OAPC_STAMP): $(OAPC_PINS)
	@test -x $(VENV)/openapi-client/bin/python || $(PYTHON) -m venv $(VENV)/openapi-client
	$(VENV)/openapi-client/bin/pip install -q --disable-pip-version-check -c $(OAPC_PINS) openapi-python-client python-dateutil
	@rm -f $(VENV)/openapi-client/.installed-* && touch $(OAPC_STAMP)

openapi-client: $(OAPC_STAMP)  ## openapi-python-client in .venv/openapi-client (tests/gateway/test_openapi_client.py)

up: $(STAMP)  ## start the whole system with the demo district (gateway on http://127.0.0.1:8000)
	$(VENV)/bin/jiaozhi up

# tests wait on brokers, databases and processes more than they compute: more workers than cores pays
TEST_WORKERS ?= 3

test: $(STAMP) $(CHECKOV_STAMP) $(OAPC_STAMP)  ## the whole test suite (PostgreSQL tests run when it is reachable, and always in CI)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25

bench: $(STAMP)  ## benchmarks; results in bench/results/latest.json
	OMP_NUM_THREADS=1 $(PY) -m bench.run

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) ../shared/tools/check_boundaries.py . 2>/dev/null || true

migrate: $(STAMP)
	$(VENV)/bin/jiaozhi migrate

clean:
	rm -rf var .pytest_cache
