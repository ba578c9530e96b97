# Two commands set everything up: `make run` and `make test`.
# The install step runs once per pyproject.toml: its stamp file is keyed on the file's hash.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell (sha256sum pyproject.toml 2>/dev/null || shasum -a 256 pyproject.toml) | cut -c1-16)

.PHONY: install run test test-fast lint bench browser docs docs-serve clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,optuna]"
	@rm -f $(VENV)/.installed-*
	@touch $@

run: install
	$(BIN)/focalbench sweep gamma=0,1,2,5

# The tests run on every core (pytest-xdist), one test module per worker at a time (--dist loadscope: a
# module's shared fixtures are built once); tests/conftest.py gives each worker its share of torch's threads.
test: install
	$(BIN)/python -m pytest -q -n auto --dist loadscope

test-fast: install
	$(BIN)/python -m pytest -q -n auto --dist loadscope -m "not slow"

lint: install
	$(BIN)/ruff check focalbench tests bench
	$(BIN)/ruff format --check focalbench tests bench

# Headless Chromium for the report.html browser test (Debian's package; needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { $(if $(shell command -v sudo),sudo,) apt-get update -qq && \
	    $(if $(shell command -v sudo),sudo,) apt-get install -y -qq chromium >/dev/null; }

bench: install
	$(BIN)/python bench/run_all.py

# The documentation site (mkdocs.yml, docs/): built into site/ (gitignored); --strict fails on any warning,
# such as a dead link or a page missing from the nav. tests/test_docs.py runs the same build in `make test`.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) build site *.egg-info
