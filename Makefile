# gossipsim: set-up, demo, tests. Only Python 3.11+ is needed on the machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint bench clean venv notebooks

venv: $(STAMP)

# setuptools warns about every editable install of a flat layout ("Editable installation.
# Please be careful with folders ..."): harmless here, so it is filtered out.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gossipsim run configs/quickstart.yaml --out results
	$(BIN)/gossipsim plot results/quickstart --x time --y loss --output results/quickstart/loss_vs_time.png
	@echo "plot written to results/quickstart/loss_vs_time.png"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

lint: $(STAMP)
	$(BIN)/ruff check gossipsim tests benchmarks
	$(BIN)/ruff format --check gossipsim tests benchmarks
	$(BIN)/mypy gossipsim

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# Render notebooks/*.py (jupytext percent scripts) to notebooks/build/*.ipynb with outputs.
# QUICK=1 (default) runs the seconds-long versions; `make notebooks QUICK=0` the full ones.
QUICK ?= 1
notebooks: $(STAMP)
	GOSSIPSIM_QUICK=$(QUICK) $(BIN)/python tools/render_notebooks.py
	@echo "notebooks rendered to notebooks/build/ (results under results/notebooks/)"

clean:
	rm -rf $(VENV) results .pytest_cache
	find gossipsim -name '*.nbi' -delete -o -name '*.nbc' -delete  # numba's compiled kernels
