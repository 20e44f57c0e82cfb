# Two entry points for a fresh machine; both create (or reuse) the project-local .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[yolo,test]'
	touch $(STAMP)

# The main job, short form, on the local CPU: the study's speedup table for YOLOv4-tiny (a model
# trained one epoch on a generated synthetic set, int8, baselines, untuned TVM, 200 tuning trials
# per precision, the winner and where the time went; experiments/results/study-200.md).
demo: $(STAMP)
	$(PY) experiments/reproduce_study.py

# The whole suite, in two processes (a test file stays in one; tests/conftest.py gives each
# process's TVM kernels one thread), the 25 slowest listed.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=25

# What a contributor runs while editing: everything but the tests marked slow (under 3 minutes).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" --durations=10

clean:
	rm -rf $(VENV) work_dirs .pytest_cache .hypothesis
