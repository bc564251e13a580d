"""Training-format exports of the dataset's crops: AudioCraft, stable-audio-tools,
ACE-Step (v1 and 1.5), and a flat Parquet table; split into train / valid / test
by artist, album or track.

Pure functions over crop ``.INFO`` dicts (see README, "The .INFO files"); every
optional key (AudioBox scores, Essentia labels, vocal probabilities, Music
Flamingo captions) may be missing, and each function then falls back.

Formats, as their loaders read them:

- **AudioCraft** (``audiocraft/data/audio_dataset.py``, ``music_dataset.py``):
  a split is a folder holding ``data.jsonl`` (``AudioDataset.from_meta``; a
  ``datasource.train`` / ``valid`` / ``evaluate`` / ``generate`` entry names the
  folder, as ``egs/example`` does), one ``AudioMeta`` per line (``path``,
  ``duration``, ``sample_rate``, ``amplitude``, ``weight``, ``info_path``).
  ``MusicDataset`` reads the ``MusicInfo`` fields from ``<audio>.json`` beside
  the audio (``Path(meta.path).with_suffix('.json')``) and, with
  ``info_fields_required`` (its default), wants every field but ``keywords``.
  ``info_path`` must be ``None`` or ``"<zip>:<path inside zip>"`` (``PathInZip``
  asserts on that form), so the manifest leaves it ``None``. A relative
  ``path`` is resolved by ``dora.git_save.to_absolute_path`` against the folder
  the run was started from (Hydra's original working directory), not against
  the manifest, as ``egs/example/data.jsonl``'s ``dataset/example/...`` paths are.
- **stable-audio-tools** (``stable_audio_tools/data/dataset.py``,
  ``create_dataloader_from_config``): an ``audio_dir`` dataset config per
  split; its ``path`` is scanned with ``os.scandir`` and its
  ``custom_metadata_module`` loaded with ``importlib.util.spec_from_file_location``,
  both as written (relative to the working directory). The module's
  ``get_custom_metadata(info, audio)`` is called with ``info["path"]`` the audio
  file (the config's ``path`` joined with the file name); the returned dict
  (here ``{"prompt": ...}``) is merged into ``info``.
- **ACE-Step v1**: ``<crop>.<ext>`` with ``<crop>_prompt.txt`` (comma-separated
  tags) and ``<crop>_lyrics.txt`` beside it.
- **ACE-Step 1.5** (``acestep/training/dataset_builder_modules/``): the LoRA
  dataset builder either loads a dataset JSON (``serialization.py``
  ``load_dataset``: ``{"metadata": DatasetMetadata, "samples": [AudioSample]}``,
  ``models.py``) or scans a folder (``scan.py``: audio files,
  ``<audio stem>.caption.txt``, ``<audio stem>.lyrics.txt``, and any ``*.csv``
  with ``file``, ``bpm``, ``key`` (and ``caption``) columns, ``csv_metadata.py``).
  Both are written; only the JSON carries time signature and language.
  Relative paths are joined with ``ACESTEP_SAFE_ROOT`` (the working directory
  by default; ``path_safety.safe_path`` rejects paths outside it).
  ``keyscale`` is ``"<note> major|minor"``, ``timesignature`` one of
  ``"2" "3" "4" "6"``, ``bpm`` an int in 30-300 (``acestep/constants.py``).

Paths inside the exports are relative to the export folder (``exports/``), so
the folder can be moved; ``path_root`` writes them as ``<path_root>/<relative>``
instead (the folder's absolute path on the training machine).
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import io
import json
import os
import posixpath
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import pandas as pd

from mirflow.atomic import atomic_directory, atomic_path, link_or_copy, write_json, write_text
from mirflow.labels import top_labels

#: Export formats, in the order they are written (``export.formats``).
FORMATS = ("audiocraft", "stable_audio", "acestep", "acestep15", "parquet")
VOICE_THRESHOLD = 0.5
INSTRUMENTAL_LYRICS = "[instrumental]"
#: ACE-Step 1.5's instrumental marker (its scan and labeler write this form).
ACESTEP15_INSTRUMENTAL = "[Instrumental]"
#: ``acestep/constants.py``: VALID_TIME_SIGNATURES, BPM_MIN, BPM_MAX.
ACESTEP15_TIME_SIGNATURES = (2, 3, 4, 6)
ACESTEP15_BPM_RANGE = (30, 300)
_KEYSCALE = re.compile(r"^[A-G](?:#|b|\u266f|\u266d)? (?:major|minor)$")

#: Split names, in the order of their share of the unit interval (test first).
SPLITS = ("train", "valid", "test")
SPLIT_BY = ("artist", "album", "track")


# --- label helpers ---
# Standalone (stdlib only, Python 3.8 syntax): their source is copied into the
# stable-audio-tools module, which runs in that library's environment.


def genres_of(info):
    """Essentia genre labels, else the file's genre tag, else ``[]``."""
    genres = top_labels(info.get("essentia_genre"))
    if genres:
        return genres
    tag = info.get("track_metadata_genre")
    return [tag.strip().lower()] if isinstance(tag, str) and tag.strip() else []


def moods_of(info):
    return top_labels(info.get("essentia_mood"))


def instruments_of(info):
    return top_labels(info.get("essentia_instrument"))


def caption_of(info):
    """The Music Flamingo caption (a non-empty ``music_flamingo_*`` string), else None.

    ``music_flamingo_caption`` wins, then ``music_flamingo_description``, then
    the other ``music_flamingo_*`` keys in name order.
    """
    preferred = ["music_flamingo_caption", "music_flamingo_description"]
    others = sorted(k for k in info if k.startswith("music_flamingo_") and k not in preferred)
    for key in preferred + others:
        value = info.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def bpm_of(info):
    """The crop's tempo as a float (crop ``bpm``, else ``track_bpm``), else None
    (also when the track's tempo is not defined: free time, speech)."""
    if info.get("bpm_is_defined") is False:
        return None
    for key in ("bpm", "track_bpm"):
        value = info.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def key_of(info):
    """``"Eb:major"`` -> ``"Eb major"`` (crop ``key``, else ``track_key``), else None."""
    for field in ("key", "track_key"):
        value = info.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip().replace(":", " ")
    return None


def tag_list(info):
    """genres, moods, ``"<bpm> bpm"``, key: the tag prompt's parts."""
    tags = genres_of(info) + moods_of(info)
    bpm = bpm_of(info)
    if bpm is not None:
        tags.append(f"{round(bpm)} bpm")
    key = key_of(info)
    if key is not None:
        tags.append(key)
    return tags


def stable_audio_prompt(info):
    """The caption when there is one, else the tags joined with ``", "``."""
    return caption_of(info) or ", ".join(tag_list(info))


_MODULE_HELPERS = (
    top_labels,
    genres_of,
    moods_of,
    instruments_of,
    caption_of,
    bpm_of,
    key_of,
    tag_list,
    stable_audio_prompt,
)

STABLE_AUDIO_METADATA_MODULE: str = (
    '"""stable-audio-tools custom metadata module, written by mirflow.\n\n'
    "Reads the .INFO JSON beside each audio file and returns its prompt: the\n"
    "Music Flamingo caption, else tags (genre, mood, bpm, key). Standalone.\n"
    '"""\n\n'
    "import json\n"
    "import os\n\n\n"
    + "\n\n".join(inspect.getsource(fn) for fn in _MODULE_HELPERS)
    + "\n\n"
    + "def get_custom_metadata(info, audio):\n"
    + "    info_file = os.path.splitext(info['path'])[0] + '.INFO'\n"
    + "    try:\n"
    + "        with open(info_file, encoding='utf-8') as handle:\n"
    + "            crop = json.load(handle)\n"
    + "    except (OSError, ValueError):\n"
    + "        crop = {}\n"
    + "    return {'prompt': stable_audio_prompt(crop)}\n"
)


# --- AudioCraft ---


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def vocals_likely(info: dict) -> bool | None:
    """Vocals likely? ``voice_probability``, else ``instrumental_probability``; None: unknown."""
    voice = info.get("voice_probability")
    if isinstance(voice, int | float) and not isinstance(voice, bool):
        return voice >= VOICE_THRESHOLD
    instrumental = info.get("instrumental_probability")
    if isinstance(instrumental, int | float) and not isinstance(instrumental, bool):
        return instrumental < VOICE_THRESHOLD
    return None


def tag_sentence(info: dict) -> str:
    """A description from the tags, for crops without a caption.

    e.g. ``"House, techno music at 124 bpm in Eb major. Mood: dark. Instruments: synthesizer."``
    """
    genres = genres_of(info)
    head = (", ".join(genres) + " music") if genres else "Music"
    bpm, key = bpm_of(info), key_of(info)
    if bpm is not None:
        head += f" at {round(bpm)} bpm"
    if key is not None:
        head += f" in {key}"
    parts = [head[0].upper() + head[1:] + "."]
    moods, instruments = moods_of(info), instruments_of(info)
    if moods:
        parts.append(f"Mood: {', '.join(moods)}.")
    if instruments:
        parts.append(f"Instruments: {', '.join(instruments)}.")
    vocals = vocals_likely(info)
    if vocals is not None:
        parts.append("With vocals." if vocals else "Instrumental.")
    return " ".join(parts)


def audiocraft_info(info: dict) -> dict:
    """The ``<crop>.json`` that AudioCraft's ``MusicDataset`` reads beside the audio.

    Every ``MusicInfo`` field is present (``info_fields_required``): strings are
    ``""`` when unknown (the loader's ``get_string``/``get_keyword`` turn ``""``
    into None), ``bpm`` is a float or None (``get_bpm``), ``moods``/``keywords``
    are lists of strings (kept whole by ``get_keyword_list``; a string would be
    split on spaces). ``instrument`` is one keyword string (``get_keyword``): the
    instrument labels joined with ``", "``.
    """
    audio_file = _text(info.get("audio_file"))
    extension = Path(audio_file).suffix.lstrip(".").lower() if audio_file else ""
    year = info.get("track_metadata_year")
    keywords = genres_of(info) + instruments_of(info)
    vocals = vocals_likely(info)
    if vocals is not None:
        keywords.append("vocals" if vocals else "instrumental")
    if year not in (None, ""):
        keywords.append(str(year))
    return {
        "title": _text(info.get("track_metadata_title")),
        "artist": _text(info.get("track_metadata_artist")),
        "key": key_of(info) or "",
        "bpm": bpm_of(info),
        "genre": ", ".join(genres_of(info)),
        "moods": moods_of(info),
        "keywords": list(dict.fromkeys(keywords)),
        "description": caption_of(info) or tag_sentence(info),
        "name": _text(info.get("crop")) or Path(audio_file).stem,
        "instrument": ", ".join(instruments_of(info)),
        "sample_rate": int(info["sample_rate"]),
        "file_extension": extension,
        "duration": float(info["duration_s"]),
    }


def audiocraft_manifest_line(audio_path: str, info: dict, info_path: str | None = None) -> dict:
    """One ``data.jsonl`` line: the fields of AudioCraft's ``AudioMeta``.

    ``audio_path`` is written as given: the exports write it relative to the
    export folder (AudioCraft resolves a relative path against the folder the
    run starts from), or under ``export.path_root``. ``info_path`` is
    AudioCraft's ``PathInZip`` (``"<zip>:<file>"``) for metadata stored in a
    zip; leave it None when ``<audio>.json`` sits beside the audio. Anything
    else would fail its loader's assertion, so it raises here.
    """
    if info_path is not None and len(str(info_path).split(":")) != 2:
        raise ValueError(f"info_path must be '<zip>:<file in zip>', got {info_path!r}")
    return {
        "path": os.fspath(audio_path),
        "duration": float(info["duration_s"]),
        "sample_rate": int(info["sample_rate"]),
        "amplitude": None,
        "weight": None,
        "info_path": None if info_path is None else str(info_path),
    }


# --- stable-audio-tools ---


def stable_audio_config(dataset_dir: str, module_path: str, dataset_id: str = "mirflow") -> dict:
    """An ``audio_dir`` dataset config for stable-audio-tools' ``create_dataloader_from_config``.

    Paths are written as given (the library opens them as they are: relative
    ones against the working directory). ``random_crop`` is False: the crops are
    already cut on downbeats, so the loader's pad/crop keeps each one's start.
    """
    return {
        "dataset_type": "audio_dir",
        "datasets": [
            {
                "id": dataset_id,
                "path": os.fspath(dataset_dir),
                "custom_metadata_module": os.fspath(module_path),
            }
        ],
        "random_crop": False,
    }


# --- ACE-Step v1 ---


def acestep_prompt(info: dict) -> str:
    """Comma-separated tags: genres, moods, instruments, ``"<bpm> bpm"``, key."""
    tags = genres_of(info) + moods_of(info) + instruments_of(info)
    bpm, key = bpm_of(info), key_of(info)
    if bpm is not None:
        tags.append(f"{round(bpm)} bpm")
    if key is not None:
        tags.append(key)
    return ", ".join(dict.fromkeys(tags))


def known_lyrics(info: dict) -> str | None:
    """A non-empty ``lyrics`` string of the ``.INFO``, stripped; else None."""
    lyrics = info.get("lyrics")
    return lyrics.strip() if isinstance(lyrics, str) and lyrics.strip() else None


def acestep_lyrics(info: dict) -> str:
    """Lyrics for ACE-Step.

    Rule: a non-empty ``lyrics`` string in the ``.INFO`` is used as is;
    otherwise ``"[instrumental]"`` when vocals are unlikely
    (``voice_probability`` < 0.5, or, without it, ``instrumental_probability``
    >= 0.5); otherwise ``""``: vocals likely or unknown, and the words are not
    known, so the crop is not claimed to be instrumental.
    """
    lyrics = known_lyrics(info)
    if lyrics is not None:
        return lyrics
    return INSTRUMENTAL_LYRICS if vocals_likely(info) is False else ""


# --- ACE-Step 1.5 ---


def acestep15_bpm(info: dict) -> int | None:
    """The tempo as ACE-Step 1.5 stores it: a whole number in 30-300, else None."""
    bpm = bpm_of(info)
    if bpm is None:
        return None
    low, high = ACESTEP15_BPM_RANGE
    return round(bpm) if low <= round(bpm) <= high else None


def acestep15_keyscale(info: dict) -> str:
    """``"Eb:major"`` -> ``"Eb major"``, in ACE-Step 1.5's VALID_KEYSCALES form; else ``""``."""
    key = key_of(info)
    parts = key.split() if key else []
    if len(parts) != 2:
        return ""
    note, mode = parts
    keyscale = f"{note[:1].upper()}{note[1:]} {mode.lower()}"
    return keyscale if _KEYSCALE.match(keyscale) else ""


def acestep15_time_signature(info: dict, track: Mapping[str, Any] | None = None) -> str:
    """Beats per bar of the beat grid as ACE-Step 1.5's ``timesignature``: ``"2"``,
    ``"3"``, ``"4"`` or ``"6"``; ``""`` when unknown or another meter.

    From the crop's ``beats_per_bar``, else the track's (``.INFO``, of its
    ``.BEATS`` grid), else the crop's ``beat_count`` / ``downbeat_count`` when
    that is a whole number (crops are cut on downbeats). ``""`` when the tempo
    is not defined (free time: the grid's meter means nothing).
    """
    if info.get("bpm_is_defined") is False:
        return ""
    for source in (info, track or {}):
        value = source.get("beats_per_bar")
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value) if value in ACESTEP15_TIME_SIGNATURES else ""
    beats, downbeats = info.get("beat_count"), info.get("downbeat_count")
    if isinstance(beats, int) and isinstance(downbeats, int) and downbeats > 0:
        if beats % downbeats == 0 and beats // downbeats in ACESTEP15_TIME_SIGNATURES:
            return str(beats // downbeats)
    return ""


def acestep15_sample(
    info: dict, audio_path: str, track: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One sample of an ACE-Step 1.5 dataset JSON: the fields of its ``AudioSample``.

    ``caption``: the Music Flamingo caption, else the tag sentence (as AudioCraft's
    ``description``); ``genre``: genre, mood and instrument tags. ``lyrics``: the
    words when the ``.INFO`` has them, ``"[Instrumental]"`` when vocals are
    unlikely, else ``""`` (vocals likely or unknown: ``is_instrumental`` false, so
    ACE-Step's labeler may transcribe them). ``language`` is ``"unknown"`` (not
    measured). ``duration`` is whole seconds, as ACE-Step's scan counts it;
    ``id`` is the crop name (ACE-Step names its tensor files by it).
    """
    lyrics = known_lyrics(info)
    instrumental = lyrics is None and vocals_likely(info) is False
    bpm = acestep15_bpm(info)
    return {
        "id": str(info["crop"]),
        "audio_path": audio_path,
        "filename": posixpath.basename(audio_path),
        "caption": caption_of(info) or tag_sentence(info),
        "genre": ", ".join(dict.fromkeys(genres_of(info) + moods_of(info) + instruments_of(info))),
        "lyrics": lyrics or (ACESTEP15_INSTRUMENTAL if instrumental else ""),
        "raw_lyrics": lyrics or "",
        "formatted_lyrics": "",
        "bpm": bpm,
        "keyscale": acestep15_keyscale(info),
        "timesignature": acestep15_time_signature(info, track),
        "duration": int(float(info["duration_s"])),
        "language": "unknown",
        "is_instrumental": instrumental,
        "custom_tag": "",
        "labeled": True,
        "prompt_override": None,
    }


def acestep15_dataset(samples: list[dict], name: str) -> dict[str, Any]:
    """An ACE-Step 1.5 dataset JSON (``load_dataset``): ``metadata`` and ``samples``.

    ``created_at`` is left empty (ACE-Step fills it on load), so that an
    unchanged dataset exports to the same bytes.
    """
    return {
        "metadata": {
            "name": name,
            "custom_tag": "",
            "tag_position": "prepend",
            "created_at": "",
            "num_samples": len(samples),
            "all_instrumental": all(s["is_instrumental"] for s in samples),
            "genre_ratio": 0,
        },
        "samples": samples,
    }


def acestep15_csv(samples: list[dict]) -> str:
    """The ``metadata.csv`` ACE-Step 1.5's folder scan reads: ``file`` (the audio
    file's name), ``bpm``, ``key``.

    Captions go to ``<crop>.caption.txt`` instead, not to a ``caption`` column:
    the scan guesses the CSV dialect with ``csv.Sniffer``, which misreads quotes
    inside a field (``Say "hi"; ok, go`` comes back cut), and a CSV caption
    would override the caption file. File names are crop names (track id
    characters: no commas, semicolons or quotes), so every field is plain.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "bpm", "key"])
    for s in samples:
        writer.writerow([s["filename"], "" if s["bpm"] is None else s["bpm"], s["keyscale"]])
    return out.getvalue()


# --- table ---


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def scalar_table(infos: list[dict]) -> pd.DataFrame:
    """One row per info, one column per scalar field (dicts and lists dropped).

    A column whose values mix types other than int/float (say a tag that is a
    number in one file and text in another) is stored as text, so that it can
    be written to Parquet.
    """
    rows = [{k: v for k, v in info.items() if _is_scalar(v)} for info in infos]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    data = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        types = {type(v) for v in values if v is not None}
        if len(types) > 1 and not types <= {int, float}:
            values = [None if v is None else str(v) for v in values]
        data[column] = values
    return pd.DataFrame(data, columns=columns, index=range(len(rows)))


# --- filters ---


def passes_filters(info: dict, filters: dict) -> tuple[bool, str]:
    """Whether a crop passes ``filters``; on failure, the reason names the filter.

    Filters (a None or missing value disables one):
    ``min_production_quality`` (AudioBox ``production_quality``),
    ``max_silence`` (fraction, on the crop's ``silence_fraction``),
    ``min_lufs`` (``lufs``). A crop without the field is not filtered by it,
    except that ``lufs: null`` (present but null: a silent crop) fails ``min_lufs``.
    """
    limit = filters.get("min_production_quality")
    value = info.get("production_quality")
    if limit is not None and isinstance(value, int | float) and value < limit:
        return False, f"min_production_quality: production_quality {value} < {limit}"
    limit = filters.get("max_silence")
    value = info.get("silence_fraction")
    if limit is not None and isinstance(value, int | float) and value > limit:
        return False, f"max_silence: silence_fraction {value} > {limit}"
    limit = filters.get("min_lufs")
    if limit is not None and "lufs" in info:
        value = info["lufs"]
        if value is None or value < limit:
            return False, f"min_lufs: lufs {value} < {limit}"
    return True, ""


#: The fields of a track's group of copies (mirflow.fingerprint).
DUPLICATE_FIELDS = ("duplicate_group", "duplicate_of")


def is_duplicate(track: Mapping[str, Any]) -> bool:
    """Whether a track's ``.INFO`` names another track as its original (``duplicate_of``)."""
    return track.get("duplicate_of") not in (None, "")


# --- splits ---


@dataclass(frozen=True)
class SplitSpec:
    """``export.split``: the shares of valid and test, and the unit kept whole.

    ``valid`` and ``test`` are shares of the split units (artists, albums or
    tracks), not of crops. Both 0 (the default) put everything in train, and
    each format keeps its single folder, without split sub-folders.
    """

    valid: float = 0.0
    test: float = 0.0
    by: str = "artist"

    def __post_init__(self) -> None:
        for name in ("valid", "test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                raise ValueError(f"export.split.{name} must be a number in [0, 1), got {value!r}")
        if self.valid + self.test >= 1:
            raise ValueError(
                f"export.split: valid + test must be below 1 (got {self.valid} + {self.test})"
            )
        if self.by not in SPLIT_BY:
            raise ValueError(f"export.split.by must be one of {list(SPLIT_BY)}, got {self.by!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | SplitSpec | None) -> SplitSpec:
        """From the ``export.split`` mapping (None or missing keys: the defaults)."""
        if isinstance(config, SplitSpec):
            return config
        config = dict(config or {})
        unknown = sorted(set(config) - {"valid", "test", "by"})
        if unknown:
            raise ValueError(f"export.split: unknown keys {unknown}")
        return cls(
            valid=config.get("valid") or 0.0,
            test=config.get("test") or 0.0,
            by=config.get("by") or "artist",
        )

    @property
    def active(self) -> bool:
        """Whether the exports are split (valid or test has a share)."""
        return self.valid > 0 or self.test > 0

    @property
    def names(self) -> tuple[str, ...]:
        """The splits written: train, and valid and test where their share is above 0."""
        return tuple(s for s in SPLITS if s == "train" or getattr(self, s) > 0)

    def split_of(self, key: str) -> str:
        """The split of a unit key: its hash in [0, 1) against the cumulative
        shares (test, then valid, then train). Nothing but the key and the
        shares decides it, so adding tracks never moves another unit."""
        u = unit_interval(key)
        if u < self.test:
            return "test"
        if u < self.test + self.valid:
            return "valid"
        return "train"


def unit_interval(key: str) -> float:
    """A stable hash of ``key`` in [0, 1): the first 8 bytes of its SHA-256."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def fold_text(text: str) -> str:
    """Text for comparing names: Unicode-compatible forms, accents dropped,
    case-folded, runs of whitespace as one space (``"Beyoncé  "`` -> ``"beyonce"``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


#: A featured-artist tail: "(feat. X)", "[ft. X]", "(with X)", " feat. X", ", ft. X",
#: " featuring X".
_FEATURING = re.compile(
    r"(?:\s*[(\[]\s*(?:feat\.?|ft\.?|featuring|with)\s.*"
    r"|[\s,]+(?:feat\.|ft\.|(?:feat|ft|featuring)\s).*)$"
)


def normalise_artist(name: Any) -> str | None:
    """The artist a split groups by: the first of ``"; "``-joined tag values
    (how ingest stores a multi-valued tag), folded (:func:`fold_text`), less a
    featured-artist tail. ``"The Band feat. X"``, ``"the  band (with Y)"`` and
    ``"THE BAND; Z"`` are all ``"the band"``. Not split on ``&``, ``,``, ``and``,
    ``/`` or ``x`` (``"Simon & Garfunkel"``, ``"AC/DC"`` are one artist each),
    and a leading "The" is kept. None when there is no name.
    """
    if not isinstance(name, str):
        return None
    text = fold_text(name.split(";")[0])
    text = _FEATURING.sub("", text).strip(" ,")
    return text or None


def split_key(track: Mapping[str, Any], by: str) -> str:
    """The unit a track belongs to before duplicate groups join units.

    ``artist``: ``"artist:<normalised artist>"`` (the album artist where the
    artist tag is missing); ``album``: ``"album:<album artist>\\t<album>"``
    (album artist, else artist, normalised; album folded); ``track``, and any
    track whose artist or album is not known: ``"track:<track id>"``.
    """
    artist = normalise_artist(track.get("track_metadata_artist"))
    album_artist = normalise_artist(track.get("track_metadata_album_artist"))
    if by == "artist" and (artist or album_artist):
        return f"artist:{artist or album_artist}"
    album = track.get("track_metadata_album")
    if by == "album" and isinstance(album, str) and fold_text(album):
        return f"album:{album_artist or artist or ''}\t{fold_text(album)}"
    return f"track:{track['track']}"


def assign_splits(tracks: Mapping[str, Mapping[str, Any]], spec: SplitSpec) -> dict[str, str]:
    """``{track id: split}`` for ``{track id: track fields}``.

    A split unit is the tracks of one :func:`split_key`, joined (transitively)
    with every unit that shares a duplicate group (``duplicate_group``, or the
    ``duplicate_of`` original) with it, so copies of a recording never sit in
    two splits. A unit's split is :meth:`SplitSpec.split_of` its smallest key
    (in string order): e.g. artists A and B whose tracks share a duplicate group
    both go where ``"artist:a"`` goes. Adding a track that joins no two units
    moves nothing; one that joins two (a new copy linking two artists) moves
    the unit whose key is not the smallest.
    """
    if not spec.active:
        return {t: "train" for t in tracks}
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    keys = {t: split_key({"track": t, **fields}, spec.by) for t, fields in tracks.items()}
    for t, fields in tracks.items():
        find(keys[t])
        for field in DUPLICATE_FIELDS:
            group = fields.get(field)
            if isinstance(group, str) and group:
                union(keys[t], "\0duplicate:" + group)  # "\0": never a split key
                if group in keys:
                    union(keys[t], keys[group])
    smallest: dict[str, str] = {}
    for key in keys.values():
        root = find(key)
        if root not in smallest or key < smallest[root]:
            smallest[root] = key
    return {t: spec.split_of(smallest[find(key)]) for t, key in keys.items()}


# --- export ---

#: Track fields the exports read from a crop when its track's .INFO lacks them.
_TRACK_FIELDS = (
    "track_metadata_artist",
    "track_metadata_album_artist",
    "track_metadata_album",
    "duplicate_group",
    "duplicate_of",
    "beats_per_bar",
)


def _read_track_info(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def track_records(
    crop_infos: Iterable[tuple[dict, Path]], tracks: Mapping[str, dict] | None = None
) -> dict[str, dict]:
    """``{track id: track fields}`` for the tracks of ``crop_infos`` and of ``tracks``.

    A track's fields are its ``.INFO`` (from ``tracks``, else the
    ``<track>.INFO`` beside its crops folder, ``dataset/<track>/``) over the
    copies its crops carry (:data:`_TRACK_FIELDS`).
    """
    records = {t: dict(info) for t, info in (tracks or {}).items()}
    for info, info_path in crop_infos:
        track = info["track"]
        if track not in records:
            records[track] = _read_track_info(Path(info_path).parent.parent / f"{track}.INFO")
        record = records[track]
        for field in _TRACK_FIELDS:
            if field not in record and field in info:
                record[field] = info[field]
    return records


class ExportRecord(TypedDict):
    """What :func:`export_crops` returns (``exports.json``)."""

    kept: int  # crops exported
    dropped: int  # crops left out by their status or a filter
    dropped_by: dict[str, int]  # by cause: "status" or the filter's name
    duplicates_left_out: int  # crops of copies of another track (duplicate_of), not in dropped
    splits: dict[str, int]  # crops exported per split


class _Crop(NamedTuple):
    info: dict
    info_path: Path
    split: str
    track: dict

    @property
    def name(self) -> str:
        return str(self.info["crop"])

    @property
    def audio(self) -> Path:
        return self.info_path.parent / self.info["audio_file"]

    @property
    def audio_name(self) -> str:
        return f"{self.name}{self.audio.suffix}"


def export_path(path_root: str | None, *parts: str) -> str:
    """A path as the exports write it: relative to the export folder, with ``/``
    separators, or under ``path_root`` when one is given."""
    relative = posixpath.join(*parts)
    return posixpath.join(path_root, relative) if path_root else relative


@dataclass(frozen=True)
class _Target:
    """Where one format is written: ``folder`` becomes ``<exports>/<fmt>``."""

    folder: Path
    fmt: str
    split_folders: bool
    path_root: str | None

    def parts(self, split: str) -> tuple[str, ...]:
        return (split,) if self.split_folders else ()

    def dir(self, split: str) -> Path:
        folder = self.folder.joinpath(*self.parts(split))
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def path(self, split: str | None, *names: str) -> str:
        """The exports' path of ``names`` in ``split``'s folder (None: the format's folder)."""
        inner = self.parts(split) if split is not None else ()
        return export_path(self.path_root, self.fmt, *inner, *names)


def _export_audiocraft(by_split: dict[str, list[_Crop]], target: _Target) -> None:
    for split, crops in by_split.items():
        folder = target.dir(split)
        lines = []
        for crop in crops:
            link_or_copy(crop.audio, folder / crop.audio_name)
            write_json(folder / f"{crop.name}.json", audiocraft_info(crop.info))
            line = audiocraft_manifest_line(target.path(split, crop.audio_name), crop.info)
            lines.append(json.dumps(line) + "\n")
        write_text(folder / "data.jsonl", "".join(lines))


def _export_stable_audio(by_split: dict[str, list[_Crop]], target: _Target) -> None:
    write_text(target.folder / "custom_metadata.py", STABLE_AUDIO_METADATA_MODULE)
    module = target.path(None, "custom_metadata.py")
    for split, crops in by_split.items():
        folder = target.dir(split)
        for crop in crops:
            link_or_copy(crop.audio, folder / crop.audio_name)
            link_or_copy(crop.info_path, folder / f"{crop.name}.INFO")
        name, dataset_id = ("dataset.json", "mirflow")
        if target.split_folders:
            name, dataset_id = f"dataset_{split}.json", f"mirflow_{split}"
        config = stable_audio_config(target.path(split), module, dataset_id)
        write_json(target.folder / name, config)


def _export_acestep(by_split: dict[str, list[_Crop]], target: _Target) -> None:
    for split, crops in by_split.items():
        folder = target.dir(split)
        for crop in crops:
            link_or_copy(crop.audio, folder / crop.audio_name)
            write_text(folder / f"{crop.name}_prompt.txt", acestep_prompt(crop.info))
            write_text(folder / f"{crop.name}_lyrics.txt", acestep_lyrics(crop.info))


def _export_acestep15(by_split: dict[str, list[_Crop]], target: _Target) -> None:
    for split, crops in by_split.items():
        folder = target.dir(split)
        samples = []
        for crop in crops:
            link_or_copy(crop.audio, folder / crop.audio_name)
            path = target.path(split, crop.audio_name)
            sample = acestep15_sample(crop.info, path, crop.track)
            samples.append(sample)
            write_text(folder / f"{crop.name}.caption.txt", sample["caption"])
            if sample["raw_lyrics"]:
                write_text(folder / f"{crop.name}.lyrics.txt", sample["raw_lyrics"])
        name = f"mirflow_{split}" if target.split_folders else "mirflow"
        write_json(folder / "dataset.json", acestep15_dataset(samples, name))
        write_text(folder / "metadata.csv", acestep15_csv(samples))


_EXPORTERS = {
    "audiocraft": _export_audiocraft,
    "stable_audio": _export_stable_audio,
    "acestep": _export_acestep,
    "acestep15": _export_acestep15,
}


def _selected(
    crop_infos: list[tuple[dict, Path]],
    filters: dict,
    tracks: dict[str, dict],
    splits: dict[str, str],
    drop_duplicates: bool,
) -> tuple[list[_Crop], Counter, int]:
    kept, dropped_by, duplicates = [], Counter(), 0
    for info, info_path in crop_infos:
        track = tracks[info["track"]]
        if info.get("status") != "ok":
            dropped_by["status"] += 1
            continue
        if drop_duplicates and is_duplicate(track):
            duplicates += 1
            continue
        ok, reason = passes_filters(info, filters)
        if not ok:
            dropped_by[reason.split(":", 1)[0]] += 1
            continue
        kept.append(_Crop(info, Path(info_path), splits[info["track"]], track))
    return kept, dropped_by, duplicates


def export_crops(
    crop_infos: list[tuple[dict, Path]],
    out_dir: Path,
    formats: list[str],
    filters: dict,
    *,
    split: Mapping[str, Any] | SplitSpec | None = None,
    drop_duplicates: bool = True,
    path_root: str | None = None,
    tracks: Mapping[str, dict] | None = None,
) -> ExportRecord:
    """Export the ``status == "ok"`` crops that pass ``filters`` in ``formats``.

    ``crop_infos`` pairs each crop ``.INFO`` dict with the path of that
    ``.INFO`` (its ``audio_file`` is relative to it); ``tracks`` maps track ids
    to track ``.INFO`` dicts (missing ones are read beside the crops, see
    :func:`track_records`). With ``drop_duplicates``, the crops of a track with
    a ``duplicate_of`` are left out (counted apart from ``dropped``: kept +
    dropped + duplicates_left_out is every crop given). ``split`` (``export.split``, see
    :class:`SplitSpec`) assigns every track a split (:func:`assign_splits`,
    from all the tracks given, so the filters move no track); when it is
    active, each format has one sub-folder (AudioCraft, ACE-Step) or one
    config (stable-audio-tools) per split, and the Parquet tables a ``split``
    column. Paths inside the exports are relative to ``out_dir``, or under
    ``path_root`` (:func:`export_path`). With ``tracks`` and ``parquet``, also
    ``tracks.parquet``: one row per track of ``tracks``, with its ``split``.

    Each format's folder under ``out_dir`` is replaced as a whole (no stale
    crops from an earlier export); audio files are hard links to the crops
    (copies across filesystems).
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown export formats {unknown}; known: {list(FORMATS)}")
    spec = SplitSpec.from_config(split)
    path_root = path_root or None
    out_dir = Path(out_dir)
    records = track_records(crop_infos, tracks)
    splits = assign_splits(records, spec)
    kept, dropped_by, duplicates = _selected(crop_infos, filters, records, splits, drop_duplicates)
    by_split = {name: [c for c in kept if c.split == name] for name in spec.names}
    for fmt in formats:
        if fmt in _EXPORTERS:
            with atomic_directory(out_dir / fmt) as folder:
                _EXPORTERS[fmt](by_split, _Target(folder, fmt, spec.active, path_root))
    if "parquet" in formats:
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = [{**crop.info, "split": crop.split} for crop in kept]
        with atomic_path(out_dir / "crops.parquet") as tmp:
            scalar_table(rows).to_parquet(tmp, index=False)
        if tracks is not None:
            rows = [{**info, "split": splits[t]} for t, info in tracks.items()]
            with atomic_path(out_dir / "tracks.parquet") as tmp:
                scalar_table(rows).to_parquet(tmp, index=False)
    return ExportRecord(
        kept=len(kept),
        dropped=sum(dropped_by.values()),
        dropped_by=dict(dropped_by),
        duplicates_left_out=duplicates,
        splits={name: len(crops) for name, crops in by_split.items()},
    )


def crop_infos_of(dataset_dirs: list[Path]) -> list[tuple[dict, Path]]:
    """Every crop ``.INFO`` (dict, path) under the given ``dataset/<track>`` folders.

    A folder may also be the ``dataset`` folder itself (its tracks are searched).
    """
    found = []
    for folder in map(Path, dataset_dirs):
        paths = sorted(folder.glob("crops/*.INFO")) or sorted(folder.glob("*/crops/*.INFO"))
        found += [(json.loads(p.read_text(encoding="utf-8")), p) for p in paths]
    return found


def export_dataset(
    dataset_dirs: list[Path],
    out_dir: Path,
    formats: list[str],
    filters: dict,
    *,
    duplicates: Mapping[str, Mapping[str, Any]] | None = None,
    **options: Any,
) -> ExportRecord:
    """:func:`export_crops` over the crops of ``dataset_dirs`` (see :func:`crop_infos_of`)
    and their tracks' ``.INFO`` (``dataset/<track>/<track>.INFO``), so with
    ``parquet`` also ``tracks.parquet``: one row per track, every scalar field a
    column, and the track's ``split``; ``options`` are :func:`export_crops`'s
    (``split``, ``drop_duplicates``, ``path_root``). ``duplicates`` (track -> its
    ``duplicate_group`` and ``duplicate_of``, mirflow.fingerprint.groups_by_track)
    is the library's current view, which replaces the ``.INFO``'s: a track
    assembled before its copy arrived does not name its group yet."""
    tracks = {}
    for folder in map(Path, dataset_dirs):
        info_file = folder / f"{folder.name}.INFO"
        if info_file.exists():
            tracks[folder.name] = json.loads(info_file.read_text(encoding="utf-8"))
    crops = crop_infos_of(dataset_dirs)
    if duplicates is not None:
        for info in [*tracks.values(), *(crop for crop, _ in crops)]:
            for key in DUPLICATE_FIELDS:
                info.pop(key, None)
            info.update(duplicates.get(info.get("track", ""), {}))
    return export_crops(crops, out_dir, formats, filters, tracks=tracks, **options)
