#!/usr/bin/env bash
# The optional DALI loader (disco/data/dali.py) is tested on DALI's CPU operators: install the
# version the CUDA image pins (docker/Dockerfile's DALI_PACKAGE) into the venv, unless it is there.
set -euo pipefail
cd "$(dirname "$0")/.."
package="$(sed -n 's/^ARG DALI_PACKAGE="\(.*\)"$/\1/p' docker/Dockerfile)"
[ -n "$package" ] || { echo "setup-dali: no ARG DALI_PACKAGE in docker/Dockerfile" >&2; exit 1; }
if ! .venv/bin/python -c "import nvidia.dali" 2>/dev/null; then
    .venv/bin/pip install -q "$package"
fi
.venv/bin/python -c "import nvidia.dali as dali; print('DALI', dali.__version__)"
