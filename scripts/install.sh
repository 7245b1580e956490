#!/usr/bin/env bash
# Create the project's virtual environment and install colliderflow with its pinned dependencies.
# torch==2.13.0 goes first: any other torch requirement resolved by pip would pull a multi-GB CUDA build.
set -euo pipefail
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
cd "$(dirname "$0")/.."
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet torch==2.13.0
"$VENV/bin/python" -m pip install --quiet -e '.[test]'
"$VENV/bin/python" -m pip check
