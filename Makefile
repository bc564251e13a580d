# mirflow: `make run` (demo library end to end) and `make test` (the test suite).
# Both create the environment first if it is missing or out of date.

VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.mirflow-installed

.PHONY: setup run test test-fast bench lint models lock clean-demo

run: setup
	$(VENV)/bin/snakemake --profile profiles/local

test: setup
	$(PYTHON) -m pytest

test-fast: setup
	$(PYTHON) -m pytest -m "not slow"

bench: setup
	$(PYTHON) benchmarks/demo_pipeline.py
	$(PYTHON) benchmarks/separation.py
	$(PYTHON) benchmarks/model_passes.py
	$(PYTHON) benchmarks/captions.py

lint: setup
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/ruff check .

models: setup
	$(PYTHON) -m mirflow.models download --config config/config.yaml

setup: $(STAMP)

# Re-resolve envs/requirements.lock from pyproject.toml and envs/constraints.txt.
lock:
	python3 envs/lock.py

$(STAMP): pyproject.toml envs/requirements.lock envs/setup.sh
	bash envs/setup.sh $(VENV)
	touch $@

clean-demo:
	rm -rf results/demo
