# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_DIR ?= demo-site

.PHONY: demo test lint typecheck unit integration sysdeps venv bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

sysdeps:
	bash scripts/install-system-deps.sh

demo: sysdeps $(STAMP)
	bash scripts/demo.sh $(BIN)/dicomhaven $(DEMO_DIR)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

# Two pytest-xdist workers, one module at a time each; TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2

test: sysdeps $(STAMP) lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python benchmarks/import.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
