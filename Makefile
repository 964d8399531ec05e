# Two commands for a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: setup demo test clean

# A first setup downloads ~1 GB (torch, ROS wheels) and takes minutes: say what happens and show pip's progress.
$(VENV)/.installed: setup.py
	@echo "[setup 1/3] creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "[setup 2/3] upgrading pip"
	$(PY) -m pip install --progress-bar on --upgrade pip
	@echo "[setup 3/3] installing urcdc with its CPU, ROS and test dependencies (minutes on a first run)"
	$(PY) -m pip install --progress-bar on -e ".[cpu,ros,dev]"
	@touch $@
	@echo "[setup] done: $(VENV) is ready"

setup: $(VENV)/.installed

demo: setup
	$(PY) -m urcdc_ros.demo

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build install log demo_output
