# elk-pipeline: `make demo` runs the main job, `make test` runs everything against real servers.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help venv system-deps node-deps test-deps stack-up stack-down stack-status stack-clean test test-fast lint demo bench bench-deps docs ecs-fields clean

help:
	@echo "make demo        run the whole pipeline locally on simulated services and print a summary"
	@echo "make test        lint + every test, against a real Kafka broker and OpenSearch (started for you)"
	@echo "make lint        ruff + mypy"
	@echo "make stack-up    start Kafka + OpenSearch + an Elasticsearch node from Maven Central jars (endpoints in .stack/env)"
	@echo "make stack-down  stop them (by pid)"
	@echo "make bench       run the benchmarks (results in docs/BENCHMARKS.md)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -U pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[all,dev,bench]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# the shipper's compiled fast path (native/, Rust): optional, so a machine without cargo or a failed
# build keeps the Python fast path (same documents, more CPU); rebuilt when its sources change
NATIVE_SRC := native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs)
NATIVE_STAMP := $(VENV)/.native-$(shell cat $(NATIVE_SRC) | sha1sum | cut -c1-12)

$(NATIVE_STAMP): $(STAMP) $(NATIVE_SRC)
	@rm -f $(VENV)/.native-*
	@if command -v cargo >/dev/null; then \
	  $(BIN)/pip install -q --disable-pip-version-check --force-reinstall --no-deps ./native \
	    || echo "elk-native did not build: the shipper's fast path runs in Python"; \
	else echo "no cargo: elk-native not built, the shipper's fast path runs in Python"; fi
	@touch $@

venv: $(STAMP) $(NATIVE_STAMP)

# the local stack needs a JDK and Maven; the documented Node logger (docs/ingest.md) is run by a test
# with Node; on a fresh Debian machine they come from apt
system-deps:
	@command -v java >/dev/null && command -v javac >/dev/null && command -v mvn >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless maven)
	@command -v node >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs)

# npm packages the tests run, pinned by a lockfile beside them (installed again when it changes)
%/node_modules/.package-lock.json: %/package-lock.json
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	cd $* && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# the OpenTelemetry JS SDK the OTLP intake's tests send with
NODE_DIR := tests/otlp/node

node-deps: $(NODE_DIR)/node_modules/.package-lock.json

# the tailer's tests read logs written by the real programs: nginx, PostgreSQL, Redis (Debian) and
# pino/pino-http (npm, lockfile in tests/tail/node); rsyslog's imfile -> omkafka is its benchmark peer
TAIL_DEBS := nginx-light postgresql redis-server rsyslog-kafka
TAIL_NODE_DIR := tests/tail/node

test-deps: $(TAIL_NODE_DIR)/node_modules/.package-lock.json
	@command -v nginx >/dev/null && command -v redis-server >/dev/null \
	  && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
	  && test -e /usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so || \
	  (apt-get update -qq && apt-get install -y -qq $(TAIL_DEBS))

stack-up: venv system-deps
	$(BIN)/python -m stack up

stack-down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m stack down; else $(PY) -m stack down; fi

stack-status:
	@$(PY) -m stack status

stack-clean:
	$(PY) -m stack clean

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint stack-up node-deps test-deps
	$(BIN)/pytest -q -rfEs $(PYTEST_ARGS)

# the unit tests and the quick stack tests, without the long fault tests
test-fast: stack-up node-deps test-deps
	$(BIN)/pytest -q -rfEs -m "not slow" $(PYTEST_ARGS)

demo: stack-up
	$(BIN)/python -m demo

# rsyslog (imkafka -> omelasticsearch) is one of the peers the shipper benchmark runs against
bench-deps:
	@command -v rsyslogd >/dev/null && test -e /usr/lib/x86_64-linux-gnu/rsyslog/imkafka.so && \
	  test -e /usr/lib/x86_64-linux-gnu/rsyslog/omelasticsearch.so || \
	  (apt-get update -qq && apt-get install -y -qq rsyslog-kafka rsyslog-elasticsearch)

bench: stack-up bench-deps test-deps
	$(BIN)/python -m bench

docs: venv
	$(BIN)/python -m collector.settings_reference

# shipper/ecs_fields.json (committed) from Elastic's npm package @elastic/ecs; needs node and npm
ecs-fields: venv
	$(BIN)/python tools/ecs_fields.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
