# microseg.illumio — developer entry points.
#   make demo   set everything up, then show labels, policy as code, the inventory and (as root) VEN pairing
#               and enforcement on a throwaway lab PCE and test hosts
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

SYSTEM_PACKAGES := python3-venv ca-certificates curl git sqlite3 openssh-server openssh-client nftables iptables ipset conntrack iproute2 util-linux procps shellcheck rpm
SANITY_PYTHONS ?= 3.8 3.9 3.10 3.11 3.12 3.13 3.14

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
	@# ansible-test lists files with git; the staged copy is its own repository so it sees exactly these.
	@cd $(STAGED) && git init -q && git add -A

# ansible.windows, for the role ven's Windows tasks (lint, syntax checks): taken from the pinned `ansible` wheel,
# since Galaxy is not reachable from CI.
.PHONY: windows-collection
windows-collection: venv
	$(BIN)/python tools/fetch_ansible_windows.py --collections-path $(COLLECTIONS)

.PHONY: setup
setup: system-deps venv pythons stage windows-collection

# --- the two commands ---------------------------------------------------------------------------
.PHONY: demo
demo: setup vensim
	$(BIN)/python tools/with_lab.py -- bash -c 'ansible-playbook -i playbooks/inventory/localhost.yml \
	  playbooks/demo.yml playbooks/policy_as_code.yml \
	  && pcelab demo-org && ansible-inventory -i playbooks/inventory/demo.pce.yml --graph'
	@# As root: pair test hosts with the VEN stand-in, show their facts and the inventory they make; then enforce
	@# a PCE policy with two test hosts' own firewalls and show an allowed and a blocked connection.
	$(BIN)/python tools/demo_ven.py
	$(BIN)/python tools/demo_enforce.py

.PHONY: test
test: setup lint unit lab-tests integration hostlab-tests host-tests vensim-tests molecule sanity py36-compile release-checks
	@echo "make test: all checks passed"

# --- the parts of `make test` -------------------------------------------------------------------
.PHONY: unit
unit:
	$(BIN)/pytest -q -p no:cacheprovider -n 2 tests/unit

.PHONY: lab-tests
lab-tests:
	$(BIN)/pytest -q -p no:cacheprovider -n 2 tools/pcelab/tests

.PHONY: integration
integration:
	$(BIN)/pytest -q -p no:cacheprovider -n 2 tests/integration

# Real test hosts (network namespaces + sshd) need root; the suite skips itself, loudly, otherwise.
.PHONY: hostlab-tests
hostlab-tests:
	$(BIN)/pytest -q -p no:cacheprovider tests/hostlab

# Roles and modules run by ansible-playbook on real test hosts (tests/hosts, each suite in a lab of its own):
# the firewall role and firewall_apply, both backends, traffic checks, lock-out and rollback. Root only.
.PHONY: host-tests
host-tests:
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadscope tests/hosts

# The VEN stand-in (tests/vensim): two versions as .deb (and .rpm when rpmbuild is there) plus the bundles
# `pcelab ven-software-install` takes, in .build/vensim.
.PHONY: vensim
vensim:
	$(BIN)/python tests/vensim/build.py --out $(BUILD)/vensim

# The stand-in offline, then paired on real test hosts with a lab PCE; the host part needs root and says so.
.PHONY: vensim-tests
vensim-tests: vensim
	$(BIN)/pytest -q -p no:cacheprovider tests/vensim

# Collection-level molecule scenarios (extensions/molecule, delegated driver, testinfra verifiers) on test hosts.
.PHONY: molecule
# The scenarios find this checkout as microseg.illumio through a link (molecule.yml sets ANSIBLE_COLLECTIONS_PATH).
molecule: vensim
	@if [ "$$(id -u)" != 0 ]; then echo "molecule: SKIPPED - its scenarios build test hosts, which needs root"; \
	else mkdir -p $(BUILD)/molecule-collections/ansible_collections/microseg && \
	  ln -sfn $(CURDIR) $(BUILD)/molecule-collections/ansible_collections/microseg/illumio && \
	  $(BIN)/molecule test --all; fi

.PHONY: lint
lint: stage
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/render_docs.py --out docs/plugins --check
	cd $(STAGED) && $(BIN)/ansible-lint --profile production -q

# ansible-test bootstraps pip in its venvs with a script from a host our CI cannot reach; give it our
# offline stand-in (tools/ansible-test/get_pip_offline.py) under the cache name it looks for.
ANSIBLE_TEST_PIP = $(shell sed -n "s/^ *pip='\([0-9.]*\)',/\1/p" $(BIN)/../lib/python3*/site-packages/ansible_test/_internal/python_requirements.py 2>/dev/null)
GET_PIP_CACHE = $(HOME)/.ansible/test/cache/get_pip_$(subst .,_,$(ANSIBLE_TEST_PIP)).py

.PHONY: sanity
sanity: stage
	@test -n "$(ANSIBLE_TEST_PIP)" || { echo "cannot find the pip version ansible-test wants" >&2; exit 1; }
	install -D -m 0644 tools/ansible-test/get_pip_offline.py $(GET_PIP_CACHE)
	@# One run covers every Python it finds on PATH (.build/pythons): compile and import on each.
	cd $(STAGED) && $(BIN)/ansible-test sanity --venv --color no

# Modules run on managed hosts with Python 3.6+: make sure they at least compile there.
.PHONY: py36-compile
py36-compile:
	@if command -v python3.6 >/dev/null; then \
	  find plugins/modules plugins/module_utils -name '*.py' -print0 \
	    | xargs -0 python3.6 -c 'import sys; [compile(open(f).read(), f, "exec") for f in sys.argv[1:]]' \
	    && echo "python3.6 compile: ok"; \
	else echo "python3.6 not available: skipped"; fi

# docs/plugins/*.md are generated from each plugin's DOCUMENTATION / EXAMPLES / RETURN.
.PHONY: docs
docs: setup
	$(BIN)/python tools/render_docs.py --out docs/plugins

.PHONY: bench
bench: setup
	$(BIN)/python tests/bench/bench_pcelab_async.py
	$(BIN)/python tests/bench/bench_inventory.py
	$(BIN)/python tests/bench/bench_flow_report.py

.PHONY: clean
clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache

# --- AWX / AAP, execution environments and Galaxy (docs/awx/README.md) ---------------------------------
# `make release-checks` (part of `make test`): the changelog, the documentation site, then tests/release - the
# collection built by ansible-galaxy from a clean copy, installed offline into an empty collections path and used
# from there (smoke playbook, every plugin's docs), `ansible-builder create` and introspection of
# meta/execution-environment.yml, the demo playbooks run through ansible-runner as an AWX job, secret check included.
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
RELEASE := $(BUILD)/release
TARBALL := $(BUILD)/galaxy/microseg-illumio-$(VERSION).tar.gz
DOCSITE := $(BUILD)/docsite
DOCSITE_COLLECTIONS := $(BUILD)/docsite-collections
# Copy the files git knows (tracked, and new ones not ignored; links stay links) to the folder in $(1).
copy_source_tree = rm -rf $(1) && mkdir -p $(1) && git ls-files -z -co --exclude-standard -- $(2) \
	| xargs -0 -I{} sh -c 'test -e "{}" && echo "{}"' | tar -cf - -T - | tar -xf - -C $(1)

.PHONY: release-checks
release-checks: venv changelog-check docsite
	$(BIN)/pytest -q -p no:cacheprovider tests/release

# The collection tarball as Galaxy would get it (galaxy.yml build_ignore applies): .build/galaxy/.
.PHONY: galaxy-build
galaxy-build: venv
	@$(call copy_source_tree,$(RELEASE)/source,.)
	@rm -rf $(BUILD)/galaxy
	$(BIN)/ansible-galaxy collection build $(RELEASE)/source --output-path $(BUILD)/galaxy

# An execution environment build context (offline; the collection from the tarball): then
#   podman build -t microseg-illumio-ee .build/ee-context
.PHONY: ee-context
ee-context: galaxy-build
	install -D -m 0644 $(TARBALL) $(BUILD)/ee/microseg-illumio.tar.gz
	rm -rf $(BUILD)/ee-context
	$(BIN)/ansible-builder create -f meta/execution-environment.yml --context $(BUILD)/ee-context \
	  --output-filename Containerfile

# The documentation site of every module, plugin and role (antsibull-docs + Sphinx, warnings are errors), made from
# the built tarball: .build/docsite/build/html/index.html. Offline: references into docs.ansible.com (ansible-core,
# other collections) are not checked; references within microseg.illumio are. Then antsibull-docs' docs linter.
DOCSITE_ENV = ANSIBLE_COLLECTIONS_PATH=$(DOCSITE_COLLECTIONS) ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
.PHONY: docsite
docsite: galaxy-build
	@rm -rf $(DOCSITE) $(DOCSITE_COLLECTIONS) && mkdir -p -m 0755 $(DOCSITE)
	$(DOCSITE_ENV) $(BIN)/ansible-galaxy collection install --offline -p $(DOCSITE_COLLECTIONS) $(TARBALL)
	$(DOCSITE_ENV) $(BIN)/antsibull-docs sphinx-init --use-current --fail-on-error --dest-dir $(DOCSITE) \
	  --project microseg.illumio --copyright 'microseg.illumio contributors' --title 'microseg.illumio' \
	  --html-short-title 'microseg.illumio' --no-add-antsibull-docs-version microseg.illumio
	@printf '%s\n' '' '# Offline build (make docsite): no intersphinx inventories to download.' \
	  'intersphinx_mapping = {}' 'nitpick_ignore_regex = [' \
	  '    ("std:ref", r"(common_return_values|ansible_configuration_settings|ansible_collections\.(?!microseg\.illumio\.).*)"),' \
	  '    ("std:envvar", r"ANSIBLE_.*"),' ']' >> $(DOCSITE)/conf.py
	$(DOCSITE_ENV) PATH=$(BIN):$$PATH bash $(DOCSITE)/build.sh
	$(DOCSITE_ENV) $(BIN)/antsibull-docs lint-collection-docs --plugin-docs \
	  $(DOCSITE_COLLECTIONS)/ansible_collections/microseg/illumio
	@echo "docs site: $(DOCSITE)/build/html/index.html"

# CHANGELOG.rst from changelogs/fragments: what `antsibull-changelog release` would write for the version in
# galaxy.yml, made in a scratch copy so that the fragments and changelogs/changelog.yaml stay as they are.
CHANGELOG_SCRATCH := $(BUILD)/changelog
.PHONY: changelog-scratch
changelog-scratch: venv
	@$(call copy_source_tree,$(CHANGELOG_SCRATCH),galaxy.yml changelogs plugins roles playbooks meta)
	cd $(CHANGELOG_SCRATCH) && $(BIN)/antsibull-changelog release --version $(VERSION) --date 2000-01-01 2>&1 \
	  | { grep -v 'no release_summary section' || true; }

.PHONY: changelog
changelog: changelog-scratch
	cp $(CHANGELOG_SCRATCH)/CHANGELOG.rst CHANGELOG.rst

.PHONY: changelog-check
changelog-check: changelog-scratch
	$(BIN)/antsibull-changelog lint
	@diff -u CHANGELOG.rst $(CHANGELOG_SCRATCH)/CHANGELOG.rst \
	  || { echo "CHANGELOG.rst is not what changelogs/fragments make: run make changelog" >&2; exit 1; }
