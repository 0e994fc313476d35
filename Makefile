# The two commands a new machine needs: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DURATION ?= 0

.PHONY: demo test test-fast bench venv browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's chromium for the browser tests (Playwright's own browser download does not work offline).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium missing: run 'sudo apt-get install chromium'"; exit 1; \
	  fi; \
	fi

demo: $(STAMP)
	$(BIN)/appliance demo --data-dir demo-data --duration $(DEMO_DURATION)

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n 2 tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x -m "not slow and not browser" tests

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) demo-data build *.egg-info
