# Two commands matter: `make demo` and `make test`. Both build the local virtualenv first when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch 2.14.1 / torchvision 0.29.1 are the releases this project is tested with; pip takes the
# wheels from a local find-links folder when the machine has one, else from PyPI.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= faiss,notebooks,dev
RUN    ?= runs/demo

.PHONY: venv demo test bench clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

demo: venv
	$(VENV)/bin/lwtgpf demo --out $(RUN)

test: venv
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
