# The two commands: `make run` (set up + main job on embedded defaults) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup sysdeps run test lint bench clean lock

# Every package at the exact version constraints.txt names (the trained models are
# reproducible on one numeric stack only; see that file).
PIP_INSTALL := $(PY) -m pip install -q -c constraints.txt
# Installed without their declared dependencies (see setup); `make lock` freezes them too.
SILERO := "silero-vad>=5.1"
# Pinned exactly: the library's weights shape the training data.
RNNOISE := "pyrnnoise==0.4.5"

$(STAMP): pyproject.toml Makefile constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PIP_INSTALL) -e ".[dev,video]"
	# silero-vad ships the VAD ONNX model we run in onnxruntime; its declared torch
	# dependency (several GB) is not needed for that, so it is installed without deps.
	$(PIP_INSTALL) --no-deps $(SILERO)
	# pyrnnoise carries RNNoise (a C library with its weights built in) for the
	# noise-suppression training view; its Python wrapper's dependencies (matplotlib, an
	# audio I/O stack) are not needed: detectors/rnnoise.py loads the library with ctypes.
	$(PIP_INSTALL) --no-deps $(RNNOISE)
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/liveguard policy list
	$(VENV)/bin/liveguard governance check
	$(VENV)/bin/liveguard policy test
	@for f in examples/*.json; do echo; echo "== liveguard decide --input $$f"; $(VENV)/bin/liveguard decide --input $$f || exit $$?; done

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# Debian packages the suite needs: ffmpeg (with libgsm) for the GSM call-codec condition of
# `liveguard detectors evaluate` (PyPI's static ffmpeg builds lack the GSM encoder),
# libopencore-amrnb0 for its AMR-NB condition (Debian's ffmpeg has no AMR-NB encoder), and
# chromium for the board report's browser test (driven by Playwright with executable_path;
# never `playwright install`).
sysdeps:
	@command -v ffmpeg >/dev/null || { \
	  echo "installing ffmpeg (Debian package; needs root)"; \
	  apt-get install -y -q ffmpeg >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q ffmpeg >/dev/null; } || \
	  { echo "could not install ffmpeg: run 'apt-get install ffmpeg' as root"; exit 1; }; }
	@ldconfig -p | grep -q libopencore-amrnb.so.0 || { \
	  echo "installing libopencore-amrnb0 (Debian package; needs root)"; \
	  apt-get install -y -q libopencore-amrnb0 >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q libopencore-amrnb0 >/dev/null; } || \
	  { echo "could not install libopencore-amrnb0: run 'apt-get install libopencore-amrnb0' as root"; exit 1; }; }
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (Debian package; needs root)"; \
	  apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || \
	  { echo "could not install chromium: run 'apt-get install chromium' as root"; exit 1; }; }

test: setup lint sysdeps
	# OPA's own evaluator, the oracle the Rego tests compare regopy against.
	PYTHON=$(PY) ./scripts/fetch_opa_evaluator.sh
	$(PY) -m pytest

# A new constraints.txt: pyproject.toml's newest admissible releases in a scratch venv, frozen
# under the file's own header. Retrain both models under it (their cards name digests).
lock:
	set -e; d=$$(mktemp -d /tmp/liveguard-lock.XXXXXX); \
	python3 -m venv $$d; \
	$$d/bin/python -m pip install -q --upgrade pip; \
	$$d/bin/python -m pip install -q -e ".[dev,video]"; \
	$$d/bin/python -m pip install -q --no-deps $(SILERO) $(RNNOISE); \
	{ grep '^#' constraints.txt; $$d/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new; \
	mv constraints.txt.new constraints.txt; rm -rf $$d

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
