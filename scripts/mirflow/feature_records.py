"""The features stage: :func:`mirflow.features.describe` on a track and on each
of its crops, in one job per track, shaped as one record (``track`` fields for
the track's .INFO, ``crops`` for each crop's), and the track's time series
(:mod:`mirflow.time_series`), of which each crop's ``time_series`` is a slice.

One job does both because the fixed cost of a job (a Python process, the
imports: essentia's TensorFlow libraries, scipy.signal, numba's cached
kernels) is about 4.5 s, as much as the features of two minutes of audio.
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
from mirflow.time_series import DEFAULT_FRAME_RATE

log = logging.getLogger(__name__)

#: Track features are computed at one rate so tracks compare (and the "air"
#: band, 2.5-22 kHz, exists).
ANALYSIS_SAMPLE_RATE = 44100


#: Stems whose sum the harmonic group describes, when the track has them: the
#: pitched accompaniment, without the drums' noise and the voice's vibrato.
HARMONIC_STEMS = ("bass", "other")


def switches(config_features: dict[str, Any]) -> dict[str, bool]:
    """group -> on/off from the ``features`` config section."""
    return {group: bool(config_features.get(group, True)) for group in FEATURE_GROUPS}


def series_options(config_features: dict[str, Any]) -> tuple[float | None, bool]:
    """(frame rate, or None when time series are off; whether crops carry
    their slice) from the ``features.time_series`` config section."""
    series = config_features.get("time_series") or {}
    if not series.get("enabled", True):
        return None, False
    rate = float(series.get("frame_rate", DEFAULT_FRAME_RATE))
    return rate, bool(series.get("in_crop_info", True))


def harmonic_source(stems: dict[str, np.ndarray]) -> np.ndarray | None:
    """The bass and other stems summed (channel means), or None without them."""
    parts = [stems[name].mean(axis=0) for name in HARMONIC_STEMS if name in stems]
    if not parts:
        return None
    n = min(part.size for part in parts)
    return np.sum([part[:n] for part in parts], axis=0)


def features_record(
    audio_path: str | os.PathLike | None,
    beats_path: str | os.PathLike,
    onsets: list[float],
    config_features: dict[str, Any],
    crops_dir: str | os.PathLike | None = None,
    crops: dict[str, dict[str, Any]] | None = None,
    stems: dict[str, Path] | None = None,
    tempo_defined: bool = True,
    track_features: bool = True,
    time_series_path: str | os.PathLike | None = None,
) -> StageResult:
    """Track features (with ``track_features``) and crop features (when
    ``crops`` are) as one record; per-stem fields when the track has stems.
    With time series on, the track's curves go to ``time_series_path`` and
    each crop gets its slice. ``tempo_defined``: the track's
    ``bpm_is_defined`` (false: crops get no bpm)."""
    enabled = switches(config_features)
    frame_rate, slices = series_options(config_features)
    if frame_rate is not None and time_series_path is None:
        raise ValueError("time series are on but no time_series_path was given")
    track: dict[str, Any] = {}
    table = None
    if audio_path and (track_features or frame_rate is not None):
        from mirflow import features, time_series  # noqa: PLC0415

        audio, sr = load_audio(audio_path, sr=ANALYSIS_SAMPLE_RATE)
        beats = read_beats(beats_path)
        loaded = {
            name: load_audio(path, sr=ANALYSIS_SAMPLE_RATE)[0]
            for name, path in (stems or {}).items()
        }
        analysis = features.Analysis(audio, sr, harmonic=harmonic_source(loaded))
        if track_features:
            track = features.describe(
                audio, sr, beats, np.asarray(onsets, dtype=float), enabled, analysis
            )
            track.update(stem_features(loaded, sr, beats, enabled))
        del loaded
        if frame_rate is not None:
            table = time_series.track_curves(analysis, beats, frame_rate)
            time_series.write_table(table, time_series_path)
            track["time_series_file"] = Path(time_series_path).name
            track["time_series_frame_rate"] = frame_rate
    per_crop = (
        crop_features(
            crops_dir, crops, onsets, config_features, tempo_defined,
            table if slices else None,
        )
        if crops
        else {}
    )  # fmt: skip
    made_by = provenance(
        FEATURE_TOOLS,
        params={
            "groups": sorted(group for group, on in enabled.items() if on),
            "time_series_frame_rate": frame_rate,
            "analysis_sample_rate": ANALYSIS_SAMPLE_RATE,
        },
    )
    return StageResult(stage="features", track=track, crops=per_crop, provenance=made_by)


#: The libraries the features come from (mirflow.features).
FEATURE_TOOLS = (
    "essentia-tensorflow",
    "librosa",
    "numpy",
    "scipy",
    "soxr",
    "pyloudnorm",
    "pyarrow",
)


#: Stems whose rhythm is described (vocals' onsets say little about rhythm).
RHYTHMIC_STEMS = ("drums", "bass", "other")


def stem_features(
    stems: dict[str, np.ndarray], sr: int, beats: np.ndarray, enabled: dict[str, bool]
) -> dict[str, Any]:
    """Per stem: ``lufs_<stem>``, ``lra_<stem>`` (loudness); for drums, bass
    and other ``onset_density_<stem>``, ``syncopation_<stem>``,
    ``rhythmic_complexity_<stem>`` (rhythm) and
    ``onset_density_average_<stem>``, ``onset_density_variance_<stem>`` (per
    bar, onsets/s), ``rhythmic_evenness_<stem>`` (rhythm_detail); for bass
    and other ``harmonic_movement_<stem>``, ``harmonic_variance_<stem>``
    (harmonic: :func:`mirflow.harmony.harmonic_change` over the beats).

    Stem onsets come from librosa's spectral-flux onset detector: cheap, and
    on an isolated stem there is little for a better one to untangle.
    """
    import librosa  # noqa: PLC0415

    from mirflow import harmony  # noqa: PLC0415
    from mirflow.features import bar_onset_density, loudness, rhythm_statistics  # noqa: PLC0415

    fields: dict[str, Any] = {}
    beat_times = np.asarray(beats, dtype=float).reshape(-1, 2)[:, 0] if np.size(beats) else []
    for name, audio in stems.items():
        if enabled.get("loudness"):
            level = loudness(audio, sr)
            fields[f"lufs_{name}"], fields[f"lra_{name}"] = level["lufs"], level["lra"]
        rhythmic = name in RHYTHMIC_STEMS and (
            enabled.get("rhythm") or enabled.get("rhythm_detail")
        )
        if rhythmic:
            mono = audio.mean(axis=0)
            onsets = librosa.onset.onset_detect(y=mono, sr=sr, units="time") if np.any(mono) else []
            stats = rhythm_statistics(beats, np.asarray(onsets), audio.shape[1] / sr)
            if enabled.get("rhythm"):
                for key in ("onset_density", "syncopation", "rhythmic_complexity"):
                    fields[f"{key}_{name}"] = stats[key]
            if enabled.get("rhythm_detail"):
                per_bar = bar_onset_density(beats, np.asarray(onsets))
                fields[f"onset_density_average_{name}"] = per_bar["average"]
                fields[f"onset_density_variance_{name}"] = per_bar["variance"]
                fields[f"rhythmic_evenness_{name}"] = stats["rhythmic_evenness"]
        if enabled.get("harmonic") and name in HARMONIC_STEMS:
            change = harmony.harmonic_change(harmony.frame_hpcps(audio, sr), beat_times, sr)
            fields[f"harmonic_movement_{name}"] = change["movement"]
            fields[f"harmonic_variance_{name}"] = change["variance"]
    return fields


def crop_features(
    crops_dir: str | os.PathLike,
    crops: dict[str, dict[str, Any]],
    onsets: list[float],
    config_features: dict[str, Any],
    tempo_defined: bool = True,
    table=None,
) -> dict[str, dict[str, Any]]:
    """Features of every crop of a track; a crop that fails is marked, the rest go on.
    A crop's ``bpm`` is its beats' tempo, None when the track's is not defined.
    With the track's time series ``table``, each crop gets its slice."""
    from mirflow import features, time_series  # noqa: PLC0415

    enabled = switches(config_features)
    frame_rate, _ = series_options(config_features)
    onset_times = np.asarray(onsets, dtype=float)
    results: dict[str, dict[str, Any]] = {}
    for name, crop in crops.items():
        try:
            audio, sr = load_audio(Path(crops_dir) / crop["audio_file"])
            beats = read_beats(Path(crops_dir) / crop["beats_file"])
            start, duration = crop["start_s"], crop["duration_s"]
            inside = (onset_times >= start) & (onset_times < start + duration)
            stem_audio = {
                stem: load_audio(Path(crops_dir) / file)[0]
                for stem, file in crop.get("stem_files", {}).items()
            }
            analysis = features.Analysis(audio, sr, harmonic=harmonic_source(stem_audio))
            fields = features.describe(
                audio, sr, beats, onset_times[inside] - start, enabled, analysis
            )
            fields["bpm"] = grid_tempo(beats[:, 0]) if tempo_defined else None
            fields.update(stem_features(stem_audio, sr, beats, enabled))
            if table is not None:
                fields["time_series"] = time_series.crop_slice(table, start, duration, frame_rate)
                fields["time_series_frame_rate"] = frame_rate
            results[name] = fields
        except TrackError as exc:
            log.warning("%s: %s", name, exc)
            results[name] = {"status": "failed", "error": f"features: {exc}"}
    return results
