# The two commands of the README:
#   make demo   set up .venv, train bertprod_ner on the shipped sample with the
#               embedded MiniLM, and print the entities of example sentences
#   make test   set up .venv, run the linters and the type checker (make lint),
#               build the documentation site with --strict (make docs),
#               then the test suite (what .ci/run calls)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo lint docs test bench-ner

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

demo: setup
	$(PY) -m spacy bertprod demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy spacy_bertprod

# the site (docs/, mkdocs.yml) into the git-ignored site/; --strict fails on
# broken links and pages outside the nav; the reference pages are generated
# from the code (docs/hooks.py). Not --quiet: it hides the warnings that
# --strict counts, and the build passes with broken links.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

test: lint docs
	$(PY) -m pytest -q -rs -p no:cacheprovider

bench-ner: setup
	$(PY) bench/conll_ner.py
