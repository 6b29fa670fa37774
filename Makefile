# Two commands do all the set-up: `make demo` and `make test` each create
# .venv and install the project on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test ui bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: gig-etl needs Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gig-etl demo

test: $(STAMP)
	$(BIN)/pytest

ui: $(STAMP)
	$(BIN)/gig-etl ui

clean:
	rm -rf $(VENV)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(if $(MESSAGES),--messages $(MESSAGES))
