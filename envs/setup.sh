#!/usr/bin/env bash
# Create (or complete) mirflow's virtual environment. Called by `make setup`;
# safe to run again. Usage: bash envs/setup.sh [VENV_DIR]
#
# The install traps it steps around (see README "Installation notes"):
# - torch is pinned (envs/constraints.txt) to the CPU wheel; unpinned, the
#   audio-separator -> onnx2torch -> torchvision chain pulls a CUDA torch.
# - torchvision/torchaudio arrive as dependencies as CUDA builds that cannot
#   load beside the CPU torch; no mirflow code path needs them, so they go.
# - basic-pitch's declared dependencies pull TensorFlow and numpy 1.x: it is
#   installed with --no-deps (what it really needs is in pyproject.toml).
set -euo pipefail

venv=${1:-.venv}
cd "$(dirname "$0")/.."

# ---- system packages -------------------------------------------------------
# ffmpeg: decoding m4a/AAC and other containers libsndfile cannot read, and
# audio-separator needs it on PATH.
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing system packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "setup: please install these system packages first: ${missing[*]}" >&2
        echo "       (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

# ---- Python environment ----------------------------------------------------
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: mirflow needs Python >= 3.11 ($python is $("$python" --version 2>&1))" >&2
    exit 1
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install --quiet --upgrade pip setuptools wheel
"${pip[@]}" install --constraint envs/constraints.txt --editable '.[test]'
"${pip[@]}" install --constraint envs/constraints.txt --no-deps basic-pitch
"${pip[@]}" uninstall --yes torchvision torchaudio >/dev/null 2>&1 || true

# Fail here, not in the middle of a run, if the stack does not import.
TF_CPP_MIN_LOG_LEVEL=2 "$venv/bin/python" - <<'PY'
import importlib
mods = ["snakemake", "torch", "demucs.pretrained", "audio_separator.separator", "librosa",
        "essentia.standard", "llama_cpp", "audiobox_aesthetics", "mutagen", "pandas",
        "soundfile", "soxr", "pyloudnorm", "mir_eval", "basic_pitch", "onnxruntime", "gguf"]
for name in mods:
    importlib.import_module(name)
from mirflow.madmom_import import import_madmom
import_madmom()
import torch
print(f"setup: environment ready (torch {torch.__version__}, {len(mods) + 1} packages import)")
PY
