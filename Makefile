# Two commands for a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: setup demo test bench clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[cpu,ros,dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m urcdc_ros.demo

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build install log demo_output
