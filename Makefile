# microseg.illumio — developer entry points.
#   make demo   set everything up and run playbooks/demo.yml against a throwaway lab PCE
#   make test   install what is missing, then run every test, lint and sanity check
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
BUILD := $(CURDIR)/.build
# The collection is staged where Ansible and ansible-test expect it: <path>/ansible_collections/<ns>/<name>.
COLLECTIONS := $(BUILD)/collections
STAGED := $(COLLECTIONS)/ansible_collections/microseg/illumio
# Python interpreters for sanity tests: every python3.X found on PATH or under pyenv, linked in one folder.
PYTHONS_DIR := $(BUILD)/pythons
export PATH := $(BIN):$(PYTHONS_DIR):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
# Keep Ansible's own caches and temp files inside the build folder, never in $HOME of a CI runner.
export ANSIBLE_LOCAL_TEMP := $(BUILD)/ansible-tmp
export ANSIBLE_HOME := $(BUILD)/ansible-home

SYSTEM_PACKAGES := python3-venv ca-certificates curl git sqlite3
SANITY_PYTHONS ?= 3.8 3.9 3.10 3.11 3.12 3.13

.PHONY: help
help:
	@echo "make demo  - run the demo playbook against a lab PCE (sets up everything first)"
	@echo "make test  - install what is missing, then run all tests, lint and sanity"

# --- setup --------------------------------------------------------------------------------------
.PHONY: system-deps
system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing system packages (run as root to install): $$missing" >&2; fi; \
	fi

$(VENV)/.installed: requirements/dev.in requirements/constraints.txt tools/pcelab/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -U pip wheel
	$(BIN)/pip install -q --disable-pip-version-check -r requirements/dev.in -c requirements/constraints.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e tools/pcelab
	touch $@

.PHONY: venv
venv: $(VENV)/.installed

.PHONY: pythons
pythons:
	@mkdir -p $(PYTHONS_DIR)
	@for v in $(SANITY_PYTHONS) 3.6; do \
	  p=$$(ls /root/.pyenv/versions/$$v.*/bin/python$$v 2>/dev/null | tail -n1 || true); \
	  [ -n "$$p" ] || p=$$(PATH=/usr/local/bin:/usr/bin:/bin command -v python$$v || true); \
	  [ -n "$$p" ] && ln -sf "$$p" $(PYTHONS_DIR)/python$$v || true; \
	done

# Stage the working tree (tracked and new files, not ignored ones) as an installed collection.
.PHONY: stage
stage:
	@rm -rf $(STAGED) && mkdir -p $(STAGED)
	@git ls-files -z -co --exclude-standard -- . ':!tools' | xargs -0 -I{} sh -c 'test -e "{}" && echo "{}"' \
	  | tar -cf - -T - | tar -xf - -C $(STAGED)

.PHONY: setup
setup: system-deps venv pythons stage

# --- the two commands ---------------------------------------------------------------------------
.PHONY: demo
demo: setup
	$(BIN)/python tools/with_lab.py -- ansible-playbook playbooks/demo.yml

.PHONY: test
test: setup lint unit lab-tests integration sanity py36-compile
	@echo "make test: all checks passed"

# --- the parts of `make test` -------------------------------------------------------------------
.PHONY: unit
unit:
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

.PHONY: lab-tests
lab-tests:
	$(BIN)/pytest -q -p no:cacheprovider tools/pcelab/tests

.PHONY: integration
integration:
	$(BIN)/pytest -q -p no:cacheprovider tests/integration

.PHONY: lint
lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd $(STAGED) && $(BIN)/ansible-lint --profile production -q

.PHONY: sanity
sanity:
	cd $(STAGED) && for v in $(SANITY_PYTHONS); do \
	  if command -v python$$v >/dev/null; then pythons="$$pythons $$v"; fi; \
	done; \
	for v in $$pythons; do \
	  echo "== ansible-test sanity on python $$v"; \
	  $(BIN)/ansible-test sanity --venv --python $$v --color no; \
	done

# Modules run on managed hosts with Python 3.6+: make sure they at least compile there.
.PHONY: py36-compile
py36-compile:
	@if command -v python3.6 >/dev/null; then \
	  find plugins/modules plugins/module_utils -name '*.py' -print0 \
	    | xargs -0 python3.6 -c 'import sys; [compile(open(f).read(), f, "exec") for f in sys.argv[1:]]' \
	    && echo "python3.6 compile: ok"; \
	else echo "python3.6 not available: skipped"; fi

.PHONY: bench
bench: setup
	$(BIN)/python tests/bench/bench_pcelab_async.py

.PHONY: clean
clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache
