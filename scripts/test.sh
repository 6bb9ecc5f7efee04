#!/usr/bin/env bash
# Install blend-core, its two plugins, the template third-party plugin and the test tools; run every test (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# The CPU build of torch first: a bare 'torch' requirement would pull a multi-GB CUDA build.
$PY -c "import torch" 2>/dev/null || $PY -m pip install -q torch==2.13.0
$PY -m pip install -q -e ".[test,sweep,report]" -e "plugins/blend-nwb[test]" -e plugins/blend-spatial -e examples/template-plugin
# nlb_tools is the independent reference for NLB metrics and tensors; its pins are stale, so --no-deps.
$PY -m pip install -q --no-deps "nlb-tools==0.0.4"
$PY -m pytest -q "$@"
