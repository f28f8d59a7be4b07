# The README names these targets; CI runs `.ci/run`: `make test`, `make smoke`, `make bench-ci`, `make soak SOAK_SECONDS=60`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PG_URL    ?= postgresql://postgres@127.0.0.1:5432/test
REDIS_URL ?= redis://127.0.0.1:6379/0

CONSOLE_JS := api/console/node_modules/.package-lock.json

.PHONY: run test smoke install install-test install-js install-console install-browser install-bench-js services bench bench-ci fuzz soak lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test,bench]'

install-js: install-console
	@command -v npm >/dev/null || { echo "npm is required for the JavaScript interop tests (apt-get install nodejs npm)"; exit 1; }
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error

## make install-console: the console's socket.io-client, from its lockfile (again only when it changed).
install-console: $(CONSOLE_JS)

$(CONSOLE_JS): api/console/package.json api/console/package-lock.json
	@command -v npm >/dev/null || { echo "npm is required for the console's socket.io-client (apt-get install nodejs npm)"; exit 1; }
	cd api/console && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## make install-browser: Debian's Chromium for the console's browser tests (Playwright drives it).
install-browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing chromium for the browser tests"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; fi

## make run: the server on the embedded SQLite default, with a demo tenant and the console on /.
run: install install-console
	ZAPLINE_ENV=dev $(BIN)/zapline serve

## make services: start PostgreSQL and Redis if they are installed here but down.
services:
	@if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then \
	  echo "starting PostgreSQL"; pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start || true; \
	  for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; fi
	@if command -v redis-server >/dev/null && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then \
	  echo "starting Redis"; redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; \
	  for i in 1 2 3 4 5; do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done; fi

## make test: install what the tests need (pip + npm) and run the whole suite.
test: install-test install-js install-bench-js install-browser services
	DATABASE_URL=$${DATABASE_URL:-$(PG_URL)} REDIS_URL=$${REDIS_URL:-$(REDIS_URL)} \
	  $(BIN)/python -m pytest -q -p no:cacheprovider

## make smoke: the quick start as a new user meets it (fresh venv, runtime deps only, make run,
## zapline listen, the specification's curl, SIGTERM). Needs ports 3333 and 3334 free.
smoke:
	bash .ci/smoke

## make bench: every scenario against Zapline, Node's socket.io and python-socketio, both
## shapes (10 and 100 tenants) and idle as medians of three, with the side-by-side table.
bench: install-test install-bench-js
	$(BIN)/python -m bench all --baseline python-socketio,node

## make install-bench-js: the Node.js baseline's socket.io, from its lockfile (every time).
install-bench-js:
	@command -v npm >/dev/null || { echo "npm is required for the Node.js baseline (apt-get install nodejs npm)"; exit 1; }
	cd bench/baselines/node && npm ci --no-audit --no-fund --loglevel=error

## make bench-ci: the product's promise, p99 < 100 ms at 1000 clients, nothing lost.
bench-ci: install-test
	$(BIN)/python -m bench ci

## make fuzz: coverage-guided fuzzing (atheris) of the Engine.IO/Socket.IO decoders and the
## webhook parser, FUZZ_SECONDS per target; crashes and new coverage land in tests/fuzz/corpus/.
FUZZ_SECONDS ?= 60
fuzz: install-test
	$(BIN)/pip install -q -e '.[fuzz]'
	$(BIN)/python tests/fuzz/fuzz.py --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

## make soak: 1000 clients with churn, webhooks at a steady rate and a storage outage (a full
## tmpfs: needs root) for SOAK_SECONDS; fails on any loss, duplicate, RSS or task growth.
SOAK_SECONDS ?= 600
soak: install-test
	$(BIN)/python -m bench.soak --seconds $(SOAK_SECONDS)

lint: install-test
	$(BIN)/ruff check engine api desk storage zapline bench tests
	$(BIN)/ruff format --check engine api desk storage zapline bench tests

typecheck: install-test
	$(BIN)/mypy engine

clean:
	rm -rf $(VENV) tests/js/node_modules api/console/node_modules bench/baselines/node/node_modules tests/artifacts zapline.db zapline.db-wal zapline.db-shm
