#!/usr/bin/env bash
# Install blend-core (CPU torch first) and run the quick BLEND demo on built-in synthetic data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -c "import torch" 2>/dev/null || $PY -m pip install -q torch==2.13.0
$PY -m pip install -q -e .
blend demo --out "${1:-runs/demo}" --overwrite
