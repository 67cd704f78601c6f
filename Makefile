# convscope: `make lab` trains LeNet-5 on MNIST and writes the atlas; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
TORCH := torch==2.13.0

.PHONY: lab test bench lint install install-dev clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned, so nothing later pulls a newer (CUDA) build.
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

lab: install
	$(VENV)/bin/convscope lab

test: install-dev
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n 2 --dist loadgroup --durations=15

bench: install-dev
	@for b in benchmarks/[!_]*.py; do echo "== $$b" >&2; $(PY) $$b || exit 1; done

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf runs .pytest_cache .ruff_cache
