# scoft-study: `make demo` serves the demo round; `make test` runs lint and the whole test suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -c constraints.txt -e '.[web,analysis,train,dev]'
	touch $(STAMP)

install: $(STAMP)

# Build the tiny models, a synthetic CCUB-like set, negatives and the demo's LoRA variants, sample the round with
# `scoft sample` (all on CPU, reusing var/), launch round `demo` (reused when it exists) and serve it in the foreground.
demo: $(STAMP)
	$(BIN)/python -m scoft.demo --design study_designs/demo.toml --var var
	$(BIN)/python -m app.rounds launch --design study_designs/demo.toml \
		--manifest var/rounds/demo/manifest.jsonl --round demo --reuse
	$(BIN)/python -m app

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	bash bench/run_all.sh

clean:
	rm -rf var .pytest_cache .ruff_cache
