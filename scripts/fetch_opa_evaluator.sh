#!/usr/bin/env bash
# Fetch OPA's own Go evaluator (opa-golib-python-bindings) for the Rego oracle tests and
# benchmarks. The wheel's metadata asks for Python 3.14, but its shared library and ctypes
# wrapper load fine from 3.11, so we download it for 3.14 and unpack it into a cache folder
# instead of installing it. Idempotent: does nothing when the evaluator is already there.
set -euo pipefail

VERSION="0.4.4"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${LIVEGUARD_OPA_EVALUATOR_DIR:-$ROOT/.cache/opa}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

if [ -f "$DEST/opa_bindings/__init__.py" ] && [ -f "$DEST/.version-$VERSION" ]; then
  exit 0
fi

mkdir -p "$DEST/wheels"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.14 \
  --dest "$DEST/wheels" "opa-golib-python-bindings==$VERSION"
WHEEL="$(ls "$DEST"/wheels/opa_golib_python_bindings-"$VERSION"-*.whl | head -n 1)"
"$PYTHON" - "$WHEEL" "$DEST" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf:
    zf.extractall(sys.argv[2])
PY
touch "$DEST/.version-$VERSION"
echo "OPA evaluator $VERSION unpacked into $DEST"
