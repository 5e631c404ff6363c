# Two commands matter: `make demo` and `make test`. Both build the local virtualenv first when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch 2.14.1 / torchvision 0.29.1 are the releases this project is tested with; pip takes the
# wheels from a local find-links folder when the machine has one, else from PyPI.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= faiss,notebooks,dev,slurm
RUN    ?= runs/demo

.PHONY: venv demo test browser-test clean-venv

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

# JupyterLab on localhost, a notebook run in headless Debian Chromium driven by Selenium; the widget
# screenshots land in docs/images/. Installs chromium + chromium-driver (apt-get, as root) and the
# `browser` extra when missing, so it works on a fresh machine.
browser-test: venv
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }
	$(PY) -c 'import selenium' 2>/dev/null || $(PY) -m pip install --quiet -e '.[$(EXTRAS),browser]'
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m browser tests/browser

clean-venv:
	rm -rf $(VENV)
