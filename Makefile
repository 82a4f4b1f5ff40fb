# Two commands for a newcomer: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
DATABASE_DIR ?= database
FEATURES_DIR ?= features
export DATABASE_DIR FEATURES_DIR

.PHONY: run test test-fast install catalogue index lint clean bench-quality fuzz browser compose-test

# a virtualenv left half made (python3-venv missing: no pip in it) or made by an older Python
# is made again, not reused for ever
$(VENV)/.installed: pyproject.toml
	@$(PY) -c 'import pip, sys; assert sys.version_info >= (3, 11)' 2>/dev/null || { \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	@echo "make: installing the dependencies into $(VENV) (a few minutes the first time)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

$(DATABASE_DIR)/pairs.csv: | $(VENV)/.installed
	$(PY) -m worker.cli.sample --out "$(DATABASE_DIR)"

catalogue: $(DATABASE_DIR)/pairs.csv

# indexes the catalogue that is there: a mistyped DATABASE_DIR must not get a sample catalogue
# written into it and served (`make catalogue` writes the sample; `make run` does on its own)
index: $(VENV)/.installed
	@test -f "$(DATABASE_DIR)/pairs.csv" || { echo "make index: no $(DATABASE_DIR)/pairs.csv;" \
	  "put the catalogue there (README, 'The catalogue'), or 'make catalogue' for the sample" >&2; \
	  exit 2; }
	$(PY) -m worker.cli.index

# the supervisor makes the sample catalogue and its index itself (--prepare), once it holds
# the folder's lock: a second `make run` is refused before it builds anything
run: $(VENV)/.installed
	$(PY) -m worker.cli.supervisor --prepare

# The browser tests drive Debian's chromium (installed with apt; Playwright's own browser
# download is never used), and tests/test_nginx.py runs compose's nginx template in Debian's
# nginx, its own process on 127.0.0.1 (on a host with an init system the package also starts
# the distribution's nginx service on port 80; the tests do not use it).
# tests/test_browser.py launches /usr/bin/chromium: another chromium on PATH is not it
browser:
	@test -x /usr/bin/chromium -a -x /usr/sbin/nginx -a -x /usr/bin/envsubst || command -v apt-get >/dev/null || { \
	  echo "make test: the tests need Debian's chromium at /usr/bin/chromium and nginx at" \
	    "/usr/sbin/nginx, and there is no apt-get here; install them, or run 'make test-fast'" >&2; \
	  exit 2; }
	@test -x /usr/bin/chromium -a -x /usr/sbin/nginx -a -x /usr/bin/envsubst || { \
	  SUDO=$$(test "$$(id -u)" -eq 0 || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium nginx gettext-base >/dev/null; }

# Everything (what CI runs): real Redis, real workers, the real VGG16, the browser; the
# slowest 30 tests are listed, so the suite's time can be watched against its aim.
test: $(VENV)/.installed browser
	$(PY) -m pytest -q -ra --durations=30

# The fast tier while editing: no model, no worker processes (tests not marked slow).
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -ra -m "not slow"

bench-quality: $(VENV)/.installed
	$(PY) -m benchmarks.quality --descriptor grey-dir345-lw256-shape-colour-pattern-proportions \
		--precision auto --front-weights 0,0.25,0.5,0.75,1  # the service's descriptor (its default: flatten)

fuzz: $(VENV)/.installed
	$(PY) -m benchmarks.fuzz_upload --seconds 60

# docker-compose.yml end to end on 127.0.0.1 (needs a Docker engine; not part of `make test`).
compose-test:
	bash deploy/compose-test.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check web worker tests benchmarks

clean:
	rm -rf $(VENV) .run .pytest_cache
