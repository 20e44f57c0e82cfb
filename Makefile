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

# The main job on the embedded default: tune a YOLOv4-tiny conv layer on the local CPU.
demo: $(STAMP)
	$(VENV)/bin/minansor tune-op yolo-conv-104x104-64-64-3x3 --trials 128 --work-dir work_dirs/demo

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) work_dirs .pytest_cache .hypothesis
