"""Export splits, duplicates, movable paths and the ACE-Step 1.5 format."""

import csv
import dataclasses
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from test_export import load_module

from mirflow.export import (
    SplitSpec,
    acestep15_csv,
    acestep15_sample,
    assign_splits,
    export_dataset,
    normalise_artist,
    split_key,
)

SR = 8000
ALL = ["audiocraft", "stable_audio", "acestep", "acestep15", "parquet"]
SPLIT = {"valid": 0.25, "test": 0.25, "by": "artist"}
SPLITS3 = ("train", "valid", "test")

# ACE-Step 1.5's AudioSample fields (acestep/training/dataset_builder_modules/models.py)
# and DatasetMetadata fields, as its load_dataset reads them.
ACESTEP15_SAMPLE_FIELDS = {
    "id", "audio_path", "filename", "caption", "genre", "lyrics", "raw_lyrics",
    "formatted_lyrics", "bpm", "keyscale", "timesignature", "duration", "language",
    "is_instrumental", "custom_tag", "labeled", "prompt_override",
}  # fmt: skip
ACESTEP15_METADATA_FIELDS = {
    "name", "custom_tag", "tag_position", "created_at", "num_samples", "all_instrumental",
    "genre_ratio",
}  # fmt: skip
VALID_KEYSCALES = {
    f"{n}{a} {m}" for n in "ABCDEFG" for a in ("", "#", "b", "♯", "♭") for m in ("major", "minor")
}


# --- AudioCraft's AudioMeta, as audiocraft/data/audio_dataset.py defines and loads it ---


@dataclasses.dataclass(order=True)
class AudioMeta:
    path: str
    duration: float
    sample_rate: int
    amplitude: float | None = None
    weight: float | None = None
    info_path: str | None = None  # a PathInZip ("<zip>:<file>") in AudioCraft

    @classmethod
    def from_dict(cls, dictionary):
        return cls(
            **{f.name: dictionary[f.name] for f in dataclasses.fields(cls) if f.name in dictionary}
        )


def load_audio_meta(folder):
    """``AudioDataset.from_meta(folder)``: ``data.jsonl`` in the folder, each path
    resolved as ``_resolve_audio_meta`` does without git_save or Hydra (dora's
    ``to_absolute_path``: ``Path(path).resolve()``, i.e. against the working directory)."""
    meta = [AudioMeta.from_dict(json.loads(x)) for x in (Path(folder) / "data.jsonl").open()]
    for m in meta:
        if m.path[0] != "/":
            m.path = str(Path(m.path).resolve())
    return meta


def scan_audio(path, exts=(".wav", ".mp3", ".flac", ".ogg", ".aif", ".opus", ".aiff")):
    """stable-audio-tools' ``fast_scandir``: ``os.scandir`` from the config's path, recursive."""
    files = []
    for entry in os.scandir(path):
        if entry.is_dir():
            files += scan_audio(entry.path, exts)
        elif os.path.splitext(entry.name)[1].lower() in exts and not entry.name.startswith("."):
            files.append(entry.path)
    return files


def acestep_safe_path(user_path, root):
    """ACE-Step 1.5's ``path_safety.safe_path``: relative paths join the safe root."""
    root = os.path.normpath(os.path.realpath(root))
    joined = user_path if os.path.isabs(user_path) else os.path.join(root, user_path)
    resolved = os.path.normpath(os.path.realpath(joined))
    assert resolved.startswith(root + os.sep), (user_path, root)
    return resolved


def acestep_csv_metadata(directory):
    """ACE-Step 1.5's ``load_csv_metadata``: every *.csv at the top of the folder."""
    metadata = {}
    for name in os.listdir(directory):
        if not name.lower().endswith(".csv"):
            continue
        with open(os.path.join(directory, name), encoding="utf-8-sig") as f:
            sample = f.read(4096)
            f.seek(0)
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
            reader = csv.DictReader(f, dialect=dialect)
            header = {h.lower(): h for h in reader.fieldnames}
            for row in reader:
                entry = {}
                if row.get(header["bpm"]):
                    entry["bpm"] = int(float(row[header["bpm"]].strip()))
                if row.get(header["key"]):
                    entry["key"] = row[header["key"]].strip()
                if "caption" in header and row.get(header["caption"]):
                    entry["caption"] = row[header["caption"]].strip()
                metadata[row[header["file"]].strip()] = entry
    return metadata


# --- a small dataset on disk ---


def crop_info(track, index, artist, **extra):
    crop = f"{track}_{index:03d}"
    info = {
        "track": track,
        "crop": crop,
        "audio_file": f"{crop}.flac",
        "sample_rate": SR,
        "channels": 1,
        "duration_s": 0.1,
        "bpm": 121.0,
        "key": "F#:minor",
        "beat_count": 8,
        "downbeat_count": 2,
        "track_metadata_artist": artist,
        "track_metadata_title": f"Title {track}",
        "track_metadata_album": f"Album of {artist}",
        "status": "ok",
        "error": "",
    }
    info.update(extra)
    return info


def write_track(dataset, track, artist, crops=2, crop_extra=None, **track_fields):
    folder = dataset / track
    (folder / "crops").mkdir(parents=True, exist_ok=True)
    info = {"track": track, "track_metadata_artist": artist, "beats_per_bar": 4, "status": "ok"}
    info.update(track_fields)
    (folder / f"{track}.INFO").write_text(json.dumps(info))
    tone = (0.2 * np.sin(np.arange(int(0.1 * SR)) * 0.3)).astype(np.float32)
    for index in range(crops):
        crop = crop_info(track, index, artist, **(crop_extra or {}))
        sf.write(folder / "crops" / crop["audio_file"], tone, SR)
        (folder / "crops" / f"{crop['crop']}.INFO").write_text(json.dumps(crop))
    return folder


ARTISTS = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India"]


@pytest.fixture
def library(tmp_path):
    """18 tracks of 9 artists (spelt in several ways), one copy (t_dup, of t_alpha_0,
    tagged with another artist), 2 crops each."""
    dataset = tmp_path / "out" / "dataset"
    spellings = ["{}", "{} feat. Someone", " {}  (with Other)"]
    for i, artist in enumerate(ARTISTS):
        for j in range(2):
            name = spellings[(i + j) % 3].format(artist if j == 0 else artist.upper())
            track = f"t_{artist.lower()}_{j}"
            group = {"duplicate_group": "t_alpha_0"} if track == "t_alpha_0" else {}
            write_track(dataset, track, name, **group)
    write_track(dataset, "t_dup", "Zulu", duplicate_group="t_alpha_0", duplicate_of="t_alpha_0")
    return dataset


def dataset_dirs(dataset):
    return sorted(p for p in dataset.iterdir() if p.is_dir())


# --- normalisation and keys ---


def test_normalise_artist_folds_spelling_and_drops_featured_artists():
    for name in [
        "The Band",
        "the band",
        "  THE   BAND ",
        "The Band feat. X",
        "The Band ft. X & Y",
        "The Band featuring X",
        "The Band (feat. X)",
        "The Band [ft. X]",
        "The Band (with X)",
        "The Band; Other Artist",  # ingest's "; "-joined multi-valued tag: the first
    ]:
        assert normalise_artist(name) == "the band", name
    assert normalise_artist("Beyoncé") == normalise_artist("BEYONCE") == "beyonce"
    assert normalise_artist("Simon & Garfunkel") == "simon & garfunkel"  # one artist
    assert normalise_artist("AC/DC") == "ac/dc"
    assert normalise_artist("Earth, Wind & Fire") == "earth, wind & fire"
    assert normalise_artist("Feat. Nobody") == "feat. nobody"  # a name, not a tail
    assert normalise_artist("") is None and normalise_artist(None) is None


def test_split_key_by_artist_album_track_with_fallbacks():
    track = {"track": "t1", "track_metadata_artist": "A feat. B", "track_metadata_album": "LP"}
    assert split_key(track, "artist") == "artist:a"
    assert split_key(track, "album") == "album:a\tlp"
    assert split_key(track, "track") == "track:t1"
    assert split_key({"track": "t1", "track_metadata_album_artist": "C"}, "artist") == "artist:c"
    assert split_key({"track": "t1"}, "artist") == "track:t1"  # untagged: its own unit
    assert split_key({"track": "t1", "track_metadata_artist": "A"}, "album") == "track:t1"
    with_album_artist = {**track, "track_metadata_album_artist": "Various"}
    assert split_key(with_album_artist, "album") == "album:various\tlp"


def test_split_spec_defaults_and_validation():
    spec = SplitSpec.from_config(None)
    assert not spec.active and spec.names == ("train",)
    assert SplitSpec.from_config({"valid": 0.1}).names == ("train", "valid")
    assert SplitSpec.from_config(SPLIT).names == ("train", "valid", "test")
    for bad in ({"valid": 0.6, "test": 0.5}, {"valid": -0.1}, {"by": "genre"}, {"seed": 1}):
        with pytest.raises(ValueError):
            SplitSpec.from_config(bad)


# --- assignment ---


def library_records(n, seed=0, prefix="t"):
    """n tracks of n // 3 artists, each spelt in one of several ways."""
    rng = random.Random(seed)
    artists = [f"Artist {i}" for i in range(n // 3)]
    spellings = ["{}", "{} feat. Guest", "{} (with Guest)", "  {}  ", "{}; Other"]
    records = {}
    for i in range(n):
        artist = rng.choice(artists)
        name = rng.choice(spellings).format(artist)
        records[f"{prefix}{i:04d}"] = {
            "track_metadata_artist": name.upper() if rng.random() < 0.3 else name,
            "track_metadata_album": f"{artist} LP {rng.randint(1, 3)}",
        }
    return records


def test_no_artist_in_two_splits_and_every_split_used():
    records = library_records(300)
    spec = SplitSpec.from_config(SPLIT)
    splits = assign_splits(records, spec)
    by_artist = {}
    for track, split in splits.items():
        by_artist.setdefault(normalise_artist(records[track]["track_metadata_artist"]), set()).add(
            split
        )
    assert all(len(s) == 1 for s in by_artist.values())
    assert set(splits.values()) == {"train", "valid", "test"}
    assert assign_splits(records, SplitSpec()) == dict.fromkeys(records, "train")


@pytest.mark.parametrize("by", ["artist", "album", "track"])
def test_adding_ten_tracks_moves_no_existing_track(by):
    spec = SplitSpec(valid=0.2, test=0.2, by=by)
    records = library_records(120)
    before = assign_splits(records, spec)
    added = dict(records)
    added.update(library_records(10, seed=1, prefix="new"))  # existing and new artists
    added["new_copy"] = {"track_metadata_artist": "Brand New", "duplicate_group": "new0001"}
    after = assign_splits(added, spec)
    assert {t: after[t] for t in before} == before
    assert after["new_copy"] == after["new0001"]


def test_duplicates_keep_their_units_together_deterministically():
    spec = SplitSpec(valid=0.3, test=0.3, by="artist")
    records = {}
    for artist in "ABCDEFGHIJKLMNOP":
        for i in range(3):
            records[f"{artist}{i}"] = {"track_metadata_artist": f"Artist {artist}"}
    # Artists A and B share a duplicate group (a copy of A0 tagged as B):
    # both artists' tracks go where the smallest key, "artist:artist a", goes.
    records["A0"]["duplicate_group"] = "A0"
    records["B1"].update(duplicate_group="A0", duplicate_of="A0")
    # A copy named only by duplicate_of (no group field) joins its original too.
    records["copy_of_C2"] = {"track_metadata_artist": "Artist Z", "duplicate_of": "C2"}
    splits = assign_splits(records, spec)
    expected = spec.split_of("artist:artist a")
    assert {splits[f"{a}{i}"] for a in "AB" for i in range(3)} == {expected}
    assert splits["copy_of_C2"] == splits["C2"] == splits["C0"]
    # whatever order the tracks come in
    shuffled = list(records.items())
    random.Random(3).shuffle(shuffled)
    assert assign_splits(dict(shuffled), spec) == splits
    # with the duplicate fields removed, B goes back to its own split
    alone = {t: {"track_metadata_artist": r["track_metadata_artist"]} for t, r in records.items()}
    assert assign_splits(alone, spec)["B0"] == spec.split_of("artist:artist b")


# --- exports ---


def export(dataset, out, **options):
    return export_dataset(dataset_dirs(dataset), out, ALL, {}, **options)


def jsonl_artists(out, split):
    lines = (out / "audiocraft" / split / "data.jsonl").read_text().splitlines()
    names = [Path(json.loads(x)["path"]).name for x in lines]
    folder = out / "audiocraft" / split
    return {
        name: json.loads((folder / name).with_suffix(".json").read_text())["artist"]
        for name in names
    }


def test_split_exports_in_each_tools_layout(library, tmp_path):
    out = tmp_path / "out" / "exports"
    record = export(library, out, split=SPLIT)
    assert record["kept"] == 36 and record["duplicates_left_out"] == 2  # t_dup's two crops
    assert record["dropped_by"] == {} and record["dropped"] == 0
    assert sum(record["splits"].values()) == 36 and set(record["splits"]) == set(SPLITS3)
    crop_split = {}
    for split in SPLITS3:
        # AudioCraft: a datasource folder with data.jsonl per split
        artists = jsonl_artists(out, split)
        assert len(artists) == record["splits"][split]
        crop_split.update(dict.fromkeys(artists, split))
        # stable-audio-tools: one dataset config per split
        config = json.loads((out / "stable_audio" / f"dataset_{split}.json").read_text())
        assert config["datasets"][0]["path"] == f"stable_audio/{split}"
        # ACE-Step v1 and 1.5: one folder per split
        assert len(list((out / "acestep" / split).glob("*_prompt.txt"))) == len(artists)
        samples = json.loads((out / "acestep15" / split / "dataset.json").read_text())["samples"]
        assert sorted(s["filename"] for s in samples) == sorted(artists)
    assert not (out / "audiocraft" / "data.jsonl").exists()
    assert not list(out.rglob("t_dup_*"))  # the copy is left out of every format
    # no artist in two splits, however it is spelt
    artist_splits = {}
    for split in SPLITS3:
        for artist in jsonl_artists(out, split).values():
            artist_splits.setdefault(normalise_artist(artist), set()).add(split)
    assert len(artist_splits) == len(ARTISTS)
    assert all(len(s) == 1 for s in artist_splits.values())
    # Parquet: a split column, the same as the folders, and per track
    crops = pd.read_parquet(out / "crops.parquet")
    assert dict(zip(crops["crop"] + ".flac", crops["split"], strict=True)) == crop_split
    tracks = pd.read_parquet(out / "tracks.parquet").set_index("track")["split"]
    for crop, split in zip(crops["crop"], crops["split"], strict=True):
        assert tracks[crop.rsplit("_", 1)[0]] == split
    assert tracks["t_dup"] == tracks["t_alpha_0"]  # the copy's split: its original's


def test_duplicates_kept_on_request_land_with_their_original(library, tmp_path):
    out = tmp_path / "out" / "exports"
    record = export(library, out, split=SPLIT, drop_duplicates=False)
    assert record["kept"] == 38 and record["duplicates_left_out"] == 0 and record["dropped"] == 0
    crops = pd.read_parquet(out / "crops.parquet").set_index("crop")["split"]
    assert crops["t_dup_000"] == crops["t_alpha_0_000"] == crops["t_alpha_1_001"]


def test_filters_move_no_track_between_splits(library, tmp_path):
    loose = export(library, tmp_path / "a", split=SPLIT)
    for crop in (library / "t_bravo_0" / "crops").glob("*.INFO"):
        crop.write_text(json.dumps({**json.loads(crop.read_text()), "lufs": -60.0}))
    strict = export_dataset(
        dataset_dirs(library), tmp_path / "b", ALL, {"min_lufs": -30.0}, split=SPLIT
    )
    assert strict["dropped_by"] == {"min_lufs": 2} and strict["duplicates_left_out"] == 2
    a = pd.read_parquet(tmp_path / "a" / "tracks.parquet").set_index("track")["split"]
    b = pd.read_parquet(tmp_path / "b" / "tracks.parquet").set_index("track")["split"]
    assert a.equals(b) and loose["kept"] == strict["kept"] + 2


def test_moved_exports_still_load_in_each_tool(library, tmp_path, monkeypatch):
    out = tmp_path / "out" / "exports"
    export(library, out, split=SPLIT)
    moved = tmp_path / "elsewhere" / "copied" / "exports"
    moved.parent.mkdir(parents=True)
    shutil.move(out, moved)
    shutil.rmtree(tmp_path / "out")  # nothing left where the exports were made
    monkeypatch.chdir(moved)  # the documented way: run the training tool from exports/
    total = 0
    for split in SPLITS3:
        # AudioCraft
        meta = load_audio_meta(Path("audiocraft") / split)
        assert meta
        for m in meta:
            assert Path(m.path).is_file() and Path(m.path).is_relative_to(moved.resolve())
            assert Path(m.path).with_suffix(".json").is_file()  # MusicDataset's MusicInfo
            assert sf.info(m.path).samplerate == m.sample_rate and m.info_path is None
        # stable-audio-tools
        config = json.loads(Path(f"stable_audio/dataset_{split}.json").read_text())
        assert config["dataset_type"] == "audio_dir"
        (dataset,) = config["datasets"]
        module = load_module(dataset["custom_metadata_module"])
        files = scan_audio(dataset["path"])
        assert len(files) == len(meta)
        for file in files:
            prompt = module.get_custom_metadata({"path": file}, np.zeros((1, 4)))["prompt"]
            assert "121 bpm" in prompt and "F# minor" in prompt
        # ACE-Step 1.5: the dataset JSON, with the safe root at exports/ ...
        data = json.loads(Path(f"acestep15/{split}/dataset.json").read_text())
        for sample in data["samples"]:
            assert os.path.isfile(acestep_safe_path(sample["audio_path"], os.getcwd()))
        # ... and the folder scan: audio, <stem>.caption.txt and metadata.csv
        csv_rows = acestep_csv_metadata(f"acestep15/{split}")
        audio = [f for f in os.listdir(f"acestep15/{split}") if f.endswith(".flac")]
        assert sorted(csv_rows) == sorted(audio) == sorted(s["filename"] for s in data["samples"])
        captions = {s["filename"]: s["caption"] for s in data["samples"]}
        for name in audio:
            caption = Path(f"acestep15/{split}/{name}").with_suffix(".caption.txt")
            assert caption.read_text(encoding="utf-8").strip() == captions[name]
            assert csv_rows[name] == {"bpm": 121, "key": "F# minor"}
        total += len(meta)
    assert total == 36


def test_path_root_writes_paths_under_it(library, tmp_path):
    out = tmp_path / "out" / "exports"
    export(library, out, split=SPLIT, path_root="/mnt/data/exports")
    line = json.loads((out / "audiocraft" / "train" / "data.jsonl").read_text().splitlines()[0])
    assert line["path"].startswith("/mnt/data/exports/audiocraft/train/")
    config = json.loads((out / "stable_audio" / "dataset_valid.json").read_text())
    assert config["datasets"][0] == {
        "id": "mirflow_valid",
        "path": "/mnt/data/exports/stable_audio/valid",
        "custom_metadata_module": "/mnt/data/exports/stable_audio/custom_metadata.py",
    }
    sample = json.loads((out / "acestep15" / "test" / "dataset.json").read_text())["samples"][0]
    assert sample["audio_path"] == f"/mnt/data/exports/acestep15/test/{sample['filename']}"


def test_unsplit_exports_keep_one_folder_per_format(library, tmp_path):
    out = tmp_path / "out" / "exports"
    record = export(library, out)
    assert record["splits"] == {"train": 36}
    line = json.loads((out / "audiocraft" / "data.jsonl").read_text().splitlines()[0])
    assert line["path"].startswith("audiocraft/") and line["path"].count("/") == 1
    assert (out / line["path"]).is_file()
    config = json.loads((out / "stable_audio" / "dataset.json").read_text())
    assert config["datasets"][0]["path"] == "stable_audio"
    assert (out / "acestep15" / "dataset.json").is_file() and (
        out / "acestep15/metadata.csv"
    ).is_file()
    assert not (out / "audiocraft" / "train").exists()


# --- ACE-Step 1.5 ---


RICH = {
    "essentia_genre": {"Electronic---House": 0.8, "Jazz": 0.01},
    "essentia_mood": {"dark": 0.6},
    "essentia_instrument": {"synthesizer": 0.7},
    "voice_probability": 0.1,
    "music_flamingo_caption": "A dark house groove, with a synth riff; then drums.",
}


def test_acestep15_sample_has_the_fields_it_reads():
    info = crop_info("song", 0, "An Artist", **RICH, duration_s=12.7, bpm=123.6, key="Eb:major")
    sample = acestep15_sample(info, "acestep15/train/song_000.flac", {"beats_per_bar": 3})
    assert set(sample) == ACESTEP15_SAMPLE_FIELDS
    assert sample["id"] == "song_000" and sample["filename"] == "song_000.flac"
    assert sample["caption"] == RICH["music_flamingo_caption"]
    assert sample["genre"] == "house, dark, synthesizer"
    assert sample["bpm"] == 124 and isinstance(sample["bpm"], int)
    assert sample["keyscale"] == "Eb major" and sample["keyscale"] in VALID_KEYSCALES
    assert sample["timesignature"] == "3"  # the track's beat grid
    assert sample["duration"] == 12 and sample["language"] == "unknown"
    assert sample["is_instrumental"] and sample["lyrics"] == "[Instrumental]"
    assert sample["raw_lyrics"] == "" and sample["labeled"] and sample["prompt_override"] is None


def test_acestep15_sample_fallbacks():
    bare = crop_info("song", 1, "An Artist", key="F#:minor")
    sample = acestep15_sample(bare, "x/song_001.flac")
    assert sample["caption"] == "Music at 121 bpm in F# minor."  # no caption: the tag sentence
    assert sample["timesignature"] == "4"  # 8 beats over 2 downbeats
    assert not sample["is_instrumental"] and sample["lyrics"] == ""  # vocals unknown
    sung = acestep15_sample({**bare, "lyrics": " la la ", "voice_probability": 0.9}, "x/a.flac")
    assert sung["lyrics"] == sung["raw_lyrics"] == "la la" and not sung["is_instrumental"]
    free = acestep15_sample({**bare, "bpm_is_defined": False, "bpm": None}, "x/a.flac")
    assert free["bpm"] is None and free["timesignature"] == ""
    odd = acestep15_sample(
        {**bare, "key": "D:dorian", "bpm": 400.0}, "x/a.flac", {"beats_per_bar": 5}
    )
    assert odd["keyscale"] == "" and odd["bpm"] is None and odd["timesignature"] == ""


def test_acestep15_files_and_csv_parse_as_its_scan_reads_them(library, tmp_path):
    (library / "t_echo_0" / "crops" / "t_echo_0_000.INFO").write_text(
        json.dumps(crop_info("t_echo_0", 0, "Echo", **RICH, lyrics="Hello, world"))
    )
    out = tmp_path / "out" / "exports"
    export(library, out)
    folder = out / "acestep15"
    data = json.loads((folder / "dataset.json").read_text())
    assert set(data["metadata"]) == ACESTEP15_METADATA_FIELDS
    assert data["metadata"]["num_samples"] == len(data["samples"]) == 36
    for sample in data["samples"]:
        assert set(sample) == ACESTEP15_SAMPLE_FIELDS
        assert sample["timesignature"] == "4" and sample["keyscale"] == "F# minor"
    assert (folder / "t_echo_0_000.caption.txt").read_text() == RICH["music_flamingo_caption"]
    assert (folder / "t_echo_0_000.lyrics.txt").read_text() == "Hello, world"
    assert len(list(folder.glob("*.lyrics.txt"))) == 1  # only where the words are known
    rows = acestep_csv_metadata(folder)
    assert rows["t_echo_0_000.flac"] == {"bpm": 121, "key": "F# minor"}
    assert len(rows) == 36
    odd = [{"filename": "a.flac", "bpm": None, "keyscale": ""}, {**data["samples"][0]}]
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "metadata.csv").write_text(acestep15_csv(odd))
    assert acestep_csv_metadata(tmp_path / "odd") == {
        "a.flac": {},
        data["samples"][0]["filename"]: {"bpm": 121, "key": "F# minor"},
    }
