# Transformer Visual Lab — `make run` opens the lab, `make test` checks the import contracts and runs the whole suite.
# Both create .venv and install everything on a fresh machine first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.tvlab-installed

# torch is installed first, by itself, so each machine gets a build that suits it:
#  1. a torch already in the venv is kept;
#  2. else, when pip can find a torch wheel without an index (a local wheelhouse /
#     find-links, as on CI and workshop machines), that one — seconds, no download
#     (its small dependencies come from the usual index);
#  3. else Linux without an NVIDIA driver gets the CPU build from PyTorch's CPU index
#     (about 200 MB instead of about 3 GB), and everything else (NVIDIA Linux, macOS,
#     Windows) gets PyPI's default build (CUDA on Linux, MPS on macOS).
# Override with e.g. `make run TORCH_VERSION=2.14.1` or `TORCH_INDEX=<url>`.
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
# Every other package at the version the suite, the bundle and CI were run with
# (packaging/constraints.txt, refreshed by `make lock`), so a new upstream release cannot
# break a fresh install unseen. `make run CONSTRAINTS=` installs from pyproject.toml's
# ranges alone.
CONSTRAINTS ?= packaging/constraints.txt
PIN := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

.PHONY: run test venv selftest bench clean bundle bundle-check lock

run: $(STAMP)
	$(PY) -m lab gui

# The contracts first (pyflakes and import order; core/panel/widget layering — see
# pyproject.toml), so a violation fails `make test` and CI before the suite runs.
test: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -n 2 --dist loadfile -q

selftest: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m lab selftest --out /tmp/tvlab-shots

bench: $(STAMP)
	$(PY) -m lab bench all --save bench/results

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(CONSTRAINTS) | $(PY)
	@$(PY) -c "import torch" 2>/dev/null && echo "torch: keeping $$($(PY) -c 'import torch; print(torch.__version__)')" || { \
	  if [ -n "$(TORCH_INDEX)" ]; then \
	    $(PIP) install -q "torch==$(TORCH_VERSION)" --index-url "$(TORCH_INDEX)"; \
	  elif $(PIP) install -q --dry-run --no-index --no-deps "torch==$(TORCH_VERSION)" >/dev/null 2>&1; then \
	    $(PIP) install -q "torch==$(TORCH_VERSION)" && echo "torch: installed $(TORCH_VERSION) from a local wheel"; \
	  elif [ "$$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1; then \
	    $(PIP) install -q "torch==$(TORCH_VERSION)" --index-url "$(TORCH_CPU_INDEX)"; \
	  else \
	    $(PIP) install -q "torch==$(TORCH_VERSION)"; \
	  fi; }
	$(PIP) install -q -e ".[test]" $(PIN) 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import lab, torch, transformers, PySide6, pyqtgraph, onnxruntime, pytest, ruff, importlinter" \
	  || { echo "install failed: see the messages above" >&2; exit 1; }
	@# An editable install leaves the lab's own modules uncompiled (pip compiles only what it
	@# copies): compile them now, so even the first start reads bytecode.
	@$(PY) -m compileall -q lab models >/dev/null
	@touch $(STAMP)

clean:
	rm -rf $(VENV) build dist *.egg-info

# Record what a fresh install from pyproject.toml's ranges picks today (with PyInstaller)
# in packaging/constraints.txt; then run `make test` and `make bundle bundle-check` on it.
lock:
	rm -rf .venv-lock
	$(MAKE) --no-print-directory VENV=.venv-lock CONSTRAINTS= venv
	.venv-lock/bin/python -m pip --disable-pip-version-check install -q "pyinstaller>=6.10"
	packaging/lock.sh .venv-lock
	rm -rf .venv-lock

# Installers: a PyInstaller one-folder bundle in dist/tvlab/, then
# dist/tvlab-VERSION-linux-x86_64.tar.gz and dist/tvlab_VERSION_amd64.deb. The zoo is
# taken from models/*/ (train it first); `make bundle-check` runs the bundle's selftest
# with no Python on the PATH and no network.
bundle: $(STAMP)
	@$(PY) -c "import PyInstaller" 2>/dev/null || $(PIP) install -q "pyinstaller>=6.10" $(PIN)
	@ls models/*/config.json >/dev/null 2>&1 || echo "bundle: warning: no zoo in models/ — the bundle will have no built-in models" >&2
	rm -rf dist/tvlab
	@start=$$(date +%s); \
	  $(PY) -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller build_spec.spec \
	  && echo "bundle: dist/tvlab built in $$(( $$(date +%s) - start )) s, $$(du -sh dist/tvlab | cut -f1) unpacked"
	packaging/build_deb.sh $$($(PY) -c "import lab; print(lab.__version__)")

bundle-check:
	packaging/bundle_check.sh dist/tvlab
