# VitalStream: the two commands.
#   make demo   set up, start Kafka + InfluxDB, run the live demo
#   make test   set up, start Kafka + InfluxDB, run the whole test suite
# The first run fetches Kafka's jars (~1 min) and builds InfluxDB from source
# (~25 min on 2 cores); both are cached under ~/.cache/vitalstream.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DEBIAN_FRONTEND := noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test system-deps install services-up services-down lint

demo: install services-up
	$(BIN)/vitalstream demo

test: install services-up
	@set +e; $(BIN)/pytest -q; code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests: failing"; code=1; fi; \
	exit $$code

# Tools the InfluxDB build needs that apt provides (Go and Rust come from go.dev and rustup),
# and the headless browser of the ward board's tests (tests/browser/: chromium + its driver).
system-deps:
	@missing=""; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		echo "installing:$$missing"; \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq $$missing; \
	fi

install: system-deps $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev,train,bench]'
	touch $@

services-up: install
	$(BIN)/vitalstream services up

services-down:
	$(BIN)/vitalstream services down

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
