# The platform from two commands: `make run` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
UV_VERSION := 0.13.9
COMPONENTS := libs/crmkit services/profile services/segment services/campaign services/feedback services/risk gateway cli
PROTOS := $(shell find protos -name '*.proto')
PYPROJECTS := $(foreach c,$(COMPONENTS),$(c)/pyproject.toml)
GEN_STAMP := libs/crmkit/src/crm/.generated
B ?=

.PHONY: install gen lint test test-fast run bench clean lock

install: $(VENV)/.editable

# Third-party packages come only from the hashed lock; our components go on top, editable and
# without dependencies, so nothing unpinned is ever installed. Three stamps, in order: the
# lock is synced, the contracts are generated, our components are installed.
$(VENV)/.installed: requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip sync -q --python $(BIN)/python --require-hashes requirements.lock
	touch $@

$(GEN_STAMP): $(PROTOS) tools/gen_protos.py $(VENV)/.installed
	$(BIN)/python tools/gen_protos.py 2>&1 | grep -v "^Writing mypy to"
	touch $@

$(VENV)/.editable: $(GEN_STAMP) $(PYPROJECTS)
	$(UV) pip install -q --python $(BIN)/python --no-deps $(foreach c,$(COMPONENTS),-e $(c))
	touch $@

gen: $(GEN_STAMP)

# Recompile the lock after changing dependencies in pyproject.toml, then each image's share of it
# (deploy/docker/requirements/, read from the packages the new lock installs).
lock:
	$(UV) pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 --no-header -o requirements.lock
	$(MAKE) install
	$(BIN)/python deploy/docker/image_requirements.py

lint: install
	$(BIN)/buf lint
	$(BIN)/ruff check libs services gateway cli tests bench tools deploy
	$(BIN)/mypy libs/crmkit/src services/*/src gateway/src cli/src

# pytest exits 5 when it collected no test: say so plainly instead of failing with make's 2.
test: install lint
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=30; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "0 passed, 0 failed: pytest collected no tests"; exit 0; fi; exit $$rc

# The suites without the slow, multi-process ones: for a quick local loop.
test-fast: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

run: install
	$(BIN)/crm run

bench: install
	$(BIN)/python -m bench $(B)

clean:
	rm -rf $(VENV) build libs/crmkit/src/crm bench/results
