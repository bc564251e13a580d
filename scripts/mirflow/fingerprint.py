"""Acoustic fingerprints (Chromaprint) and the duplicate groups they reveal.

A library often holds one recording more than once: a FLAC rip and an MP3 of
it, a copy with the leading silence cut, one normalised quieter. In a
training set such copies leak between splits and weigh one recording twice,
so every track gets a fingerprint, and tracks whose fingerprints match are
grouped; each group names one original (the best source, :func:`quality_key`).

Fingerprints come from ``fpcalc`` (Chromaprint's command-line tool, Debian's
``libchromaprint-tools``), run offline: nothing is looked up on AcoustID. A
raw Chromaprint fingerprint is one 32-bit integer per 1365 samples at
11,025 Hz (about 8 per second); each pair of its bits is one of 16
filters over the chroma image, quantised and Gray-coded. Two encodings of one recording give
nearly the same integers at the same positions, so the fraction of equal bits
at the best alignment (1 - bit error rate, BER) says whether they are one
recording.

Matching every pair of 100k tracks is 5e9 comparisons. Instead
(:func:`match_pairs`) an inverted index from each 32-bit value to the tracks
and positions that hold it gives the candidate pairs: only tracks that share
values, and only pairs whose shared values agree on an offset (at least
:data:`MIN_VOTES` at one offset, give or take a frame). Each candidate is then
verified by its BER around that offset. This is the scheme of AcoustID's own
``acoustid_compare2`` (vote for an offset with matching values, then score the
bits there), applied library-wide. Exact 32-bit values are enough as keys:
re-encodings keep 90-99 % of them, a trimmed copy (whose frames fall between
the original's) 25-40 % (measured on the demo library), while two unrelated
values collide with odds 2**-32. Their limit: a copy with a BER over about
0.15 (independent bit flips keep (1 - BER)**32 of the values, 0.8 % at 0.15)
shares too few to become a candidate, though it would pass the threshold.

Digital silence has one fixed fingerprint value (:data:`SILENCE`, as
AcoustID's index also knows it); it matches every other silence, so it is
neither indexed nor counted in a comparison: two tracks are never one
recording because both are silent.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypedDict

import numpy as np

from mirflow.atomic import read_json
from mirflow.errors import AudioDecodeError
from mirflow.provenance import provenance
from mirflow.records import StageResult, read_result, run_stage

log = logging.getLogger(__name__)

#: Seconds of audio fingerprinted from the start of each track: fpcalc's own
#: default and what AcoustID stores. Two minutes tell one recording from
#: another; more only grows the index (8 values per second per track: 950 per
#: track, 380 MB of values for 100k tracks).
FPCALC_SECONDS = 120

#: Chromaprint algorithm as fpcalc numbers it (``-algorithm``): 2 is its
#: default and AcoustID's. Fingerprints of different algorithms do not compare.
ALGORITHM = 2

#: fpcalc's fingerprint values per second: 11,025 Hz / 1365 samples per frame.
FRAMES_PER_SECOND = 11025 / 1365


def frames(seconds: float) -> int:
    """Fingerprint frames in ``seconds`` (for max_offset and min_overlap)."""
    return int(math.floor(seconds * FRAMES_PER_SECOND + 0.5))


#: The fingerprint value of digital silence (Chromaprint's test suite and
#: AcoustID's index both know it).
SILENCE = 627964279

#: Similarity (1 - BER over the aligned overlap) at or above which two
#: fingerprints are one recording: a BER of 0.35, the threshold Haitsma and
#: Kalker derive for 32-bit sub-fingerprints (ISMIR 2002, "A Highly Robust
#: Audio Fingerprinting System"), near AcoustID's lookup cut-off (BER 0.30).
#: Unrelated fingerprints agree on about half their bits. On the demo library
#: true copies score 0.96-1.00 and distinct tracks at most 0.58.
SIMILARITY_THRESHOLD = 0.65

#: Fewest aligned non-silent frames a match must rest on (10 s): over shorter
#: overlaps, the best of many offsets of unrelated music reaches 0.6 (seen on
#: the demo library at 5 s). A track shorter than this is never grouped.
MIN_OVERLAP_S = 10.0

#: Largest shift between two copies (30 s): covers a few seconds trimmed or
#: padded, with room for a longer cut intro. AcoustID aligns within 15 s.
MAX_OFFSET_S = 30.0

#: Fewest shared values at one offset (give or take a frame) that make two
#: tracks a candidate pair. Two unrelated tracks almost never share even one.
MIN_VOTES = 2

#: A value held by more tracks than this is skipped as a key: it says little
#: (near-silence, a held tone) and its pairs would grow as its square. The
#: cost: a recording present more than this many times is not found by the
#: index.
MAX_KEY_TRACKS = 100

#: Offsets tried each side of a candidate's voted offset when verifying.
VERIFY_RADIUS = 2

#: The frame count of :data:`MIN_OVERLAP_S` and of :data:`MAX_OFFSET_S`.
MIN_OVERLAP = frames(MIN_OVERLAP_S)
MAX_OFFSET = frames(MAX_OFFSET_S)

#: How long one fpcalc run may take (it decodes at most FPCALC_SECONDS).
FPCALC_TIMEOUT_S = 300

#: What fpcalc 1.5.1 built with FFmpeg 5 (Debian bookworm) says at the end of
#: nearly every file, with exit status 3, over a complete fingerprint
#: (chromaprint#122, Debian #1062530): not worth a warning.
_BENIGN_FPCALC_ERROR = "Error decoding audio frame (End of file)"

#: fpcalc's exit status when it met a decoding error but still made a
#: fingerprint of what it read (chromaprint's fpcalc.cpp).
_FPCALC_PARTIAL = 3

#: How to get fpcalc.
INSTALL_HINT = "install Chromaprint's fpcalc (Debian/Ubuntu: apt-get install libchromaprint-tools)"


class FpcalcNotFoundError(RuntimeError):
    """fpcalc is not on PATH. Not a TrackError: no track can be fingerprinted."""


class FingerprintRecord(TypedDict):
    """What :func:`fingerprint_track` returns (a track's fingerprint.json)."""

    duration_s: float | None  # the file's duration as fpcalc read it (None: not told)
    fingerprint: list[int]  # unsigned 32-bit values, about 8 per second; [] if too short
    algorithm: int  # fpcalc's -algorithm number
    fpcalc_version: str  # e.g. "1.5.1 (FFmpeg Lavc59.18.100 ...)": FFmpeg changes values too


class DuplicateFields(TypedDict):
    """A track's duplicate fields. Every track is in a group: a track with no
    copy is a group of one, named by itself, so a split by group never
    separates copies."""

    duplicate_group: str  # the group's original's track id
    duplicate_of: str | None  # the original's id; None for the original itself


class Alignment(NamedTuple):
    """The best alignment of two fingerprints: ``b[i]`` lies on ``a[i + offset]``."""

    similarity: float  # 1 - BER over the overlap; 0.0 when no offset overlaps enough
    offset: int  # frames; positive when b starts later in the recording (b trimmed)
    overlap: int  # aligned frames counted (neither silent)


class PairMatch(NamedTuple):
    """Two tracks verified as one recording."""

    a: str
    b: str
    similarity: float
    offset: int  # b[i] lies on a[i + offset]
    overlap: int


class MatchResult(NamedTuple):
    """What :func:`match_pairs` found, and what it cost."""

    pairs: list[PairMatch]
    candidates: int  # pairs verified bit by bit
    keys_skipped: int  # values held by more than max_key_tracks tracks


# ---- fpcalc -------------------------------------------------------------------


@functools.cache
def fpcalc_version() -> str:
    """fpcalc's version line, less its name: ``1.5.1 (FFmpeg Lavc59...)``."""
    exe = _fpcalc()
    result = subprocess.run(
        [exe, "-version"], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    return result.stdout.strip().removeprefix("fpcalc version ").strip() or "unknown"


def _fpcalc() -> str:
    exe = shutil.which("fpcalc")
    if exe is None:
        raise FpcalcNotFoundError(f"fpcalc not found on PATH: {INSTALL_HINT}")
    return exe


def fingerprint_track(
    path: str | os.PathLike, length_s: int = FPCALC_SECONDS, timeout_s: float = FPCALC_TIMEOUT_S
) -> FingerprintRecord:
    """The raw Chromaprint fingerprint of the first ``length_s`` seconds.

    fpcalc decodes with its own FFmpeg, so it reads what ingest reads (every
    file of the demo library). A track too short to fingerprint (under about
    3 s, fpcalc's "Empty fingerprint") gets an empty fingerprint and is never
    grouped: it is not a bad track. Exit status 3 (a decoding error after
    which fpcalc still fingerprinted what it read) is accepted; its message is
    logged unless it is fpcalc 1.5.1's end-of-file noise.

    Raises FpcalcNotFoundError when fpcalc is missing, and AudioDecodeError,
    naming the file and fpcalc's message, when it cannot read the file.
    """
    exe = _fpcalc()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    # An absolute path: a name starting with "-" must not read as an option.
    cmd = [exe, "-raw", "-json", "-algorithm", str(ALGORITHM), "-length", str(int(length_s))]
    cmd.append(os.path.abspath(path))
    try:
        result = subprocess.run(
            cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        raise AudioDecodeError(
            f"{path}: fpcalc did not finish in {timeout_s:g} s (undecodable stream?)"
        ) from exc
    errors = [
        line.removeprefix("ERROR: ").strip() for line in result.stderr.splitlines() if line.strip()
    ]
    facts: dict[str, Any] = {}
    if result.returncode in (0, _FPCALC_PARTIAL) and result.stdout.strip():
        try:
            facts = json.loads(result.stdout)
        except json.JSONDecodeError:
            facts = {}
    if not facts.get("fingerprint"):
        if "Empty fingerprint" in errors:
            duration = facts.get("duration")
            return _record(float(duration) if duration is not None else None, [])
        reason = next((e for e in reversed(errors) if e != _BENIGN_FPCALC_ERROR), "")
        reason = reason or (errors[-1] if errors else f"exit status {result.returncode}")
        raise AudioDecodeError(f"{path}: fpcalc cannot fingerprint it: {reason}")
    noteworthy = [e for e in errors if e != _BENIGN_FPCALC_ERROR]
    if noteworthy:
        log.warning("%s: fpcalc: %s (fingerprint kept)", path, "; ".join(noteworthy))
    values = [int(v) & 0xFFFFFFFF for v in facts["fingerprint"]]
    return _record(float(facts["duration"]), values)


def _record(duration_s: float | None, values: list[int]) -> FingerprintRecord:
    return FingerprintRecord(
        duration_s=duration_s,
        fingerprint=values,
        algorithm=ALGORITHM,
        fpcalc_version=fpcalc_version(),
    )


# ---- comparing two fingerprints ----------------------------------------------------


def as_fingerprint(values: Iterable[int] | np.ndarray) -> np.ndarray:
    """A fingerprint as unsigned 32-bit integers (signed ones, as fpcalc
    ``-signed`` writes them, are taken modulo 2**32)."""
    arr = np.asarray(values if isinstance(values, np.ndarray) else list(values))
    if arr.dtype == np.uint32:
        return arr
    return (arr.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)


def best_alignment(
    a: Sequence[int] | np.ndarray,
    b: Sequence[int] | np.ndarray,
    max_offset: int = MAX_OFFSET,
    min_overlap: int = MIN_OVERLAP,
) -> Alignment:
    """The offset within ``max_offset`` frames where ``a`` and ``b`` agree most.

    Similarity is the fraction of equal bits over the aligned frames where
    neither is silent (:data:`SILENCE`); offsets with fewer than
    ``min_overlap`` such frames are not considered. Ties go to the smaller
    offset.
    """
    return _align(
        as_fingerprint(a), as_fingerprint(b), np.arange(-max_offset, max_offset + 1), min_overlap
    )


def similarity(
    a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray, **limits: int
) -> float:
    """1 - bit error rate at the best offset (:func:`best_alignment`, whose
    ``max_offset`` and ``min_overlap`` it takes)."""
    return best_alignment(a, b, **limits).similarity


def _align(a: np.ndarray, b: np.ndarray, offsets: np.ndarray, min_overlap: int) -> Alignment:
    """Best alignment over the given offsets, all at once: ``a`` padded with
    silence on both sides, one window of it per offset against ``b``."""
    if len(a) == 0 or len(b) == 0:
        return Alignment(0.0, 0, 0)
    lo, hi = int(offsets.min()), int(offsets.max())
    left, right = max(0, -lo), max(0, hi + len(b) - len(a))
    padded = np.concatenate(
        [np.full(left, SILENCE, np.uint32), a, np.full(right, SILENCE, np.uint32)]
    )
    windows = np.lib.stride_tricks.sliding_window_view(padded, len(b))[offsets + left]
    valid = (windows != SILENCE) & (b != SILENCE)
    errors = np.where(valid, np.bitwise_count(windows ^ b), 0).sum(axis=1)
    overlap = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(overlap >= max(1, min_overlap), 1.0 - errors / (32.0 * overlap), -1.0)
    best = int(np.argmax(scores))
    if scores[best] < 0:
        return Alignment(0.0, 0, 0)
    return Alignment(float(scores[best]), int(offsets[best]), int(overlap[best]))


# ---- the library-wide search --------------------------------------------------


def match_pairs(
    fingerprints: Mapping[str, Sequence[int] | np.ndarray],
    threshold: float = SIMILARITY_THRESHOLD,
    max_offset: int = MAX_OFFSET,
    min_overlap: int = MIN_OVERLAP,
    min_votes: int = MIN_VOTES,
    max_key_tracks: int = MAX_KEY_TRACKS,
) -> MatchResult:
    """Every pair of tracks whose fingerprints match (similarity >= threshold).

    Candidates come from the inverted index (module docstring): every
    (value, track, position) of every fingerprint, silence and repeats of the
    previous value left out, sorted by value in one array; equal values of
    different tracks vote for an offset of their pair; a pair with
    ``min_votes`` at one offset (+-1) is verified by :func:`best_alignment`
    within :data:`VERIFY_RADIUS` of it. Time and memory grow with the number
    of values and of shared values, not with the square of the tracks.
    """
    ids = list(fingerprints)
    arrays = [as_fingerprint(fingerprints[t]) for t in ids]
    keys, tracks, positions = _shared_entries(arrays)

    # Runs of equal keys; a run of up to max_key_tracks entries gives pairs.
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])[: len(keys)]
    sizes = np.diff(np.r_[starts, len(keys)])
    keys_skipped = int(np.count_nonzero(sizes > max_key_tracks))
    keep = sizes <= max_key_tracks
    left, right = _pairs_within_runs(starts[keep], sizes[keep])
    ta, tb = tracks[left], tracks[right]
    offsets = positions[left].astype(np.int64) - positions[right]
    usable = (ta != tb) & (np.abs(offsets) <= max_offset)
    ta, tb, offsets = ta[usable], tb[usable], offsets[usable]
    del left, right, usable

    candidates = _voted_offsets(ta, tb, offsets, len(ids), max_offset, min_votes)
    pairs = []
    for i, j, offset in candidates:
        near = np.arange(offset - VERIFY_RADIUS, offset + VERIFY_RADIUS + 1)
        near = near[np.abs(near) <= max_offset]
        found = _align(arrays[i], arrays[j], near, min_overlap)
        if found.overlap and found.similarity >= threshold:
            pairs.append(PairMatch(ids[i], ids[j], *found))
    return MatchResult(pairs, len(candidates), keys_skipped)


def _shared_entries(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(key, track, position) of every indexed value whose key another entry
    shares, sorted by key, track, position.

    All entries go into one uint64 array (key in the high 32 bits, track and
    position packed below: 8 bytes per value, 760 MB for 100k tracks of
    120 s), sorted in place; only the few entries whose key repeats are
    unpacked.
    """
    longest = max((len(a) for a in arrays), default=1)
    pos_bits = max(1, (longest - 1).bit_length())
    track_bits = max(1, (len(arrays) - 1).bit_length())
    if pos_bits + track_bits > 32:
        raise ValueError(
            f"{len(arrays)} fingerprints of up to {longest} values do not fit the "
            "index's 32 bits of track and position: fingerprint fewer seconds"
        )
    # Two passes over the fingerprints (count, then fill) rather than holding
    # every track's positions at once.
    total = sum(len(_indexed_positions(arr)) for arr in arrays)
    codes = np.empty(total, dtype=np.uint64)
    at = 0
    for track, arr in enumerate(arrays):
        where = _indexed_positions(arr)
        block = codes[at : at + len(where)]
        block[:] = arr[where]
        block <<= np.uint64(32)
        block |= np.uint64(track << pos_bits)
        block |= where.astype(np.uint64)
        at += len(where)
    codes.sort()
    # The two 32-bit halves of each code, as views: no 64-bit temporaries.
    halves = codes.view(np.uint32).reshape(-1, 2)
    high = 1 if sys.byteorder == "little" else 0
    all_keys = halves[:, high]
    same = all_keys[1:] == all_keys[:-1]
    shared = np.zeros(len(all_keys), dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    del same
    idx = np.flatnonzero(shared)
    del shared
    keys = all_keys[idx]
    low = halves[idx, 1 - high]
    del codes, halves, all_keys
    tracks = (low >> np.uint32(pos_bits)).astype(np.int32)
    positions = (low & np.uint32((1 << pos_bits) - 1)).astype(np.int32)
    return keys, tracks, positions


def _indexed_positions(arr: np.ndarray) -> np.ndarray:
    """Positions of the values worth indexing: not silence, not a repeat of
    the previous value (a held sound gives runs of one value; its first
    position carries its alignment)."""
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    fresh = np.r_[True, arr[1:] != arr[:-1]] & (arr != SILENCE)
    return np.flatnonzero(fresh)


def _pairs_within_runs(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (left, right), left < right, of every pair of entries within
    each run [start, start + size)."""
    if len(starts) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    run_of = np.repeat(np.arange(len(starts)), sizes)
    first = np.cumsum(sizes) - sizes
    elem = np.repeat(starts, sizes) + (np.arange(int(sizes.sum())) - first[run_of])
    rank = elem - starts[run_of]  # entries before it in its run: its partners
    right = np.repeat(elem, rank)
    nth = np.arange(len(right)) - np.repeat(np.cumsum(rank) - rank, rank)
    return right - nth - 1, right


def _voted_offsets(
    ta: np.ndarray,
    tb: np.ndarray,
    offsets: np.ndarray,
    n_tracks: int,
    max_offset: int,
    min_votes: int,
) -> list[tuple[int, int, int]]:
    """(track a, track b, offset) of each pair whose best offset has at least
    ``min_votes`` votes counting its neighbours +-1."""
    if len(ta) == 0:
        return []
    width = 2 * max_offset + 3  # a free slot each side: neighbours stay in the pair
    codes = (ta.astype(np.int64) * n_tracks + tb) * width + (offsets + max_offset + 1)
    uniq, counts = np.unique(codes, return_counts=True)
    votes = counts.copy()
    for step in (-1, 1):
        at = np.searchsorted(uniq, uniq + step)
        at_clipped = np.minimum(at, len(uniq) - 1)
        hit = (at < len(uniq)) & (uniq[at_clipped] == uniq + step)
        votes[hit] += counts[at_clipped[hit]]
    pair = uniq // width
    order = np.lexsort((-votes, pair))  # per pair, most votes first
    first = order[np.r_[True, pair[order][1:] != pair[order][:-1]]]
    first = first[votes[first] >= min_votes]
    a, b = np.divmod(pair[first], n_tracks)
    offset = uniq[first] % width - max_offset - 1
    return list(zip(a.tolist(), b.tolist(), offset.tolist(), strict=True))


def group_pairs(track_ids: Iterable[str], pairs: Iterable[PairMatch]) -> list[list[str]]:
    """Connected groups (union-find) of the tracks, sorted, largest first.

    Matching is made transitive here: if a matches b and b matches c, all
    three are one group even when a and c (say, two trims from opposite
    ends) overlap too little to match directly.
    """
    parent = {t: t for t in track_ids}

    def root(t: str) -> str:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for pair in pairs:
        ra, rb = root(pair.a), root(pair.b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = {}
    for t in parent:
        groups.setdefault(root(t), []).append(t)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g[0]))


# ---- which copy is the original -------------------------------------------------

#: Codec names (ingest's ``codec``: libsndfile's "flac/pcm_16", "wav/float";
#: ffprobe's "alac", "pcm_s24le") that are lossless.
LOSSLESS_CODECS = frozenset(
    {"flac", "alac", "wavpack", "ape", "tta", "tak", "wmalossless", "truehd", "mlp", "shorten"}
    | {"float", "double"}  # libsndfile's float WAV/AIFF
)
#: PCM names that are companded 8-bit telephony codecs, not lossless.
_COMPANDED = ("pcm_mulaw", "pcm_alaw")
_DEPTH = re.compile(r"^(?:pcm_[suf]?|alac_)(\d+)")


def is_lossless(codec: str) -> bool:
    """Whether a codec name (any part of "container/codec") is lossless."""
    parts = str(codec or "").lower().split("/")
    return any(
        p in LOSSLESS_CODECS or (p.startswith(("pcm", "alac")) and not p.startswith(_COMPANDED))
        for p in parts
    )


def bit_depth(source: Mapping[str, Any]) -> int | None:
    """Bits per sample of a lossless source: its ``bit_depth`` field, else
    read from the codec name ("flac/pcm_24" -> 24, "wav/float" -> 32)."""
    if source.get("bit_depth"):
        return int(source["bit_depth"])
    for part in reversed(str(source.get("codec") or "").lower().split("/")):
        if part in ("float", "double"):
            return 32 if part == "float" else 64
        if match := _DEPTH.match(part):
            return int(match.group(1))
    return None


def bitrate(source: Mapping[str, Any]) -> float | None:
    """Bits per second: its ``bitrate`` field, else the file's average
    (size_bytes * 8 / duration_s; tags and cover art count too)."""
    if source.get("bitrate"):
        return float(source["bitrate"])
    size, duration = source.get("size_bytes"), source.get("duration_s")
    if size and duration:
        return float(size) * 8 / float(duration)
    return None


def quality_key(source: Mapping[str, Any]) -> tuple:
    """How good a copy is, as a tuple that sorts better copies higher.

    ``source`` holds ingest's source.json fields (codec, sample_rate,
    channels, duration_s, size_bytes, peak_dbfs; bit_depth and bitrate where
    known). The rule, criterion by criterion:

    1. lossless before lossy: a lossy copy cannot be the source of a lossless one;
    2. lossless: higher sample rate, then higher bit depth;
       lossy: higher bitrate (the codec's budget, what decides its loss),
       then higher sample rate;
    3. more channels (a mono fold-down has lost the stereo image);
    4. longer duration, to 0.1 s (a trimmed copy has lost audio);
    5. higher peak level, to 0.1 dB (a fixed-point copy turned down has lost
       resolution, one bit per 6 dB);
    6. (in :func:`choose_original`) the smaller track id, a stable tie-break.

    What the fields cannot show is not judged: a copy turned up until it
    clipped wins criterion 5, and a lossy file re-encoded as lossless counts
    as lossless.
    """
    lossless = is_lossless(str(source.get("codec") or ""))
    rate = float(source.get("sample_rate") or 0)
    if lossless:
        detail = (rate, float(bit_depth(source) or 0))
    else:
        detail = (float(bitrate(source) or 0), rate)
    duration = round(float(source.get("duration_s") or 0.0), 1)
    peak = source.get("peak_dbfs")
    level = round(float(peak), 1) if peak is not None else -math.inf
    return (int(lossless), *detail, int(source.get("channels") or 0), duration, level)


def choose_original(sources: Mapping[str, Mapping[str, Any]]) -> str:
    """The track id of the best copy (:func:`quality_key`; ties: smallest id)."""
    if not sources:
        raise ValueError("choose_original needs at least one track")
    return min(sources, key=lambda t: (tuple(-x for x in quality_key(sources[t])), t))


# ---- all together ---------------------------------------------------------------


def find_duplicate_groups(
    records: Mapping[str, Mapping[str, Any]],
    threshold: float = SIMILARITY_THRESHOLD,
    max_offset: int = MAX_OFFSET,
    min_overlap: int = MIN_OVERLAP,
) -> dict[str, DuplicateFields]:
    """``{track id: DuplicateFields}`` for every track of ``records``.

    ``records`` maps each track id to its fingerprint record
    (:class:`FingerprintRecord`, at least ``fingerprint``) merged with its
    source.json fields (:func:`quality_key`). Tracks whose fingerprints match
    (:func:`match_pairs`) are grouped (:func:`group_pairs`); each group's
    original is :func:`choose_original`'s pick and names the group.

    A fingerprint may be a list or a uint32 array: for a large library, turn
    each into an array as it is read (:func:`as_fingerprint`; 4 bytes a value
    instead of 36 in a list of ints: 0.4 GB for 100k tracks instead of 3.4).
    """
    algorithms = {r.get("algorithm") for r in records.values() if len(r.get("fingerprint", ()))}
    algorithms.discard(None)
    if len(algorithms) > 1:
        raise ValueError(
            f"fingerprints of different Chromaprint algorithms ({sorted(algorithms)}) "
            "do not compare: fingerprint every track with the same one"
        )
    fingerprints = {t: r.get("fingerprint", []) for t, r in records.items()}
    found = match_pairs(fingerprints, threshold, max_offset, min_overlap)
    fields: dict[str, DuplicateFields] = {}
    for group in group_pairs(records, found.pairs):
        original = choose_original({t: records[t] for t in group})
        for track in group:
            fields[track] = DuplicateFields(
                duplicate_group=original,
                duplicate_of=None if track == original else original,
            )
    return fields


# ---- the workflow's two stages ----------------------------------------------------


def fingerprint_result(path: str | os.PathLike, upstream: StageResult) -> StageResult:
    """Rule fingerprint: the track's Chromaprint fingerprint as a stage record
    (``data``: :class:`FingerprintRecord`; no ``.INFO`` fields of its own: the
    library-wide :func:`duplicates_record` decides the groups)."""

    def compute() -> StageResult:
        record = fingerprint_track(path)
        return StageResult(
            "fingerprint",
            data=dict(record),
            provenance=provenance(
                (), params={"length_s": FPCALC_SECONDS, "fpcalc": record["fpcalc_version"]}
            ),
        )

    return run_stage("fingerprint", [upstream], compute)


def duplicates_record(
    fingerprints: Mapping[str, str | os.PathLike], sources: Mapping[str, str | os.PathLike]
) -> dict[str, Any]:
    """Rule duplicates: every track's :class:`DuplicateFields` (``tracks``),
    the groups of more than one track (``groups``, original first) and the
    rule's settings. Tracks whose fingerprint or source record is missing or
    failed are left out (they are not in any group)."""
    records: dict[str, dict[str, Any]] = {}
    for track, path in fingerprints.items():
        try:
            made, source = read_result(path), read_result(sources[track])
        except (OSError, ValueError, KeyError):
            continue
        if made.ok and source.ok and made.data.get("fingerprint"):
            fields = {**source.track, **made.data}
            fields["fingerprint"] = as_fingerprint(fields["fingerprint"])
            records[track] = fields
    tracks = find_duplicate_groups(records)
    members: dict[str, list[str]] = {}
    for track, fields in sorted(tracks.items()):
        members.setdefault(fields["duplicate_group"], []).append(track)
    groups = [
        [original, *sorted(t for t in group if t != original)]
        for original, group in sorted(members.items())
        if len(group) > 1
    ]
    return {
        "tracks": dict(sorted(tracks.items())),
        "groups": groups,
        "settings": {
            "similarity_threshold": SIMILARITY_THRESHOLD,
            "min_overlap_s": MIN_OVERLAP_S,
            "max_offset_s": MAX_OFFSET_S,
        },
    }


def duplicate_fields(record: Mapping[str, Any], track: str) -> dict[str, Any]:
    """The ``.INFO`` fields of ``track`` from a :func:`duplicates_record`:
    ``duplicate_group`` and ``duplicate_of`` (None for the group's original)
    when it has copies in the library, none when it has not."""
    fields = record.get("tracks", {}).get(track)
    group = fields and fields["duplicate_group"]
    if not group or not any(group in g for g in record.get("groups", [])):
        return {}
    return {"duplicate_group": group, "duplicate_of": fields["duplicate_of"]}


def groups_by_track(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{track: duplicate_fields}`` for the tracks in a group of copies, from
    a duplicates.json; empty when there is none yet."""
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return {}
    return {t: duplicate_fields(record, t) for group in record.get("groups", []) for t in group}


def duplicates_result(
    path: str | os.PathLike, track: str, results: Iterable[StageResult]
) -> StageResult:
    """The duplicate fields of ``track`` (from duplicates.json) as a record
    assemble merges into the track's and every crop's ``.INFO``: crops travel
    without their track, and a copy's crops are copies too."""
    fields = duplicate_fields(read_json(path), track)
    crops = {name for result in results for name in result.crops}
    return StageResult("duplicates", track=fields, crops={name: dict(fields) for name in crops})
