# Two entry points for a fresh machine; both create (or reuse) the project-local .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[yolo,test]'
	touch $(STAMP)

# The main job, short form, on the local CPU: the study's speedup table for YOLOv4-tiny (train on
# a generated synthetic set, quantize, baselines, 200 tuning trials per precision).
demo: $(STAMP)
	$(PY) experiments/reproduce_study.py

test: $(STAMP)
	$(PY) -m pytest -q --durations=25

clean:
	rm -rf $(VENV) work_dirs .pytest_cache .hypothesis
