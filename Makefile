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

# Build the demo round's images (placeholder drawings until `scoft sample` takes over), launch round
# `demo` (reused when it exists) and serve it in the foreground.
demo: $(STAMP)
	$(BIN)/python -m app.placeholder --design study_designs/demo.toml --out var/rounds/demo
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
