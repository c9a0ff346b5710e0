#!/usr/bin/env bash
# One-command setup of a vertspine environment (see README.md).
#
#   bash scripts/install.sh            # creates ./.venv
#   VENV=/path/to/venv bash scripts/install.sh
#   VENV=none bash scripts/install.sh  # install into the python found on PATH
#
# Steps: torch + torchvision, the pinned requirements, detectron2, vertspine (editable).
# detectron2 is taken from, in this order of preference:
#   1. an install that already imports in the environment          -> "existing"
#   2. the official source on GitHub (compiles detectron2._C)       -> "official-source"
#   3. the PyPI sdist pb1-detectron2==0.6 (official v0.6 Python
#      sources, installed without the compiled ops)                -> "pypi-0.6-no-compiled-ops"
# The choice is printed and recorded in <venv>/vertspine-detectron2-source.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
D2_GIT_URL=${D2_GIT_URL:-https://github.com/facebookresearch/detectron2.git}
D2_SDIST=pb1-detectron2==0.6

if [ "$VENV" = none ]; then
  PY=$(command -v python3 || command -v python)
  RECORD_DIR=$ROOT
else
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[install] creating virtual environment $VENV"
    python3 -m venv "$VENV"
  fi
  PY=$VENV/bin/python
  RECORD_DIR=$VENV
fi
PIP=("$PY" -m pip --disable-pip-version-check)

echo "[install] python: $("$PY" --version) at $PY"
"${PIP[@]}" install -q "pip>=23" wheel
echo "[install] torch, torchvision and requirements.txt"
"${PIP[@]}" install -q -r requirements.txt

d2_source=""
if "$PY" -c "import detectron2" 2>/dev/null; then
  d2_source=existing
elif timeout 20 git ls-remote "$D2_GIT_URL" HEAD >/dev/null 2>&1; then
  echo "[install] detectron2 from the official source (compiles detectron2._C; takes minutes)"
  if "${PIP[@]}" install --no-build-isolation "git+$D2_GIT_URL"; then
    d2_source=official-source
  else
    echo "[install] building the official source failed; falling back to $D2_SDIST" >&2
  fi
fi
if [ -z "$d2_source" ]; then
  echo "[install] detectron2 from the PyPI sdist $D2_SDIST, without compiled ops (detectron2._C)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "${PIP[@]}" download -q --no-deps --no-build-isolation "$D2_SDIST" -d "$work"
  tar xzf "$work"/pb1-detectron2-0.6.tar.gz -C "$work"
  src="$work/pb1-detectron2-0.6"
  # The sdist ships no C++ sources for detectron2._C; build the pure-Python package only.
  grep -q 'ext_modules=get_extensions(),' "$src/setup.py" || {
    echo "[install] unexpected $D2_SDIST setup.py: cannot disable its extension build" >&2; exit 1; }
  sed -i 's/ext_modules=get_extensions(),/ext_modules=[],/' "$src/setup.py"
  # --no-deps: its runtime dependencies are pinned in requirements.txt (its own list pins black==21.4b2).
  "${PIP[@]}" install -q --no-deps --no-build-isolation "$src"
  d2_source=pypi-0.6-no-compiled-ops
fi
echo "$d2_source" > "$RECORD_DIR/vertspine-detectron2-source.txt"

echo "[install] vertspine (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .

"$PY" -m vertspine.collect_env
echo "[install] done. detectron2 source: $d2_source"
