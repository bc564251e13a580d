"""Training-format exports of the dataset's crops: AudioCraft, stable-audio-tools,
ACE-Step, and a flat Parquet table.

Pure functions over crop ``.INFO`` dicts (see README, "The .INFO files"); every
optional key (AudioBox scores, Essentia labels, vocal probabilities, Music
Flamingo captions) may be missing, and each function then falls back.

Formats, as their loaders read them:

- **AudioCraft** (``audiocraft/data/music_dataset.py``, ``audio_dataset.py``):
  ``data.jsonl`` holds one ``AudioMeta`` per line (``path``, ``duration``,
  ``sample_rate``, ``amplitude``, ``weight``, ``info_path``); ``MusicDataset``
  reads the ``MusicInfo`` fields from ``<audio>.json`` beside the audio
  (``Path(meta.path).with_suffix('.json')``) and, with ``info_fields_required``
  (its default), wants every field but ``keywords`` present. ``info_path`` must
  be ``None`` or ``"<zip>:<path inside zip>"`` (``PathInZip`` asserts on that
  form), so the manifest leaves it ``None``.
- **stable-audio-tools** (``stable_audio_tools/data/dataset.py``): an
  ``audio_dir`` dataset config names a ``custom_metadata_module`` file that is
  loaded with ``importlib.util.spec_from_file_location`` and whose
  ``get_custom_metadata(info, audio)`` is called with ``info["path"]`` the audio
  file; the returned dict (here ``{"prompt": ...}``) is merged into ``info``.
- **ACE-Step**: ``<crop>.<ext>`` with ``<crop>_prompt.txt`` (comma-separated
  tags) and ``<crop>_lyrics.txt`` beside it.
"""

from __future__ import annotations

import inspect
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from mirflow.atomic import atomic_directory, atomic_path, link_or_copy, write_json, write_text

FORMATS = ("audiocraft", "stable_audio", "acestep", "parquet")
VOICE_THRESHOLD = 0.5
INSTRUMENTAL_LYRICS = "[instrumental]"


# --- label helpers ---
# Standalone (stdlib only, Python 3.8 syntax): their source is copied into the
# stable-audio-tools module, which runs in that library's environment.


def top_labels(probabilities, n=3, min_probability=0.1):
    """Up to ``n`` labels of a ``{label: probability}`` dict, most probable first.

    Labels under ``min_probability`` are left out, except that the most
    probable one is always kept. Essentia's ``"Parent---Child"`` labels keep the
    child; labels are lower-cased with ``_`` as spaces. Not a dict -> ``[]``.
    """
    if not isinstance(probabilities, dict):
        return []
    scored = [
        (float(p), str(label))
        for label, p in probabilities.items()
        if isinstance(p, (int, float)) and not isinstance(p, bool) and p == p
    ]
    scored.sort(key=lambda item: (-item[0], item[1]))
    kept = [label for p, label in scored[:n] if p >= min_probability] or [
        label for _, label in scored[:1]
    ]
    out = []
    for label in kept:
        name = label.split("---")[-1].replace("_", " ").strip().lower()
        if name and name not in out:
            out.append(name)
    return out


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


def audiocraft_manifest_line(
    audio_path: str | os.PathLike, info: dict, info_path: str | None = None
) -> dict:
    """One ``data.jsonl`` line: the fields of AudioCraft's ``AudioMeta``.

    ``path`` is made absolute (AudioCraft resolves relative paths only through
    dora). ``info_path`` is AudioCraft's ``PathInZip`` (``"<zip>:<file>"``) for
    metadata stored in a zip; leave it None when ``<audio>.json`` sits beside the
    audio. Anything else would fail its loader's assertion, so it raises here.
    """
    if info_path is not None and len(str(info_path).split(":")) != 2:
        raise ValueError(f"info_path must be '<zip>:<file in zip>', got {info_path!r}")
    return {
        "path": os.path.abspath(os.fspath(audio_path)),
        "duration": float(info["duration_s"]),
        "sample_rate": int(info["sample_rate"]),
        "amplitude": None,
        "weight": None,
        "info_path": None if info_path is None else str(info_path),
    }


# --- stable-audio-tools ---


def stable_audio_config(dataset_dir: str | os.PathLike, module_path: str | os.PathLike) -> dict:
    """An ``audio_dir`` dataset config for stable-audio-tools' ``create_dataloader_from_config``.

    ``random_crop`` is False: the crops are already cut on downbeats, so the
    loader's pad/crop keeps each one's start.
    """
    return {
        "dataset_type": "audio_dir",
        "datasets": [
            {
                "id": "mirflow",
                "path": os.path.abspath(os.fspath(dataset_dir)),
                "custom_metadata_module": os.path.abspath(os.fspath(module_path)),
            }
        ],
        "random_crop": False,
    }


# --- ACE-Step ---


def acestep_prompt(info: dict) -> str:
    """Comma-separated tags: genres, moods, instruments, ``"<bpm> bpm"``, key."""
    tags = genres_of(info) + moods_of(info) + instruments_of(info)
    bpm, key = bpm_of(info), key_of(info)
    if bpm is not None:
        tags.append(f"{round(bpm)} bpm")
    if key is not None:
        tags.append(key)
    return ", ".join(dict.fromkeys(tags))


def acestep_lyrics(info: dict) -> str:
    """Lyrics for ACE-Step.

    Rule: a non-empty ``lyrics`` string in the ``.INFO`` is used as is;
    otherwise ``"[instrumental]"`` when vocals are unlikely
    (``voice_probability`` < 0.5, or, without it, ``instrumental_probability``
    >= 0.5); otherwise ``""``: vocals likely or unknown, and the words are not
    known, so the crop is not claimed to be instrumental.
    """
    lyrics = info.get("lyrics")
    if isinstance(lyrics, str) and lyrics.strip():
        return lyrics.strip()
    return INSTRUMENTAL_LYRICS if vocals_likely(info) is False else ""


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


# --- export ---


def _selected(
    crop_infos: list[tuple[dict, Path]], filters: dict
) -> tuple[list[tuple[dict, Path, Path]], Counter]:
    kept, dropped_by = [], Counter()
    for info, info_path in crop_infos:
        if info.get("status") != "ok":
            dropped_by["status"] += 1
            continue
        ok, reason = passes_filters(info, filters)
        if not ok:
            dropped_by[reason.split(":", 1)[0]] += 1
            continue
        kept.append((info, Path(info_path), Path(info_path).parent / info["audio_file"]))
    return kept, dropped_by


def _export_audiocraft(kept, folder: Path, final: Path) -> None:
    lines = []
    for info, _, audio in kept:
        name = f"{info['crop']}{audio.suffix}"
        link_or_copy(audio, folder / name)
        write_json(folder / f"{info['crop']}.json", audiocraft_info(info))
        lines.append(json.dumps(audiocraft_manifest_line(final / name, info)) + "\n")
    write_text(folder / "data.jsonl", "".join(lines))


def _export_stable_audio(kept, folder: Path, final: Path) -> None:
    for info, info_path, audio in kept:
        link_or_copy(audio, folder / f"{info['crop']}{audio.suffix}")
        link_or_copy(info_path, folder / f"{info['crop']}.INFO")
    write_text(folder / "custom_metadata.py", STABLE_AUDIO_METADATA_MODULE)
    write_json(folder / "dataset.json", stable_audio_config(final, final / "custom_metadata.py"))


def _export_acestep(kept, folder: Path, final: Path) -> None:
    for info, _, audio in kept:
        link_or_copy(audio, folder / f"{info['crop']}{audio.suffix}")
        write_text(folder / f"{info['crop']}_prompt.txt", acestep_prompt(info))
        write_text(folder / f"{info['crop']}_lyrics.txt", acestep_lyrics(info))


_EXPORTERS = {
    "audiocraft": _export_audiocraft,
    "stable_audio": _export_stable_audio,
    "acestep": _export_acestep,
}


def export_crops(
    crop_infos: list[tuple[dict, Path]], out_dir: Path, formats: list[str], filters: dict
) -> dict:
    """Export the ``status == "ok"`` crops that pass ``filters`` in ``formats``.

    ``crop_infos`` pairs each crop ``.INFO`` dict with the path of that
    ``.INFO`` (its ``audio_file`` is relative to it). Each format's folder under
    ``out_dir`` is replaced as a whole (no stale crops from an earlier export);
    audio files are hard links to the crops (copies across filesystems).
    Returns ``{"kept": n, "dropped": n, "dropped_by": {filter or "status": n}}``.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown export formats {unknown}; known: {list(FORMATS)}")
    out_dir = Path(out_dir)
    kept, dropped_by = _selected(crop_infos, filters)
    for fmt in formats:
        if fmt in _EXPORTERS:
            final = (out_dir / fmt).absolute()
            with atomic_directory(final) as folder:
                _EXPORTERS[fmt](kept, folder, final)
    if "parquet" in formats:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / "crops.parquet") as tmp:
            scalar_table([info for info, _, _ in kept]).to_parquet(tmp, index=False)
    return {
        "kept": len(kept),
        "dropped": sum(dropped_by.values()),
        "dropped_by": dict(dropped_by),
    }


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
    dataset_dirs: list[Path], out_dir: Path, formats: list[str], filters: dict
) -> dict:
    """:func:`export_crops` over the crops of ``dataset_dirs`` (see :func:`crop_infos_of`),
    plus ``tracks.parquet``: one row per track, every scalar field a column."""
    counts = export_crops(crop_infos_of(dataset_dirs), out_dir, formats, filters)
    if "parquet" in formats:
        tracks = [
            json.loads((Path(d) / f"{Path(d).name}.INFO").read_text(encoding="utf-8"))
            for d in dataset_dirs
            if (Path(d) / f"{Path(d).name}.INFO").exists()
        ]
        with atomic_path(Path(out_dir) / "tracks.parquet") as tmp:
            scalar_table(tracks).to_parquet(tmp, index=False)
    return counts
