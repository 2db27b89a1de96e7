# The two commands of the README:
#   make demo   set up .venv, train bertprod_ner on the shipped sample with the
#               embedded MiniLM, and print the entities of example sentences
#   make test   set up .venv, run the linters and the type checker (make lint),
#               then the test suite (what .ci/run calls)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo lint test bench-ner

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

test: lint
	$(PY) -m pytest -q -rs -p no:cacheprovider

bench-ner: setup
	$(PY) bench/conll_ner.py
