"""Fingerprints and duplicate groups (mirflow.fingerprint).

The demo test runs the real fpcalc on the demo library plus three copies of
one track (an MP3 re-encode, 3 s trimmed from the start, 6 dB quieter); the
rest check the matching on synthetic fingerprints, where the truth is known,
and the index against brute force.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from conftest import LIBRARY
from mirflow.discovery import track_ids
from mirflow.errors import AudioDecodeError
from mirflow.fingerprint import (
    MIN_OVERLAP,
    SILENCE,
    SIMILARITY_THRESHOLD,
    FpcalcNotFoundError,
    PairMatch,
    best_alignment,
    choose_original,
    find_duplicate_groups,
    fingerprint_track,
    group_pairs,
    match_pairs,
    quality_key,
    similarity,
)
from mirflow.ingest import VARIOUS_ARTISTS, ingest_track

needs_fpcalc = pytest.mark.skipif(
    shutil.which("fpcalc") is None,
    reason="fpcalc not installed (apt-get install libchromaprint-tools; make setup does)",
)

ORIGINAL = LIBRARY / "vocadito_1.flac"  # 33 s, FLAC 16-bit 44.1 kHz mono


def _random_fp(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**32, n, dtype=np.uint32)


def _flip(values: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    flips = rng.random((len(values), 32)) < p
    return values ^ np.packbits(flips, axis=1, bitorder="little").view("<u4").ravel()


# ---- the demo library, real fpcalc ------------------------------------------------


@pytest.fixture(scope="module")
def demo_records(tmp_path_factory) -> dict[str, dict]:
    """Fingerprint + source.json fields of the 7 demo tracks and 3 copies of
    vocadito_1. The copies sit in a folder whose ids sort before the
    original's, so only the quality rule can pick the original."""
    root = tmp_path_factory.mktemp("library")
    for path in sorted(LIBRARY.iterdir()):
        if path.suffix in (".flac", ".mp3", ".ogg"):
            (root / path.name).symlink_to(path)
    copies = root / "copies"
    copies.mkdir()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(ORIGINAL), "-c:a", "libmp3lame", "-b:a", "128k"]
        + [str(copies / "vocadito_1.mp3")],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    audio, sr = sf.read(ORIGINAL, dtype="int16")
    sf.write(copies / "vocadito_1_trimmed.flac", audio[3 * sr :], sr, subtype="PCM_16")
    quieter = np.round(audio.astype(np.float64) * 10 ** (-6 / 20)).astype(np.int16)
    sf.write(copies / "vocadito_1_quieter.flac", quieter, sr, subtype="PCM_16")

    relpaths = sorted(str(p.relative_to(root)) for p in root.rglob("*.*"))
    records = {}
    for rel, track in track_ids(relpaths).items():
        source = ingest_track(root / rel, rel, track, VARIOUS_ARTISTS).track
        records[track] = {**source, **fingerprint_track(root / rel)}
    return records


@needs_fpcalc
def test_demo_library_one_group_of_four_with_the_flac_as_original(demo_records):
    fields = find_duplicate_groups(demo_records)
    assert set(fields) == set(demo_records)
    groups: dict[str, set[str]] = {}
    for track, f in fields.items():
        groups.setdefault(f["duplicate_group"], set()).add(track)
    copies = {t for t in groups if len(groups[t]) > 1}
    expected = {
        "vocadito_1",
        "copies__vocadito_1",
        "copies__vocadito_1_trimmed",
        "copies__vocadito_1_quieter",
    }
    assert copies == {"vocadito_1"}, "one group, named by its original"
    assert groups["vocadito_1"] == expected
    assert fields["vocadito_1"]["duplicate_of"] is None
    for copy in expected - {"vocadito_1"}:
        assert fields[copy] == {"duplicate_group": "vocadito_1", "duplicate_of": "vocadito_1"}
    # Every other track is a group of one, named by itself.
    for track in set(demo_records) - expected:
        assert fields[track] == {"duplicate_group": track, "duplicate_of": None}


@needs_fpcalc
def test_demo_margins_true_copies_far_above_distinct_tracks(demo_records):
    fps = {t: r["fingerprint"] for t, r in demo_records.items()}
    copies = [t for t in fps if "vocadito" in t]
    distinct = [t for t in fps if t not in copies or t == "vocadito_1"]
    assert len(distinct) == 7
    true_sims = [similarity(fps[a], fps[b]) for a, b in itertools.combinations(copies, 2)]
    false_sims = [similarity(fps[a], fps[b]) for a, b in itertools.combinations(distinct, 2)]
    print(f"copies: {min(true_sims):.3f}..{max(true_sims):.3f}; distinct max {max(false_sims):.3f}")
    assert min(true_sims) > SIMILARITY_THRESHOLD > max(false_sims)
    # The trimmed copy aligns 3 s (24 frames) into the original.
    trimmed = best_alignment(fps["vocadito_1"], fps["copies__vocadito_1_trimmed"])
    assert trimmed.offset == pytest.approx(3 * 11025 / 1365, abs=1)


@needs_fpcalc
def test_fingerprint_record_shape(demo_records):
    record = demo_records["vocadito_1"]
    assert record["algorithm"] == 2
    assert record["fpcalc_version"].startswith(("1.", "2."))
    assert record["duration_s"] == pytest.approx(33.2, abs=0.1)
    # About 8 values per second, all unsigned 32-bit.
    assert 7 * 30 < len(record["fingerprint"]) < 8.2 * 33.3
    assert all(0 <= v < 2**32 for v in record["fingerprint"])


@needs_fpcalc
def test_fpcalc_refuses_non_audio_with_the_file_and_cause(tmp_path):
    junk = tmp_path / "not_audio.mp3"
    junk.write_bytes(b"this is no audio" * 100)
    with pytest.raises(AudioDecodeError, match=r"not_audio\.mp3: fpcalc cannot fingerprint"):
        fingerprint_track(junk)


@needs_fpcalc
def test_too_short_to_fingerprint_is_an_empty_fingerprint_not_a_failure(tmp_path):
    short = tmp_path / "blip.wav"
    sf.write(short, 0.3 * np.sin(np.arange(22050) / 5.0), 22050)  # 1 s
    assert fingerprint_track(short)["fingerprint"] == []


def test_missing_fpcalc_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FpcalcNotFoundError, match="libchromaprint-tools"):
        fingerprint_track(ORIGINAL)


# ---- similarity on synthetic fingerprints ------------------------------------------


def test_similarity_of_identical_shifted_noisy_and_unrelated():
    rng = np.random.default_rng(1)
    a = _random_fp(rng, 900)
    assert best_alignment(a, a) == (1.0, 0, 900)
    trimmed = a[40:]  # 5 s cut from the start: b[i] lies on a[i + 40]
    assert best_alignment(a, trimmed) == (1.0, 40, 860)
    padded = np.r_[_random_fp(rng, 25), a]  # 3 s of something else first
    assert best_alignment(a, padded)[:2] == (1.0, -25)
    noisy = _flip(trimmed, 0.1, rng)
    found = best_alignment(a, noisy)
    assert found.offset == 40 and found.similarity == pytest.approx(0.9, abs=0.01)
    unrelated = similarity(a, _random_fp(rng, 900))
    assert unrelated == pytest.approx(0.5, abs=0.03)
    # Symmetric: swapping the two negates the offset.
    assert best_alignment(trimmed, a)[:2] == (1.0, -40)


def test_similarity_needs_min_overlap_and_ignores_silence():
    rng = np.random.default_rng(2)
    a = _random_fp(rng, 300)
    assert similarity(a[: MIN_OVERLAP - 1], a[: MIN_OVERLAP - 1]) == 0.0
    assert similarity(a[:MIN_OVERLAP], a[:MIN_OVERLAP]) == 1.0
    silence = np.full(300, SILENCE, np.uint32)
    assert best_alignment(silence, silence) == (0.0, 0, 0), "silence is no recording"
    # Silence in one copy is left out, not counted as errors.
    gapped = a.copy()
    gapped[100:200] = SILENCE
    assert best_alignment(a, gapped) == (1.0, 0, 200)
    # Shifts beyond max_offset are not searched.
    assert similarity(a, a[50:], max_offset=49) < SIMILARITY_THRESHOLD


# ---- the index against brute force --------------------------------------------------


def _synthetic_library(seed: int, n: int = 200, length: int = 250):
    """``n`` fingerprints: every 10th an original with 1-3 copies (shifted up
    to 15 frames, bits flipped at 0-8 %), the rest unrelated, some of them
    decoys holding stray values of other tracks at random places."""
    rng = np.random.default_rng(seed)
    fps = {f"t{i:03d}": _random_fp(rng, length) for i in range(n)}
    ids = list(fps)
    for start in range(0, n - 4, 10):
        for member in ids[start + 1 : start + 1 + int(rng.integers(1, 4))]:
            shift = int(rng.integers(-15, 16))
            base = fps[ids[start]]
            if shift >= 0:
                shifted = np.r_[base[shift:], _random_fp(rng, shift)]
            else:
                shifted = np.r_[np.full(-shift, SILENCE, np.uint32), base[: length + shift]]
            fps[member] = _flip(shifted, float(rng.uniform(0, 0.08)), rng)
    for decoy in ids[5::10]:
        donors = rng.choice(n, 6)
        fps[decoy][rng.choice(length, 6, replace=False)] = [fps[ids[d]][7] for d in donors]
    return fps


def _brute_force_pairs(fps, max_offset):
    pairs = []
    for a, b in itertools.combinations(sorted(fps), 2):
        found = best_alignment(fps[a], fps[b], max_offset=max_offset)
        if found.similarity >= SIMILARITY_THRESHOLD:
            pairs.append(PairMatch(a, b, *found))
    return pairs


def test_index_finds_the_same_groups_as_brute_force():
    fps = _synthetic_library(seed=3)
    brute = _brute_force_pairs(fps, max_offset=20)
    indexed = match_pairs(fps, max_offset=20)
    assert len(brute) > 30
    assert group_pairs(fps, indexed.pairs) == group_pairs(fps, brute)
    # Every pair the index verifies, brute force finds, at the same offset.
    by_pair = {(p.a, p.b): p for p in brute}
    for p in indexed.pairs:
        assert by_pair[p.a, p.b].similarity == pytest.approx(p.similarity)
        assert by_pair[p.a, p.b].offset == p.offset
    # It may miss a pair with a BER over about 0.12 (two noisy copies of one
    # original: too few exactly equal values to vote), which the group
    # holds anyway through the original; below that it misses none.
    found = {(p.a, p.b) for p in indexed.pairs}
    assert all((p.a, p.b) in found for p in brute if p.similarity >= 0.88)
    # Far fewer pairs were verified than the 19,900 of brute force.
    assert indexed.candidates < 2 * len(brute)


def test_groups_are_transitive_and_every_track_is_in_one():
    pairs = [PairMatch("b", "c", 0.9, 0, 100), PairMatch("c", "a", 0.9, 0, 100)]
    assert group_pairs(["a", "b", "c", "d"], pairs) == [["a", "b", "c"], ["d"]]


# ---- which copy is the original -------------------------------------------------------


def _source(codec, rate=44100, channels=2, duration=200.0, size=None, peak=-1.0, **extra):
    return {
        "codec": codec,
        "sample_rate": rate,
        "channels": channels,
        "duration_s": duration,
        "size_bytes": size if size is not None else int(duration * 40_000),
        "peak_dbfs": peak,
        **extra,
    }


@pytest.mark.parametrize(
    ("better", "worse", "why"),
    [
        (_source("flac/pcm_16", rate=22050), _source("mp3", rate=48000), "lossless first"),
        (_source("wav/pcm_24", rate=48000), _source("flac/pcm_24"), "lossless: sample rate"),
        (_source("flac/pcm_24"), _source("flac/pcm_16"), "lossless: bit depth"),
        (_source("alac"), _source("aac"), "ffprobe's codec names"),
        (_source("mp3", size=8_000_000), _source("mp3", size=3_200_000), "lossy: bitrate"),
        (_source("vorbis", rate=48000, bitrate=256_000), _source("mp3", bitrate=128_000), "rate"),
        (_source("flac/pcm_16"), _source("flac/pcm_16", channels=1), "channels"),
        (_source("flac/pcm_16"), _source("flac/pcm_16", duration=197.0), "trimmed"),
        (_source("flac/pcm_16"), _source("flac/pcm_16", peak=-7.0), "turned down"),
    ],
)
def test_quality_rule(better, worse, why):
    assert quality_key(better) > quality_key(worse), why
    assert choose_original({"z": better, "a": worse}) == "z", why


def test_equal_quality_goes_to_the_smallest_track_id():
    same = _source("flac/pcm_16")
    assert choose_original({"b": same, "a": dict(same), "c": dict(same)}) == "a"


def test_fingerprints_of_different_algorithms_are_refused():
    records = {"a": {"fingerprint": [1] * 100, "algorithm": 1}, "b": {"fingerprint": [1] * 100}}
    records["b"]["algorithm"] = 2
    with pytest.raises(ValueError, match="different Chromaprint algorithms"):
        find_duplicate_groups(records)
