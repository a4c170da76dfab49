#!/usr/bin/env bash
# The GPU figures of results/perf/: run on a CUDA host from the repository root, e.g.
#   bash scripts/device_perf.sh results/perf/h200
# Each `disco-bench perf` call measures reference and optimized side by side on the same card.
set -uo pipefail
out=${1:-results/perf}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
common=(--pair r50-effb0 --device cuda --resolution 224 --batch 256 --steps 5 --rounds 3 --warmup 3 --workers 8)
timeout 200 python3 -m harness perf "${common[@]}" --save "$out/perf-cuda-r50-effb0-224-b256.json"
timeout 150 python3 -m harness perf "${common[@]}" --teacher-bn eval --save "$out/perf-cuda-r50-effb0-224-b256-teacher-eval.json"
