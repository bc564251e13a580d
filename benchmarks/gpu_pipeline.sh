#!/usr/bin/env bash
# The whole-workflow GPU benchmark (benchmarks/gpu_pipeline.py) on a fresh GPU machine that
# has nothing but this repo (and Python >= 3.11, ffmpeg or root + apt for it).
#
#   bash benchmarks/gpu_pipeline.sh [WHEEL_DIR] [benchmark options, e.g. --beat-this]
#   MINUTES=10 bash benchmarks/gpu_pipeline.sh      # a smaller library (default 30 minutes)
#
# Set-up, one of two ways:
# - WHEEL_DIR given (a machine without a package index): envs/setup.sh installs from that
#   folder only (PIP_NO_INDEX, PIP_FIND_LINKS). It must hold every wheel of
#   envs/requirements.lock (`pip download --no-deps -r envs/requirements.lock -d DIR`), a
#   CUDA build of the locked torch with its nvidia-*/triton wheels, and a built
#   llama_cpp_python wheel (pip keeps one after a first `make setup`), or pip compiles it.
# - no WHEEL_DIR: `make setup` from PyPI, with TORCH_INDEX (default PyTorch's cu126 index)
#   for a CUDA torch. An existing .venv is kept as it is: with a CPU torch in it, start from
#   a clean .venv (rm -rf .venv), or the benchmark runs on the CPU (it says so).
#
# Time budget, about 8 minutes in all (estimates, not measured: no GPU machine was at hand
# when this was written, so this script has not been run):
# - set-up from a full WHEEL_DIR: 1-2 min (unpacking torch and the CUDA wheels, the numba
#   JIT seed); from PyPI: downloads (about 3 GB with CUDA torch) plus compiling llama.cpp for
#   llama-cpp-python, 3-6 min on 16 cores. That alone can take the budget: use a WHEEL_DIR,
#   or MINUTES=10;
# - the benchmark, 30 minutes of music: writing the models and the library (~30 s), then
#   the run. On the GPU: htdemucs, AudioBox, Beat This! (--beat-this). On the CPU cores:
#   madmom's rhythm, features, Essentia classifiers, basic-pitch, ingest and crops, which
#   dominate the wall time once separation is on the GPU.
# The table it prints ends with the whole run's realtime factor; per-rule GPU utilisation
# and peak memory come from nvidia-smi sampled every 0.5 s.
set -euo pipefail
cd "$(dirname "$0")/.."

wheels=""
if [ $# -gt 0 ] && [ -d "$1" ]; then
    wheels=$(cd "$1" && pwd)
    shift
fi

start=$SECONDS
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
    echo "gpu_pipeline.sh: no nvidia-smi on this machine: the benchmark will run on the CPU" >&2
fi

if [ -n "$wheels" ]; then
    echo "gpu_pipeline.sh: set-up from $wheels (no package index)"
    PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheels" TORCH_INDEX="file://$wheels" bash envs/setup.sh .venv
else
    echo "gpu_pipeline.sh: set-up from PyPI (make setup)"
    TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl/cu126}" make setup
fi
echo "gpu_pipeline.sh: set-up took $((SECONDS - start)) s"

.venv/bin/python -c 'import torch; print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")'

bench=$SECONDS
.venv/bin/python benchmarks/gpu_pipeline.py --device auto --minutes "${MINUTES:-30}" "$@"
echo "gpu_pipeline.sh: benchmark took $((SECONDS - bench)) s, $((SECONDS - start)) s in all"
