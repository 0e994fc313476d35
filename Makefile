# The two commands a new machine needs: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DURATION ?= 0

.PHONY: demo test test-fast bench venv system-packages image image-test clean test-reliability fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests need: chromium for the browser tests (Playwright's own browser download does
# not work offline), systemd-analyze for tests/test_systemd_units.py, pdftoppm to render the PDF reports.
# One apt run, only if missing.
SYSTEM_PACKAGES := $(if $(wildcard /usr/bin/chromium),,chromium) $(if $(shell command -v systemd-analyze),,systemd) \
  $(if $(shell command -v pdftoppm),,poppler-utils)

system-packages:
	@if [ -n "$(strip $(SYSTEM_PACKAGES))" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else \
	    echo "missing Debian packages: sudo apt-get install $(SYSTEM_PACKAGES)"; exit 1; \
	  fi; \
	fi

demo: $(STAMP)
	$(BIN)/appliance demo --data-dir demo-data --duration $(DEMO_DURATION)

test: $(STAMP) system-packages
	$(BIN)/python -m pytest -q -n 2 tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x -m "not slow and not browser" tests

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# Issue 8, docs/reliability.md: the crash runs (20,000 calls and 20 SIGKILLs on SQLite, 5,000 on PostgreSQL),
# a migration killed mid-way, write failures and a damaged journal. Sizes: RELIABILITY_CALLS, RELIABILITY_PG_CALLS.
RELIABILITY_CALLS ?= 20000
RELIABILITY_KILLS ?= 20
RELIABILITY_PG_CALLS ?= 5000
RELIABILITY_PG_KILLS ?= 10
RELIABILITY_SIZES = RELIABILITY_CALLS=$(RELIABILITY_CALLS) RELIABILITY_KILLS=$(RELIABILITY_KILLS) \
  RELIABILITY_PG_CALLS=$(RELIABILITY_PG_CALLS) RELIABILITY_PG_KILLS=$(RELIABILITY_PG_KILLS)
test-reliability: $(STAMP)
	$(RELIABILITY_SIZES) $(BIN)/python -m pytest -q -s -n 0 -p no:cacheprovider tests/reliability

# The fuzz tests with a long budget (FUZZ_EXAMPLES per hypothesis test, ATHERIS_RUNS per atheris target).
FUZZ_EXAMPLES ?= 2000
ATHERIS_RUNS ?= 200000
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) ATHERIS_RUNS=$(ATHERIS_RUNS) $(BIN)/python -m pytest -q -n 2 -p no:cacheprovider tests/fuzz

# The appliance disk image (x86_64, GPT, systemd-boot); needs root. See docs/installer-guide.md.
IMAGE_FILE := build/image/appliance-x86_64.img

image: $(STAMP)
	bash image/build.sh build/image

# Boots the image in QEMU (TCG, OVMF) and waits for both services and the web admin; builds it if missing.
image-test: $(STAMP)
	@[ -f $(IMAGE_FILE) ] || $(MAKE) image
	bash image/boot-test.sh $(IMAGE_FILE)

clean:
	rm -rf $(VENV) demo-data build *.egg-info
