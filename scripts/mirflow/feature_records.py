"""The features stage: :func:`mirflow.features.describe` on a track and on each
of its crops, shaped as one record (``track`` fields for the track's .INFO,
``crops`` for each crop's), and the track's time series
(:mod:`mirflow.time_series`), of which each crop's ``time_series`` is a slice.
The track is analysed once; its crops are spans of that analysis.

One job takes a batch of tracks (:func:`features_batch`) because its fixed
cost (a Python process, the imports: scipy.signal, numba's cached kernels,
essentia's TensorFlow libraries) is about 2 s, the features of a minute
of audio.
"""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from mirflow.audio import load_audio
from mirflow.features import FEATURE_GROUPS, OFF_BY_DEFAULT
from mirflow.provenance import provenance
from mirflow.records import StageResult
from mirflow.rhythm import read_beats
from mirflow.tempo import grid_tempo
from mirflow.time_series import DEFAULT_FRAME_RATE, hop_for

log = logging.getLogger(__name__)

#: Track features are computed at one rate so tracks compare (and the "air"
#: band, 2.5-22 kHz, exists).
ANALYSIS_SAMPLE_RATE = 44100


#: Stems whose sum the harmonic group describes, when the track has them: the
#: pitched accompaniment, without the drums' noise and the voice's vibrato.
HARMONIC_STEMS = ("bass", "other")


def switches(config_features: dict[str, Any]) -> dict[str, bool]:
    """group -> on/off from the ``features`` config section (a group it does
    not name is on, but for :data:`mirflow.features.OFF_BY_DEFAULT`)."""
    return {
        group: bool(config_features.get(group, group not in OFF_BY_DEFAULT))
        for group in FEATURE_GROUPS
    }


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
    crops: dict[str, dict[str, Any]] | None = None,
    stems: dict[str, Path] | None = None,
    tempo_defined: bool = True,
    track_features: bool = True,
    time_series_path: str | os.PathLike | None = None,
) -> StageResult:
    """Track features (with ``track_features``) and crop features (when
    ``crops`` are: their crops.json fields) as one record; per-stem fields
    when the track has stems. With time series on, the track's curves go to
    ``time_series_path`` and each crop gets its slice. ``tempo_defined``:
    the track's ``bpm_is_defined`` (false: crops get no bpm).

    The track is analysed once: a crop's features come from the span of that
    analysis its samples cover (:meth:`mirflow.features.Analysis.span`), not
    from its file, so crops cost a slice each and not a new analysis."""
    enabled = switches(config_features)
    frame_rate, slices = series_options(config_features)
    if frame_rate is not None and time_series_path is None:
        raise ValueError("time series are on but no time_series_path was given")
    from mirflow import time_series  # noqa: PLC0415

    track: dict[str, Any] = {}
    per_crop: dict[str, dict[str, Any]] = {}
    if audio_path and (track_features or frame_rate is not None or crops):
        from mirflow import feature_windows  # noqa: PLC0415

        beats = read_beats(beats_path)
        sr = ANALYSIS_SAMPLE_RATE
        series_hop = None if frame_rate is None else hop_for(frame_rate, sr)
        # The context holds a crop whole, whatever its length.
        longest_crop = max((float(c["duration_s"]) for c in (crops or {}).values()), default=0.0)
        context_s = max(feature_windows.CONTEXT_S, longest_crop + 1.0)
        unit = feature_windows.unit_for(sr, series_hop)
        mix_windows = feature_windows.windows(audio_path, sr, unit, context_s)
        first = next(mix_windows)
        if first.last:  # a song: analysed whole
            track, table, per_crop = _whole_track(
                first.audio, audio_path, beats, onsets, config_features, crops, stems,
                tempo_defined, track_features,
            )  # fmt: skip
        else:
            stem_windows = {
                name: feature_windows.windows(path, sr, unit, context_s)
                for name, path in (stems or {}).items()
            }
            other_rate = crop_rate(crops, sr) != sr
            track, table, per_crop = _windowed(
                feature_windows.zip_windows(itertools.chain([first], mix_windows), stem_windows),
                beats, onsets, config_features, None if other_rate else crops, tempo_defined,
                track_features,
            )  # fmt: skip
            if other_rate:
                per_crop = _windowed_crops_at_their_rate(
                    audio_path, stems, beats, onsets, config_features, crops, tempo_defined,
                    context_s,
                )  # fmt: skip
        if table is not None:
            time_series.write_table(table, time_series_path)
            track["time_series_file"] = Path(time_series_path).name
            track["time_series_frame_rate"] = frame_rate
            if slices:
                add_series_slices(per_crop, crops or {}, table, frame_rate)
    made_by = provenance(
        FEATURE_TOOLS,
        params={
            "groups": sorted(group for group, on in enabled.items() if on),
            "time_series_frame_rate": frame_rate,
            "analysis_sample_rate": ANALYSIS_SAMPLE_RATE,
        },
    )
    return StageResult(stage="features", track=track, crops=per_crop, provenance=made_by)


def _whole_track(
    audio,
    audio_path,
    beats,
    onsets,
    config_features,
    crops,
    stems,
    tempo_defined,
    track_features,
):
    """(track fields, time series or None, crop fields) of a song, analysed
    whole: the mix, then each stem in turn, each analysis let go before the
    next is made (five held at once are five times one's memory)."""
    from mirflow import features, time_series  # noqa: PLC0415

    enabled = switches(config_features)
    frame_rate, _ = series_options(config_features)
    sr, stems = ANALYSIS_SAMPLE_RATE, stems or {}
    crop_sr = crop_rate(crops, sr)

    def analysis(path, rate, harmonic=None):
        return features.Analysis(load_audio(path, sr=rate)[0], rate, harmonic=harmonic)

    mix = features.Analysis(audio, sr, harmonic=_harmonic_of(stems, sr))
    track: dict[str, Any] = {}
    if track_features:
        track = describe(mix, beats, np.asarray(onsets, dtype=float), enabled)
    table = None if frame_rate is None else time_series.track_curves(mix, beats, frame_rate)
    per_crop = {}
    if crops:
        if crop_sr != sr:  # the crops' spans come from an analysis at their rate
            mix = None
            mix = analysis(audio_path, crop_sr, _harmonic_of(stems, crop_sr))
        per_crop = crop_features(
            _laid_out(mix, crops), crops, beats, onsets, config_features, tempo_defined
        )
    mix = None
    for name, path in stems.items():
        stem = analysis(path, sr)
        if track_features:
            track.update(stem_features({name: stem}, beats, enabled))
        if crops:
            if crop_sr != sr:
                stem = None
                stem = analysis(path, crop_sr)
            add_crop_stem_features(per_crop, name, _laid_out(stem, crops), crops, beats, enabled)
        stem = None
    return track, table, per_crop


def crop_rate(crops: dict[str, dict[str, Any]] | None, default: int) -> int:
    """The crops' sample rate (a track's crops share one), ``default`` without crops."""
    return int(next(iter(crops.values()))["sample_rate"]) if crops else default


def _harmonic_of(stems: dict[str, Path], sr: int) -> np.ndarray | None:
    """:func:`harmonic_source` of the track's stem files, at ``sr``."""
    return harmonic_source(
        {name: load_audio(stems[name], sr=sr)[0] for name in HARMONIC_STEMS if name in stems}
    )


def _windowed(
    windows,
    beats,
    onsets,
    config_features,
    crops,
    tempo_defined,
    track_features,
    track_parts: bool = True,
):
    """:func:`_whole_track` of a track longer than a window, a window at a
    time (:mod:`mirflow.feature_windows`). ``track_parts`` false: only the
    crops (at a rate other than the analysis's)."""
    from mirflow import feature_windows, features, time_series  # noqa: PLC0415

    enabled = switches(config_features)
    frame_rate, _ = series_options(config_features)
    series_on = track_parts and frame_rate is not None
    track_on = track_parts and track_features
    joiner = stem_joiners = None
    rows: list[dict[str, np.ndarray]] = []
    per_crop: dict[str, dict[str, Any]] = {}
    beats = np.asarray(beats, dtype=float).reshape(-1, 2)
    sr = ANALYSIS_SAMPLE_RATE if track_parts else crop_rate(crops, ANALYSIS_SAMPLE_RATE)
    for window, stem_windows in windows:
        # The mix, then each stem in turn, each analysis let go before the
        # next is made: five alive at once are five times one's memory.
        harmonic = harmonic_source({name: w.audio for name, w in stem_windows.items()})
        mix = features.Analysis(window.audio, sr, harmonic=harmonic)
        harmonic = None
        if track_on:
            if joiner is None:
                joiner = feature_windows.Joiner(
                    sr, feature_windows.needs(enabled, feature_windows.TRACK_NEEDS)
                )
                stem_joiners = {}
            joiner.add(mix, window)
        if series_on:
            offset = window.start / sr
            shifted = beats - [offset, 0.0]
            curves = time_series.track_curves(mix, shifted, frame_rate)
            hop = hop_for(frame_rate, sr)
            lo = (window.own_start - window.start) // hop
            hi = None if window.last else (window.own_stop - window.start) // hop
            part = {name: values[lo:hi] for name, values in curves.items()}
            part["time_s"] = part["time_s"] + offset
            rows.append(part)
            curves = None
        own = {
            name: crop for name, crop in (crops or {}).items()
            if window.own_start <= int(crop["start_sample"]) < window.own_stop
            or (window.last and int(crop["start_sample"]) >= window.own_stop)
        }  # fmt: skip
        if own:
            per_crop.update(crop_features(
                _laid_out(mix, own), own, beats, onsets, config_features, tempo_defined,
                offset=window.start,
            ))  # fmt: skip
        mix = None
        for name, stem_window in stem_windows.items():
            stem = features.Analysis(stem_window.audio, sr)
            if track_on:
                if name not in stem_joiners:
                    stem_joiners[name] = feature_windows.Joiner(
                        sr, feature_windows.needs(enabled, feature_windows.STEM_NEEDS)
                    )
                stem_joiners[name].add(stem, stem_window)
            if own:
                add_crop_stem_features(
                    per_crop, name, _laid_out(stem, own), own, beats, enabled, window.start
                )
            stem = None
    track: dict[str, Any] = {}
    if track_on and joiner is not None:
        joined = joiner.analysis()
        track = describe(joined, beats, np.asarray(onsets, dtype=float), enabled)
        stems_joined = {name: j.analysis() for name, j in stem_joiners.items()}
        track.update(stem_features(stems_joined, beats, enabled))
    table = None
    if series_on:
        table = {name: np.concatenate([part[name] for part in rows]) for name in rows[0]}
    return track, table, per_crop


def _windowed_crops_at_their_rate(
    audio_path, stems, beats, onsets, config_features, crops, tempo_defined, context_s
):
    """The crops of a long track whose crops have another sample rate than
    the analysis: a second pass over the track at theirs."""
    from mirflow import feature_windows  # noqa: PLC0415

    sr = crop_rate(crops, ANALYSIS_SAMPLE_RATE)
    unit = feature_windows.unit_for(sr, None)
    pairs = feature_windows.zip_windows(
        feature_windows.windows(audio_path, sr, unit, context_s),
        {
            name: feature_windows.windows(path, sr, unit, context_s)
            for name, path in (stems or {}).items()
        },
    )
    return _windowed(pairs, beats, onsets, config_features, crops, tempo_defined, False, False)[2]


def _laid_out(analysis, crops):
    """``analysis`` in the crops' channel layout (a mono track's crops are stereo)."""
    from mirflow.crops import fit_channels  # noqa: PLC0415

    audio = fit_channels(analysis.audio, int(next(iter(crops.values()))["channels"]))
    return analysis if audio is analysis.audio else analysis.relayout(audio)


def add_series_slices(per_crop, crops, table, frame_rate: float) -> None:
    """Each crop's slice of the track's time series, into its fields."""
    from mirflow import time_series  # noqa: PLC0415

    for name, fields in per_crop.items():
        crop = crops[name]
        fields["time_series"] = time_series.crop_slice(
            table, crop["start_s"], crop["duration_s"], frame_rate
        )
        fields["time_series_frame_rate"] = frame_rate


def describe(frames, beats: np.ndarray, onsets: np.ndarray, enabled: dict[str, bool]):
    """:func:`mirflow.features.describe` of an analysis (a track's or a span's)."""
    from mirflow import features  # noqa: PLC0415

    return features.describe(frames.audio, frames.sr, beats, onsets, enabled, frames)


def features_batch(
    members: list[dict[str, Any]],
    config_features: dict[str, Any],
    track_features: bool,
    out_dir: str | os.PathLike,
    batch: str,
) -> dict[str, StageResult]:
    """The features of a batch of tracks, one after the other in this process
    (which pays the imports once): ``out_dir/<track>/features.json`` and
    ``<track>.timeseries.parquet`` (an empty table when the track has no
    time series, so that every track has the file its rule promises).

    ``members``: per track, its ``track`` id, ``source`` audio and the files
    its features are made from (``source_record``, ``rhythm``, ``beats``,
    ``crops_record`` and ``stems_record``/``stems``, None when off).
    """
    from mirflow.progress import Progress  # noqa: PLC0415
    from mirflow.records import read_result, run_stage, write_result  # noqa: PLC0415
    from mirflow.stems import stems_of  # noqa: PLC0415
    from mirflow.time_series import write_empty_table  # noqa: PLC0415

    series_on = series_options(config_features)[0] is not None
    results = {}
    with Progress(len(members), f"features {batch}", unit="tracks") as bar:
        for member in members:
            folder = Path(out_dir) / member["track"]
            folder.mkdir(parents=True, exist_ok=True)
            series = folder / f"{member['track']}.timeseries.parquet"
            source, rhythm = read_result(member["source_record"]), read_result(member["rhythm"])
            upstream = [source, rhythm]
            stems_record, stems = stems_of(member.get("stems_record"), member.get("stems"))
            upstream += [stems_record] if stems_record else []
            crops = read_result(member["crops_record"]) if member.get("crops_record") else None
            upstream += [crops] if crops else []

            def compute(member=member, rhythm=rhythm, crops=crops, stems=stems, series=series):
                return features_record(
                    member["source"],
                    member["beats"],
                    rhythm.data.get("onsets", []),
                    config_features,
                    crops=crops.crops if crops else None,
                    stems=stems,
                    tempo_defined=rhythm.track.get("bpm_is_defined", True),
                    track_features=track_features,
                    time_series_path=series if series_on else None,
                )

            result = run_stage("features", upstream, compute)
            result.data["batch"] = batch
            if series_on and not result.track.get("time_series_file"):
                write_empty_table(series)  # skipped or failed: assemble ignores it
            write_result(folder / "features.json", result)
            log.info(
                "%s: %s, track features %s, %d crops %s",
                member["track"], result.status, bool(result.track), len(result.crops), result.error,
            )  # fmt: skip
            results[member["track"]] = result
            bar.update()
    return results


#: The libraries the features come from (mirflow.features).
FEATURE_TOOLS = (
    "essentia-tensorflow",
    "librosa",
    "numpy",
    "scipy",
    "soxr",
    "pyloudnorm",
    "pyarrow",
    "timbral-models",
)


#: Stems whose rhythm is described (vocals' onsets say little about rhythm).
RHYTHMIC_STEMS = ("drums", "bass", "other")


def stem_features(stems: dict[str, Any], beats: np.ndarray, enabled: dict[str, bool]):
    """Per stem (``stems``: its :class:`mirflow.features.Analysis`, or a
    span's): ``lufs_<stem>``, ``lra_<stem>`` (loudness); for drums, bass
    and other ``onset_density_<stem>``, ``syncopation_<stem>``,
    ``rhythmic_complexity_<stem>`` (rhythm) and
    ``onset_density_average_<stem>``, ``onset_density_variance_<stem>`` (per
    bar, onsets/s), ``rhythmic_evenness_<stem>`` (rhythm_detail); for bass
    and other ``harmonic_movement_<stem>``, ``harmonic_variance_<stem>``
    (harmonic: :func:`mirflow.harmony.harmonic_change` over the beats).

    Stem onsets come from librosa's spectral-flux onset detector: cheap, and
    on an isolated stem there is little for a better one to untangle.
    """
    from mirflow import harmony  # noqa: PLC0415
    from mirflow.features import analysis_loudness, bar_onset_density, rhythm_statistics  # noqa: PLC0415

    fields: dict[str, Any] = {}
    beat_times = np.asarray(beats, dtype=float).reshape(-1, 2)[:, 0] if np.size(beats) else []
    for name, frames in stems.items():
        if enabled.get("loudness"):
            level = analysis_loudness(frames)
            fields[f"lufs_{name}"], fields[f"lra_{name}"] = level["lufs"], level["lra"]
        rhythmic = name in RHYTHMIC_STEMS and (
            enabled.get("rhythm") or enabled.get("rhythm_detail")
        )
        if rhythmic:
            onsets = frames.onset_times
            stats = rhythm_statistics(beats, onsets, frames.n_samples / frames.sr)
            if enabled.get("rhythm"):
                for key in ("onset_density", "syncopation", "rhythmic_complexity"):
                    fields[f"{key}_{name}"] = stats[key]
            if enabled.get("rhythm_detail"):
                per_bar = bar_onset_density(beats, onsets)
                fields[f"onset_density_average_{name}"] = per_bar["average"]
                fields[f"onset_density_variance_{name}"] = per_bar["variance"]
                fields[f"rhythmic_evenness_{name}"] = stats["rhythmic_evenness"]
        if enabled.get("harmonic") and name in HARMONIC_STEMS:
            change = harmony.harmonic_change(frames.hpcps, beat_times, frames.sr)
            fields[f"harmonic_movement_{name}"] = change["movement"]
            fields[f"harmonic_variance_{name}"] = change["variance"]
    return fields


def crop_features(
    mix: Any,
    crops: dict[str, dict[str, Any]],
    beats: np.ndarray,
    onsets: list[float],
    config_features: dict[str, Any],
    tempo_defined: bool = True,
    offset: int = 0,
) -> dict[str, dict[str, Any]]:
    """Features of every crop of a track from its span of ``mix`` (an
    :class:`mirflow.features.Analysis` of the track from sample ``offset``
    on, in the crops' channel layout and at their rate), the track's
    ``beats`` and ``onsets`` inside it. A crop's ``bpm`` is its beats'
    tempo, None when the track's is not defined. Its stems' fields are
    :func:`add_crop_stem_features`'."""
    enabled = switches(config_features)
    onset_times = np.asarray(onsets, dtype=float)
    results: dict[str, dict[str, Any]] = {}
    for name, crop in crops.items():
        first, stop = int(crop["start_sample"]), int(crop["end_sample"])
        start, duration = first / mix.sr, (stop - first) / mix.sr
        window = _crop_beats(beats, crop, mix.sr)
        inside = (onset_times >= start) & (onset_times < start + duration)
        frames = mix.span(first - offset, stop - offset)
        fields = describe(frames, window, onset_times[inside] - start, enabled)
        fields["bpm"] = grid_tempo(window[:, 0]) if tempo_defined else None
        results[name] = fields
    return results


def add_crop_stem_features(
    per_crop: dict[str, dict[str, Any]],
    stem: str,
    analysis: Any,
    crops: dict[str, dict[str, Any]],
    beats: np.ndarray,
    enabled: dict[str, bool],
    offset: int = 0,
) -> None:
    """:func:`stem_features` of ``stem`` (``analysis``: of it from sample
    ``offset`` on) for each crop that has it, into that crop's fields."""
    for name, crop in crops.items():
        if stem not in crop.get("stem_files", {}):
            continue
        first, stop = int(crop["start_sample"]), int(crop["end_sample"])
        own = analysis.span(first - offset, stop - offset)
        window = _crop_beats(beats, crop, analysis.sr)
        per_crop[name].update(stem_features({stem: own}, window, enabled))


def _crop_beats(beats: np.ndarray, crop: dict[str, Any], sr: int) -> np.ndarray:
    """The track's beats inside ``crop``, times from its start."""
    from mirflow.crops import beats_in_window  # noqa: PLC0415

    first, stop = int(crop["start_sample"]), int(crop["end_sample"])
    return beats_in_window(np.asarray(beats, dtype=float).reshape(-1, 2), first / sr, stop / sr)
