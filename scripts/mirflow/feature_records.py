"""The features stage: :func:`mirflow.features.describe` on a track and on each
of its crops, in one job per track, shaped as one record (``track`` fields for
the track's .INFO, ``crops`` for each crop's).

One job does both because the fixed cost of a job (a Python process, the
imports, essentia's TensorFlow libraries) is about 2.6 s, as much as the
features of a whole minute of audio.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from mirflow.audio import load_audio
from mirflow.errors import TrackError
from mirflow.features import FEATURE_GROUPS
from mirflow.provenance import provenance
from mirflow.records import StageResult
from mirflow.rhythm import read_beats
from mirflow.tempo import grid_tempo

log = logging.getLogger(__name__)

#: Track features are computed at one rate so tracks compare (and the "air"
#: band, 2.5-22 kHz, exists).
ANALYSIS_SAMPLE_RATE = 44100


def switches(config_features: dict[str, Any]) -> tuple[dict[str, bool], int | None]:
    """(group -> on/off, n_steps or None) from the ``features`` config section."""
    enabled = {group: bool(config_features.get(group, True)) for group in FEATURE_GROUPS}
    series = config_features.get("time_series") or {}
    return enabled, (int(series.get("n_steps", 16)) if series.get("enabled") else None)


def features_record(
    audio_path: str | os.PathLike | None,
    beats_path: str | os.PathLike,
    onsets: list[float],
    config_features: dict[str, Any],
    crops_dir: str | os.PathLike | None = None,
    crops: dict[str, dict[str, Any]] | None = None,
    stems: dict[str, Path] | None = None,
    tempo_defined: bool = True,
) -> StageResult:
    """Track features (when ``audio_path`` is given) and crop features (when
    ``crops`` are) as one record; per-stem fields when the track has stems.
    ``tempo_defined``: the track's ``bpm_is_defined`` (false: crops get no bpm)."""
    track: dict[str, Any] = {}
    if audio_path:
        track = track_features(audio_path, beats_path, onsets, config_features)
        if stems:
            enabled, _ = switches(config_features)
            loaded = {
                name: load_audio(path, sr=ANALYSIS_SAMPLE_RATE)[0] for name, path in stems.items()
            }
            beats = read_beats(beats_path)
            track.update(stem_features(loaded, ANALYSIS_SAMPLE_RATE, beats, enabled))
    per_crop = (
        crop_features(crops_dir, crops, onsets, config_features, tempo_defined) if crops else {}
    )
    enabled, n_steps = switches(config_features)
    made_by = provenance(
        FEATURE_TOOLS,
        params={
            "groups": sorted(group for group, on in enabled.items() if on),
            "time_series_steps": n_steps,
            "analysis_sample_rate": ANALYSIS_SAMPLE_RATE,
        },
    )
    return StageResult(stage="features", track=track, crops=per_crop, provenance=made_by)


#: The libraries the features come from (mirflow.features).
FEATURE_TOOLS = ("essentia-tensorflow", "librosa", "numpy", "scipy")


#: Stems whose rhythm is described (vocals' onsets say little about rhythm).
RHYTHMIC_STEMS = ("drums", "bass", "other")


def stem_features(
    stems: dict[str, np.ndarray], sr: int, beats: np.ndarray, enabled: dict[str, bool]
) -> dict[str, Any]:
    """``lufs_<stem>``, ``lra_<stem>`` for every stem; ``onset_density_<stem>``,
    ``syncopation_<stem>``, ``rhythmic_complexity_<stem>`` for drums, bass, other.

    Stem onsets come from librosa's spectral-flux onset detector: cheap, and
    on an isolated stem there is little for a better one to untangle.
    """
    import librosa  # noqa: PLC0415

    from mirflow.features import loudness, rhythm_statistics  # noqa: PLC0415

    fields: dict[str, Any] = {}
    for name, audio in stems.items():
        if enabled.get("loudness"):
            level = loudness(audio, sr)
            fields[f"lufs_{name}"], fields[f"lra_{name}"] = level["lufs"], level["lra"]
        if enabled.get("rhythm") and name in RHYTHMIC_STEMS:
            mono = audio.mean(axis=0)
            onsets = librosa.onset.onset_detect(y=mono, sr=sr, units="time") if np.any(mono) else []
            stats = rhythm_statistics(beats, np.asarray(onsets), audio.shape[1] / sr)
            for key in ("onset_density", "syncopation", "rhythmic_complexity"):
                fields[f"{key}_{name}"] = stats[key]
    return fields


def track_features(
    audio_path: str | os.PathLike,
    beats_path: str | os.PathLike,
    onsets: list[float],
    config_features: dict[str, Any],
) -> dict[str, Any]:
    from mirflow.features import describe  # noqa: PLC0415

    enabled, _ = switches(config_features)
    audio, sr = load_audio(audio_path, sr=ANALYSIS_SAMPLE_RATE)
    beats = read_beats(beats_path)
    return describe(audio, sr, beats, np.asarray(onsets, dtype=float), enabled)


def crop_features(
    crops_dir: str | os.PathLike,
    crops: dict[str, dict[str, Any]],
    onsets: list[float],
    config_features: dict[str, Any],
    tempo_defined: bool = True,
) -> dict[str, dict[str, Any]]:
    """Features of every crop of a track; a crop that fails is marked, the rest go on.
    A crop's ``bpm`` is its beats' tempo, None when the track's is not defined."""
    from mirflow.features import describe  # noqa: PLC0415

    enabled, n_steps = switches(config_features)
    onset_times = np.asarray(onsets, dtype=float)
    results: dict[str, dict[str, Any]] = {}
    for name, crop in crops.items():
        try:
            audio, sr = load_audio(Path(crops_dir) / crop["audio_file"])
            beats = read_beats(Path(crops_dir) / crop["beats_file"])
            start, duration = crop["start_s"], crop["duration_s"]
            inside = (onset_times >= start) & (onset_times < start + duration)
            fields = describe(audio, sr, beats, onset_times[inside] - start, enabled, n_steps)
            fields["bpm"] = grid_tempo(beats[:, 0]) if tempo_defined else None
            stem_audio = {
                stem: load_audio(Path(crops_dir) / file)[0]
                for stem, file in crop.get("stem_files", {}).items()
            }
            fields.update(stem_features(stem_audio, sr, beats, enabled))
            results[name] = fields
        except TrackError as exc:
            log.warning("%s: %s", name, exc)
            results[name] = {"status": "failed", "error": f"features: {exc}"}
    return results
