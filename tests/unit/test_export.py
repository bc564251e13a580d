import importlib.util
import json
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mirflow.export import (
    STABLE_AUDIO_METADATA_MODULE,
    acestep_lyrics,
    acestep_prompt,
    audiocraft_info,
    audiocraft_manifest_line,
    export_crops,
    export_dataset,
    passes_filters,
    scalar_table,
    stable_audio_config,
)

SR = 22050

# MusicInfo's fields (audiocraft/data/music_dataset.py) and the types its
# from_dict preprocessors accept: get_string/get_keyword -> str, get_bpm -> float,
# get_keyword_list -> list of str; None is accepted by all of them.
MUSIC_INFO_TYPES = {
    "title": str,
    "artist": str,
    "key": str,
    "bpm": float,
    "genre": str,
    "moods": list,
    "keywords": list,
    "description": str,
    "name": str,
    "instrument": str,
}
AUDIO_META_FIELDS = ["path", "duration", "sample_rate", "amplitude", "weight", "info_path"]


def crop_info(crop, **extra):
    info = {
        "track": "song",
        "crop": crop,
        "source": "song.flac",
        "audio_file": f"{crop}.flac",
        "sample_rate": SR,
        "channels": 1,
        "duration_s": 0.5,
        "bpm": 123.6,
        "key": "Eb:major",
        "lufs": -14.0,
        "track_metadata_artist": "An Artist",
        "track_metadata_title": "A Title",
        "track_metadata_album": None,
        "track_metadata_genre": "Rock",
        "track_metadata_year": 2001,
        "status": "ok",
        "error": None,
        "position_in_file": 0.25,
        "stem_files": {"drums": f"{crop}_drums.flac"},
    }
    info.update(extra)
    return info


RICH = {
    "production_quality": 7.5,
    "content_enjoyment": 6.0,
    "essentia_genre": {"Electronic---House": 0.8, "Electronic---Techno": 0.3, "Jazz": 0.01},
    "essentia_mood": {"dark": 0.6, "happy": 0.05},
    "essentia_instrument": {"synthesizer": 0.7, "drums": 0.4},
    "voice_probability": 0.1,
    "instrumental_probability": 0.9,
}


def write_crop(crops_dir, info):
    crops_dir.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(info["duration_s"] * SR)) / SR
    sf.write(crops_dir / info["audio_file"], 0.3 * np.sin(2 * np.pi * 440 * t), SR)
    info_path = crops_dir / f"{info['crop']}.INFO"
    info_path.write_text(json.dumps(info))
    return info, info_path


@pytest.fixture
def crops(tmp_path):
    d = tmp_path / "dataset" / "song" / "crops"
    return [
        write_crop(d, crop_info("song_000", **RICH, music_flamingo_caption="A dark house groove.")),
        write_crop(d, crop_info("song_001", **RICH)),  # no caption: tag prompt
        write_crop(d, crop_info("song_002")),  # bare: no optional fields at all
        write_crop(d, crop_info("song_003", production_quality=3.0)),
        write_crop(d, crop_info("song_004", silence_fraction=0.9)),
        write_crop(d, crop_info("song_005", lufs=None)),  # silent
        write_crop(d, crop_info("song_006", status="failed", error="boom")),
    ]


FILTERS = {"min_production_quality": 5.0, "max_silence": 0.5, "min_lufs": -40.0}


def test_audiocraft_info_has_every_music_info_field_typed():
    for info in (crop_info("c", **RICH, music_flamingo_caption="Cap."), crop_info("c")):
        out = audiocraft_info(info)
        for field, typ in MUSIC_INFO_TYPES.items():
            assert isinstance(out[field], typ), (field, out[field])
        assert all(isinstance(v, str) for v in out["moods"] + out["keywords"])
        assert isinstance(out["sample_rate"], int) and out["sample_rate"] == SR
        assert isinstance(out["duration"], float) and out["duration"] == 0.5
        assert out["file_extension"] == "flac"
        assert out["name"] == "c"
        assert out["key"] == "Eb major"
        assert out["bpm"] == pytest.approx(123.6)
    rich = audiocraft_info(crop_info("c", **RICH, music_flamingo_caption="Cap."))
    assert rich["description"] == "Cap."
    assert rich["genre"] == "house, techno"
    assert rich["moods"] == ["dark"]
    assert rich["instrument"] == "synthesizer, drums"
    assert "instrumental" in rich["keywords"]
    bare = audiocraft_info(crop_info("c"))
    assert bare["genre"] == "rock"  # the tag, without Essentia
    assert bare["moods"] == [] and bare["instrument"] == ""
    assert bare["description"] == "Rock music at 124 bpm in Eb major."


def test_audiocraft_info_without_key_or_bpm():
    out = audiocraft_info(crop_info("c", key=None, bpm=None, track_metadata_title=None))
    assert out["bpm"] is None and out["key"] == "" and out["title"] == ""


def test_manifest_line_is_audio_meta():
    line = audiocraft_manifest_line("audiocraft/a.flac", crop_info("a"))
    assert list(line) == AUDIO_META_FIELDS
    assert line["path"] == "audiocraft/a.flac"  # as given: the exports write it relative
    assert isinstance(line["duration"], float) and isinstance(line["sample_rate"], int)
    assert line["info_path"] is None
    assert audiocraft_manifest_line("a.flac", crop_info("a"), "x.zip:a.json")["info_path"] == (
        "x.zip:a.json"
    )
    with pytest.raises(ValueError):
        audiocraft_manifest_line("a.flac", crop_info("a"), "/plain/a.json")


def test_acestep_prompt_and_lyrics():
    assert acestep_prompt(crop_info("c", **RICH)) == (
        "house, techno, dark, synthesizer, drums, 124 bpm, Eb major"
    )
    assert acestep_prompt(crop_info("c", bpm=None, key=None)) == "rock"
    assert acestep_lyrics(crop_info("c", voice_probability=0.2)) == "[instrumental]"
    assert acestep_lyrics(crop_info("c", instrumental_probability=0.8)) == "[instrumental]"
    assert acestep_lyrics(crop_info("c", voice_probability=0.9)) == ""
    assert acestep_lyrics(crop_info("c")) == ""  # unknown: not claimed instrumental
    assert acestep_lyrics(crop_info("c", voice_probability=0.9, lyrics=" la la ")) == "la la"


def test_passes_filters_reasons():
    assert passes_filters(crop_info("c", **RICH), FILTERS) == (True, "")
    assert passes_filters(crop_info("c"), FILTERS) == (True, "")  # absent fields: no filter
    ok, reason = passes_filters(crop_info("c", production_quality=3.0), FILTERS)
    assert not ok and reason.startswith("min_production_quality") and "3.0" in reason
    ok, reason = passes_filters(crop_info("c", silence_fraction=0.9), FILTERS)
    assert not ok and reason.startswith("max_silence") and "0.9" in reason
    ok, reason = passes_filters(crop_info("c", lufs=-50.0), FILTERS)
    assert not ok and reason.startswith("min_lufs") and "-50.0" in reason
    assert not passes_filters(crop_info("c", lufs=None), FILTERS)[0]
    no_lufs = {k: v for k, v in crop_info("c").items() if k != "lufs"}
    assert passes_filters(no_lufs, FILTERS)[0]
    assert passes_filters(crop_info("c", production_quality=3.0), {})[0]


def test_scalar_table_drops_non_scalars_and_mixed_types():
    df = scalar_table([crop_info("a", **RICH), crop_info("b", track_metadata_year="2001?")])
    assert len(df) == 2
    assert "stem_files" not in df.columns and "essentia_genre" not in df.columns
    assert df.loc[0, "production_quality"] == 7.5 and pd.isna(df.loc[1, "production_quality"])
    assert list(df["track_metadata_year"]) == ["2001", "2001?"]


def load_module(path):
    # as stable_audio_tools/data/dataset.py create_dataloader_from_config does
    spec = importlib.util.spec_from_file_location("metadata_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_crops_all_formats(crops, tmp_path):
    out = tmp_path / "exports"
    formats = ["audiocraft", "stable_audio", "acestep", "acestep15", "parquet"]
    counts = export_crops(crops, out, formats, FILTERS)
    assert counts == {
        "kept": 3,
        "dropped": 4,
        "dropped_by": {"min_production_quality": 1, "max_silence": 1, "min_lufs": 1, "status": 1},
        "duplicates_left_out": 0,
        "splits": {"train": 3},  # no split configured: everything in train
    }
    kept = ["song_000", "song_001", "song_002"]

    # AudioCraft: audio + <name>.json beside it, data.jsonl of AudioMeta, no
    # split sub-folders; paths relative to the export folder
    ac = out / "audiocraft"
    lines = [json.loads(x) for x in (ac / "data.jsonl").read_text().splitlines()]
    assert [x["path"] for x in lines] == [f"audiocraft/{c}.flac" for c in kept]
    for line in lines:
        assert list(line) == AUDIO_META_FIELDS
        assert (out / line["path"]).exists() and line["sample_rate"] == SR
        meta = json.loads((out / line["path"]).with_suffix(".json").read_text())
        for field, typ in MUSIC_INFO_TYPES.items():
            assert field in meta and (meta[field] is None or isinstance(meta[field], typ))
    assert sorted(p.name for p in ac.glob("*.flac")) == [f"{c}.flac" for c in kept]
    src = crops[0][1].parent / "song_000.flac"
    assert os.path.samefile(src, ac / "song_000.flac")  # hard link

    # stable-audio-tools: config + module, loaded as the library loads it
    sa = out / "stable_audio"
    config = json.loads((sa / "dataset.json").read_text())
    assert config == stable_audio_config("stable_audio", "stable_audio/custom_metadata.py")
    assert config["dataset_type"] == "audio_dir"
    module = load_module(out / config["datasets"][0]["custom_metadata_module"])
    audio = np.zeros((1, 10), dtype=np.float32)
    caption = module.get_custom_metadata({"path": str(sa / "song_000.flac")}, audio)
    assert caption == {"prompt": "A dark house groove."}
    tags = module.get_custom_metadata({"path": str(sa / "song_001.flac"), "relpath": "x"}, audio)
    assert tags == {"prompt": "house, techno, dark, 124 bpm, Eb major"}
    bare = module.get_custom_metadata({"path": str(sa / "song_002.flac")}, audio)
    assert bare == {"prompt": "rock, 124 bpm, Eb major"}
    assert "mirflow" not in STABLE_AUDIO_METADATA_MODULE.split('"""', 2)[2]  # standalone
    assert (sa / "song_000.INFO").exists() and not (sa / "song_003.flac").exists()

    # ACE-Step
    ace = out / "acestep"
    assert (ace / "song_000.flac").exists()
    assert (ace / "song_000_prompt.txt").read_text() == (
        "house, techno, dark, synthesizer, drums, 124 bpm, Eb major"
    )
    assert (ace / "song_000_lyrics.txt").read_text() == "[instrumental]"
    assert (ace / "song_002_prompt.txt").read_text() == "rock, 124 bpm, Eb major"
    assert (ace / "song_002_lyrics.txt").read_text() == ""
    assert not list(ace.glob("song_003*"))

    # Parquet: one row per kept crop, scalar columns only
    df = pd.read_parquet(out / "crops.parquet")
    assert list(df["crop"]) == kept and set(df["split"]) == {"train"}
    assert {"bpm", "lufs", "production_quality", "music_flamingo_caption"} <= set(df.columns)
    assert "stem_files" not in df.columns and "essentia_mood" not in df.columns

    # no temporaries left behind
    assert not [p for p in out.rglob(".mirflow-tmp-*")]


def test_export_replaces_stale_files_and_rejects_unknown_format(crops, tmp_path):
    out = tmp_path / "exports"
    export_crops(crops, out, ["acestep"], {})
    assert (out / "acestep" / "song_003_prompt.txt").exists()  # no filters: kept
    counts = export_crops(crops, out, ["acestep"], FILTERS)
    assert counts["kept"] == 3
    assert not (out / "acestep" / "song_003_prompt.txt").exists()
    assert not (out / "audiocraft").exists() and not (out / "crops.parquet").exists()
    with pytest.raises(ValueError):
        export_crops(crops, out, ["wav2vec"], {})


def test_export_dataset_reads_crops_of_track_folders(crops, tmp_path):
    track_dir = tmp_path / "dataset" / "song"
    for folders in ([track_dir], [tmp_path / "dataset"]):
        out = tmp_path / "exports"
        counts = export_dataset(folders, out, ["parquet"], FILTERS)
        assert counts["kept"] == 3 and counts["dropped"] == 4
        assert list(pd.read_parquet(out / "crops.parquet")["crop"]) == [
            "song_000",
            "song_001",
            "song_002",
        ]
