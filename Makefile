# One virtual environment per checkout; every target goes through it.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install test demo lint clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(PY)
	$(PIP) install --quiet -e '.[dev]'

test: install
	$(PY) -m pytest -q

demo: install
	$(PY) -m cyclegan_pl fit --config configs/demo.yaml

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) runs *.egg-info
