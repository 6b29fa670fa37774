# Two commands do all the set-up: `make demo` and `make test` each create
# .venv and install the project on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test ui stack postgres bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: gig-etl needs Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gig-etl demo

test: $(STAMP) postgres
	$(BIN)/pytest

ui: $(STAMP)
	$(BIN)/gig-etl ui

# Postgres (Debian's package) and SeaweedFS on loopback ports, parallel workers,
# end to end; both servers stopped at the end.
stack: $(STAMP) postgres
	$(BIN)/gig-etl stack

# The team deployment's tests and `make stack` start a real Postgres server.
postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		echo "installing Debian's postgresql package"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq postgresql >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql; }; }

clean:
	rm -rf $(VENV)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(if $(MESSAGES),--messages $(MESSAGES))
