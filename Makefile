# Developer entry points. The two that matter: `make up` (run dockstate next to your containers) and
# `make test` (every test; CI's .ci/run calls it). `make help` lists the rest.

CARGO ?= cargo
SHELL := /bin/bash

# --- Build settings ------------------------------------------------------------------------------------------
# The images are FROM scratch, so the binaries are linked statically (glibc, +crt-static) for the host's own
# target. Release builds go to target/<triple>/release, apart from the debug builds the tests use.
comma := ,
TARGET ?= $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
RELEASE_DIR = $(TARGET_DIR)/$(TARGET)/release
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# The commit, `-dirty` when the work tree has changes that are not in it.
REVISION := $(shell git describe --always --dirty --abbrev=12 --match=none-NeVeR 2>/dev/null || echo unknown)
# The commit's time, not the build's: the same commit gives the same labels, so rebuilding an unchanged tree
# gives the same image and `make up` does not recreate running containers for nothing.
CREATED := $(shell TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd 2>/dev/null || echo 1970-01-01T00:00:00Z)
IMAGE_MAX_BYTES := 25000000
IMAGES := dockstate/status-api dockstate/status-controller
DEMO_IMAGE := dockstate/demo-httpd
BUSYBOX ?= $(firstword $(wildcard /bin/busybox /usr/bin/busybox))

# --- Stack settings: every one can be overridden from the environment or the command line ------------------
# `docker compose` (v2) when it is there, else docker-compose (1.29+).
ifeq ($(origin COMPOSE),undefined)
COMPOSE := $(shell if docker compose version >/dev/null 2>&1; then echo 'docker compose'; else echo docker-compose; fi)
endif
DC = env 'STATUS_API_CONTROLLER_URL=$(STATUS_API_CONTROLLER_URL)' \
    'STATUS_CONTROLLER_CORS_ORIGIN=$(STATUS_CONTROLLER_CORS_ORIGIN)' $(COMPOSE) -f compose/compose.yaml
export COMPOSE_PROJECT_NAME ?= dockstate
export DOCKSTATE_TAG ?= latest
export DOCKER_SOCKET ?= /var/run/docker.sock
# The group that owns the engine's socket, granted to the containers' numeric user instead of running as root.
export DOCKER_GID ?= $(shell stat -c %g $(DOCKER_SOCKET) 2>/dev/null || echo 999)
export DOCKSTATE_TOKEN_FILE ?= $(CURDIR)/compose/.secrets/token
export DOCKSTATE_BIND_ADDRESS ?= 127.0.0.1
export STATUS_API_PORT ?= 8080
export STATUS_CONTROLLER_PORT ?= 8000
export DEMO_PORT ?= 8081
READY_TIMEOUT ?= 90
URL_HOST = $(if $(filter 0.0.0.0,$(DOCKSTATE_BIND_ADDRESS)),localhost,$(DOCKSTATE_BIND_ADDRESS))
API_URL = http://$(URL_HOST):$(STATUS_API_PORT)
CONTROLLER_URL = http://$(URL_HOST):$(STATUS_CONTROLLER_PORT)
# The live page (at API_URL) shows what the controller did: it is told where the controller is, and the
# controller lets the page's origin read its GET answers (127.0.0.1 and localhost name the same page). Given
# to compose only (DC), not exported: the programs read these variables, and `make test` starts them too.
STATUS_API_CONTROLLER_URL ?= $(CONTROLLER_URL)
STATUS_CONTROLLER_CORS_ORIGIN ?= $(API_URL)$(if $(filter 127.0.0.1,$(URL_HOST)),$(comma)http://localhost:$(STATUS_API_PORT))$(if $(filter localhost,$(URL_HOST)),$(comma)http://127.0.0.1:$(STATUS_API_PORT))

.PHONY: help up down demo test faults logs plan clean images demo-image static token fmt lint ci bench

## List the targets.
help:
	@awk '/^## /{doc=(doc == "" ? "" : doc " ") substr($$0,4); next} /^[a-z-]+:/{if(doc!=""){split($$0,t,":"); printf "  make %-11s %s\n", t[1], doc}; doc=""}' $(MAKEFILE_LIST)

# --- Run -------------------------------------------------------------------------------------------------------

## Build binaries and images, start the pair detached, wait until both are ready, print the URLs. Refuses when
## the stored snapshot was taken in another scope than STATUS_API_SCOPE; REBASELINE=1 takes a new baseline in
## STATUS_API_SCOPE instead (what runs then becomes the baseline).
up: images token
	@$(check-baseline-scope)
	$(DC) up -d
	@$(rebaseline-if-asked)
	@$(wait-ready)
	@$(print-urls)

## Like `up`, with the demo workload (busybox httpd) started first so that it is in the snapshot.
demo: images demo-image token
	@$(check-baseline-scope)
	$(DC) --profile demo up -d demo
	$(DC) up -d
	@$(rebaseline-if-asked)
	@$(wait-ready)
	@$(print-urls)
	@demo=$$(docker ps --filter label=com.docker.compose.project=$(COMPOSE_PROJECT_NAME) \
	    --filter label=com.docker.compose.service=demo --format '{{.Names}}'); \
	if curl -fsS --max-time 5 $(API_URL)/snapshot | grep -q "\"name\":\"$$demo\""; then \
	    echo "demo workload $$demo serves http://$(URL_HOST):$(DEMO_PORT)/ and is in the snapshot:"; \
	    echo "  try  docker kill $$demo   and watch $(CONTROLLER_URL)/actions"; \
	else \
	    echo "warning: $$demo is not in the snapshot, which predates it (the state volume outlives" >&2; \
	    echo "'make down'): the controller treats it as unexpected. For a fresh baseline: make clean demo" >&2; \
	fi

## Stop the stack; the state volume (the snapshot) is kept.
down:
	@# The controller first, so that it does not heal what `down` stops.
	-$(DC) stop status-controller
	$(DC) --profile demo down --remove-orphans

## Follow both programs' logs (LOGS_ARGS to change, e.g. LOGS_ARGS=--tail=50).
LOGS_ARGS ?= --follow --tail=200
logs:
	$(DC) --profile demo logs $(LOGS_ARGS)

## What the controller would do now: one pass with --once --dry-run inside the running controller.
plan:
	@$(DC) exec -T status-controller /status-controller --once --dry-run --listen 127.0.0.1:0; \
	status=$$?; \
	if [ $$status -eq 2 ]; then echo "(drift found: the plan above is what the controller acts on)"; exit 0; fi; \
	exit $$status

## Remove the stack and its state volume, the images and the generated token. Goes on past a step that fails,
## then names each one, with what the tool said, and exits 1.
clean:
	@failed=(); \
	step() { what=$$1; shift; out=$$("$$@" 2>&1); status=$$?; [ -z "$$out" ] || printf '%s\n' "$$out"; \
	    if [ $$status -ne 0 ]; then failed+=("could not $$what (exit $$status): $$(printf '%s' "$$out" | tr -s '\n' ' ' | cut -c1-300)"); fi; }; \
	step "stop status-controller" $(DC) stop status-controller; \
	step "remove the stack and its state volumes" $(DC) --profile demo down -v --remove-orphans; \
	for image in $(foreach image,$(IMAGES) $(DEMO_IMAGE),$(image):$(VERSION) $(image):latest); do \
	    if docker image inspect "$$image" >/dev/null 2>&1; then step "remove the image $$image" docker image rm "$$image"; fi; \
	done; \
	if [ -e compose/.secrets ]; then step "remove compose/.secrets (the token)" rm -rf compose/.secrets; fi; \
	if [ $${#failed[@]} -gt 0 ]; then \
	    echo >&2; echo "make clean did not finish:" >&2; printf '  %s\n' "$${failed[@]}" >&2; exit 1; \
	fi

# --- Build -----------------------------------------------------------------------------------------------------

## The statically linked release binaries of both programs.
static:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --locked --target $(TARGET) \
	    -p status-api -p status-controller

## Both images, FROM scratch, with the classic builder (no BuildKit, no registry). Safe to run concurrently:
## each run has its own build context, and cargo and docker lock what they share.
# state/ is made 0755 whatever the umask: both programs refuse a state directory its group can write, and a
# named volume mounted there starts out with that mode.
images: static
	@set -euo pipefail; \
	context=$$(mktemp -d); trap 'rm -rf "$$context"' EXIT; \
	mkdir -p "$$context/etc"; \
	install -d -m 0755 "$$context/state"; \
	cp compose/rootfs/etc/passwd compose/rootfs/etc/group "$$context/etc/"; \
	cp $(RELEASE_DIR)/status-api $(RELEASE_DIR)/status-controller "$$context/"; \
	for image in $(IMAGES); do \
	    program=$${image#dockstate/}; \
	    if ! out=$$(DOCKER_BUILDKIT=0 docker build --quiet --force-rm --file compose/$$program.Dockerfile \
	        --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) --build-arg CREATED=$(CREATED) \
	        --tag $$image:$(VERSION) --tag $$image:latest "$$context" 2>&1); then \
	        echo "$$out" >&2; exit 1; \
	    fi; \
	    size=$$(docker image inspect --format '{{.Size}}' $$image:latest); \
	    awk -v name=$$image:$(VERSION) -v size=$$size 'BEGIN { printf "%-32s %5.1f MB\n", name, size / 1e6 }'; \
	    if [ "$$size" -gt $(IMAGE_MAX_BYTES) ]; then \
	        echo "$$image is $$size bytes, over the $(IMAGE_MAX_BYTES) limit" >&2; exit 1; \
	    fi; \
	done

## The demo workload's image: the host's static busybox (apt-get install busybox-static) serving one page.
demo-image:
	@set -euo pipefail; \
	if [ -z "$(BUSYBOX)" ] || ldd "$(BUSYBOX)" 2>/dev/null | grep -q '=>'; then \
	    echo "the demo image needs a static busybox: apt-get install busybox-static" >&2; exit 1; \
	fi; \
	context=$$(mktemp -d); trap 'rm -rf "$$context"' EXIT; \
	mkdir -p "$$context/bin" "$$context/www"; \
	cp "$(BUSYBOX)" "$$context/bin/busybox"; \
	cp compose/demo/index.html "$$context/www/"; \
	if ! out=$$(DOCKER_BUILDKIT=0 docker build --quiet --force-rm --file compose/demo.Dockerfile \
	    --build-arg VERSION=$(VERSION) --tag $(DEMO_IMAGE):$(VERSION) --tag $(DEMO_IMAGE):latest \
	    "$$context" 2>&1); then \
	    echo "$$out" >&2; exit 1; \
	fi; \
	echo "$(DEMO_IMAGE):$(VERSION) built"

## The bearer token both programs share, generated once: a 0444 file in a 0700 directory (readable by the
## containers' numeric user through the bind mount, by no other user on the host). Never in an image.
token: $(DOCKSTATE_TOKEN_FILE)
$(DOCKSTATE_TOKEN_FILE):
	@dir=$$(dirname "$@"); \
	if [ ! -d "$$dir" ]; then mkdir -p "$$(dirname "$$dir")" && mkdir -m 0700 "$$dir"; fi; \
	umask 077; head -c 32 /dev/urandom | base64 | tr -d '\n=' >"$@.tmp"; \
	chmod 0444 "$@.tmp" && mv "$@.tmp" "$@"; \
	echo "generated the bearer token $@"

# --- Check -----------------------------------------------------------------------------------------------------

## Every test, including those against the real Docker engine and the compose end-to-end test.
test:
	$(CARGO) test --workspace --all-targets --no-fail-fast

## The fault suite with bigger counts than `make test` gives it: engine kill -9 + restart and SIGSTOP on a
## private engine, FAULT_KILLS kill -9s of status-api during POST /snapshot, a churn over FAULT_CHURN
## containers for FAULT_CHURN_SECONDS. See docs/testing.md.
FAULT_KILLS ?= 180
FAULT_CHURN ?= 1000
FAULT_CHURN_SECONDS ?= 120
faults:
	FAULT_KILLS=$(FAULT_KILLS) FAULT_CHURN=$(FAULT_CHURN) FAULT_CHURN_SECONDS=$(FAULT_CHURN_SECONDS) \
	    $(CARGO) test --no-fail-fast -p status-api --test faults -p e2e --test engine_faults --test churn \
	    -- --nocapture

## Format the whole workspace in place.
fmt:
	$(CARGO) fmt --all

## Lints as CI runs them: any warning fails.
lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Benchmarks against the local engine (its own scoped workload, cleaned up): heal latency vs Docker's restart
## policy, /status vs the engine's list and nginx, memory, start to ready. A table, and JSON in target/bench/.
## BENCH_ARGS="--only synthetic": status-api against a synthetic engine of 1,000 to 20,000 containers.
BENCH_ARGS ?=
# wrk and nginx serve the /status comparison: a run of one other part does without them.
BENCH_NEEDS_WRK = $(if $(filter --only,$(BENCH_ARGS)),$(filter serve,$(BENCH_ARGS)),all)
bench: images
	@if [ -n "$(BENCH_NEEDS_WRK)" ]; then \
	    command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk" >&2; exit 1; }; \
	    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "make bench needs nginx: apt-get install nginx" >&2; exit 1; }; \
	fi
	$(CARGO) run --release --locked -p bench -- --bin-dir $(RELEASE_DIR) $(BENCH_ARGS)

## Everything CI does: install what is missing, start Docker if needed, check, lint, validate k8s/, test.
ci:
	bash .ci/run

# --- Recipes shared by up and demo ---------------------------------------------------------------------------

# The scope belongs to the baseline: a status-api started with another scope than its stored snapshot's is not
# ready and serves no drift. Rather than start one, read the snapshot in the state volume (with the image's own
# `baseline-scope`, read-only, no network) and say what was found and the two ways out.
STATE_VOLUME = $(COMPOSE_PROJECT_NAME)_state
REBASELINE ?=
define check-baseline-scope
if [ -n "$(REBASELINE)" ] || ! docker volume inspect $(STATE_VOLUME) >/dev/null 2>&1; then exit 0; fi; \
errors=$$(mktemp); trap 'rm -f "$$errors"' EXIT; \
stored=$$(docker run --rm --network none -e STATUS_API_SCOPE='$(STATUS_API_SCOPE)' \
    -v $(STATE_VOLUME):/var/lib/status-api:ro dockstate/status-api:$(DOCKSTATE_TAG) \
    --state-dir /var/lib/status-api baseline-scope 2>"$$errors"); \
status=$$?; \
if [ $$status -eq 2 ]; then \
    echo "The snapshot in volume $(STATE_VOLUME) was taken in scope: $${stored:-(none: the whole host)}" >&2; \
    echo "STATUS_API_SCOPE is: $(or $(STATUS_API_SCOPE),(empty: the whole host))" >&2; \
    echo "status-api would not be ready and the controller would hold. Either" >&2; \
    echo "  start with the snapshot's scope:   STATUS_API_SCOPE='$$stored' make $@" >&2; \
    echo "  or take a new baseline in this one: STATUS_API_SCOPE='$(STATUS_API_SCOPE)' make $@ REBASELINE=1" >&2; \
    echo "     (POST /snapshot with the token: what runs in '$(or $(STATUS_API_SCOPE),the whole host)' then becomes the baseline)" >&2; \
    exit 1; \
elif [ $$status -ne 0 ]; then \
    echo "cannot read the snapshot in volume $(STATE_VOLUME):" >&2; cat "$$errors" >&2; exit 1; \
fi
endef

# REBASELINE=1: once status-api answers, re-baseline it in its scope with the token.
define rebaseline-if-asked
if [ -z "$(REBASELINE)" ]; then exit 0; fi; \
deadline=$$(( $$(date +%s) + $(READY_TIMEOUT) )); \
until curl -fs -o /dev/null --max-time 2 $(API_URL)/health; do \
    if [ "$$(date +%s)" -ge "$$deadline" ]; then echo "status-api did not answer; nothing re-baselined" >&2; exit 1; fi; \
    sleep 1; \
done; \
curl -fsS --max-time 30 -o /dev/null -X POST -H "Authorization: Bearer $$(cat $(DOCKSTATE_TOKEN_FILE))" \
    $(API_URL)/snapshot && \
echo "re-baselined in scope: $(or $(STATUS_API_SCOPE),the whole host)"
endef

define wait-ready
deadline=$$(( $$(date +%s) + $(READY_TIMEOUT) )); \
for url in $(API_URL)/ready $(CONTROLLER_URL)/ready; do \
    until curl -fs -o /dev/null --max-time 2 "$$url"; do \
        if [ "$$(date +%s)" -ge "$$deadline" ]; then \
            echo "$$url did not answer ready within $(READY_TIMEOUT) s; its last answer:" >&2; \
            curl -sS --max-time 2 "$$url" >&2; echo >&2; \
            $(DC) ps >&2; \
            echo "See what happened: make logs" >&2; \
            exit 1; \
        fi; \
        sleep 1; \
    done; \
done
endef

define print-urls
snapshot=$$(curl -fsS --max-time 5 $(API_URL)/snapshot); \
taken=$$(printf '%s' "$$snapshot" | grep -o '"taken_at":"[^"]*"' | cut -d'"' -f4); \
members=$$(printf '%s' "$$snapshot" | jq '[.containers[] | select((.labels["org.opencontainers.image.title"] // "") | test("^dockstate (status-api|status-controller)$$") | not)] | length'); \
echo; \
echo "dockstate is up (project $(COMPOSE_PROJECT_NAME), scope: $(or $(STATUS_API_SCOPE),the whole host))"; \
echo "  live page       $(API_URL)/"; \
echo "  API docs        $(API_URL)/docs"; \
echo "  live status     $(API_URL)/status"; \
echo "  drift           $(API_URL)/drift"; \
echo "  actions taken   $(CONTROLLER_URL)/actions"; \
if [ "$$members" -eq 1 ]; then noun=container; else noun=containers; fi; \
echo "  the baseline    $(API_URL)/snapshot  ($$members $$noun besides dockstate's own, taken $$taken)"; \
echo; \
if [ -z "$(STATUS_API_SCOPE)" ]; then \
    echo "No STATUS_API_SCOPE: the snapshot holds every container that was running on this host when"; \
    echo "status-api first started. The controller restarts any of them that stops and STOPS any other"; \
    echo "container you start, unless it is labelled dockstate.policy=ignore (or observe)."; \
    echo "Limit it with e.g. STATUS_API_SCOPE=team=web make clean up; preview with: make plan"; \
fi
endef
