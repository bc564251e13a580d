#!/usr/bin/env bash
# Create (or complete) mirflow's virtual environment. Called by `make setup`;
# safe to run again. Usage: bash envs/setup.sh [VENV_DIR]
#
# What it installs is envs/requirements.lock, every distribution at one exact
# version (regenerate it with `python3 envs/lock.py`, see README), --no-deps, so
# the environment is the lock whatever the registry serves on the day. The
# install traps the lock steps around (see README "Installation notes"):
# - torch is locked to 2.13.0+cpu, the CPU wheel on this kind of machine;
#   TORCH_INDEX=<PyTorch wheel index> picks a CUDA build of that version.
# - torchvision/torchaudio, which audio-separator's chain asks for, are CUDA
#   builds that cannot load beside the CPU torch; no mirflow code path needs
#   them, so they are not in the lock.
# - basic-pitch's declared dependencies pull TensorFlow and numpy 1.x, and
#   beat-this's torchaudio; the lock holds what they really need instead.
# Then it warms numba's JIT cache once, serially (mirflow.jit): see README
# "JIT caches".
set -euo pipefail

venv=${1:-.venv}
cd "$(dirname "$0")/.."

# ---- system packages -------------------------------------------------------
# ffmpeg: decoding m4a/AAC and other containers libsndfile cannot read, and
# audio-separator needs it on PATH.
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
# fpcalc (Chromaprint): acoustic fingerprints for duplicate detection, offline.
command -v fpcalc >/dev/null 2>&1 || missing+=(libchromaprint-tools)
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
lock=envs/requirements.lock
without_torch=$(mktemp)
trap 'rm -f "$without_torch"' EXIT
grep -v '^torch==' "$lock" >"$without_torch"
"${pip[@]}" install --quiet --constraint "$lock" pip setuptools wheel
# torch first, with its own dependencies (all in the lock). TORCH_INDEX (a
# PyTorch wheel index) gives a CUDA build of the locked version instead, with
# the runtime wheels (nvidia-*) its metadata pins exactly.
torch_pin=$(grep '^torch==' "$lock")
if [ -n "${TORCH_INDEX:-}" ]; then
    "${pip[@]}" install --constraint "$without_torch" --extra-index-url "$TORCH_INDEX" "${torch_pin%%+*}"
else
    "${pip[@]}" install --constraint "$lock" "$torch_pin"
fi
"${pip[@]}" install --no-deps --requirement "$without_torch"
"${pip[@]}" install --no-deps --no-build-isolation --editable .
"$venv/bin/python" envs/lock.py --sync

# Fail here, not in the middle of a run, if the stack does not import.
TF_CPP_MIN_LOG_LEVEL=2 "$venv/bin/python" - <<'PY'
import importlib
mods = ["snakemake", "torch", "demucs.pretrained", "audio_separator.separator", "librosa",
        "essentia.standard", "llama_cpp", "audiobox_aesthetics", "mutagen", "pandas",
        "soundfile", "soxr", "pyloudnorm", "mir_eval", "basic_pitch", "onnxruntime", "gguf",
        "beat_this.model.beat_tracker", "timbral_models"]
for name in mods:
    importlib.import_module(name)
from mirflow.madmom_import import import_madmom
import_madmom()
import torch
print(f"setup: environment ready (torch {torch.__version__}, {len(mods) + 1} packages import)")
PY

# numba's JIT cache seed for this CPU, compiled once, serially (about 40 s):
# every mirflow process starts from a private copy of it (README "JIT caches").
"$venv/bin/python" -m mirflow.jit seed
