"""EssentiaClassifiers on tiny frozen graphs with the real models' node names and metadata.

The tiny models (``model_fixtures.essentia_tiny``) are hand-encoded TensorFlow GraphDefs that
Essentia loads and runs through the same algorithms, parameters and node names as the real
Discogs-EffNet and its heads, so every test here goes through the production code path. Their
weights are random: only shapes, ranges, label handling, averaging and errors are checked.
No tensorflow package and no download is involved.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from model_fixtures.essentia_tiny import (
    EMBEDDING_DIM,
    TINY_CLASSES,
    head_weights,
    write_tiny_essentia_models,
)

from conftest import TRUMPET, write_tone
from mirflow import classifiers as cl
from mirflow.classifiers import (
    HEADS,
    MIN_SAMPLES,
    SAMPLE_RATE,
    EssentiaClassifiers,
    model_names,
    output_fields,
    parse_options,
    required_files,
    top_k_labels,
)
from mirflow.errors import ModelNotFoundError, TrackError

CROP = int(11.9 * SAMPLE_RATE)
ALL_FIELDS = [
    "essentia_genre",
    "essentia_mood",
    "essentia_instrument",
    "voice_probability",
    "instrumental_probability",
    "danceability",
    "tonal_probability",
]
LABEL_FIELDS = {
    "essentia_genre": "genre",
    "essentia_mood": "mood",
    "essentia_instrument": "instrument",
}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return write_tiny_essentia_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def classifiers(models_dir):
    return EssentiaClassifiers.load(
        models_dir, {"heads": list(HEADS), "top_k": 3, "threshold": 0.2}
    )


def noise(seconds: float = 11.9, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.1, int(seconds * SAMPLE_RATE)).astype(np.float32)


def tone(seconds: float = 11.9, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def private_copy(models_dir, tmp_path):
    shutil.copytree(models_dir / "essentia", tmp_path / "essentia")
    return tmp_path


# -- the fixture models ------------------------------------------------------------------------


def test_fixture_writes_every_required_file_small(tmp_path):
    write_tiny_essentia_models(tmp_path)
    bs1, onnx = {"embedding_model": "discogs-effnet-bs1-1"}, {"backend": "onnx"}
    for rel in required_files() + required_files(bs1) + required_files(onnx):
        path = tmp_path / rel
        assert path.is_file(), rel
        assert path.stat().st_size < 40_000, rel
    meta = json.loads((tmp_path / "essentia/genre_discogs400-discogs-effnet-1.json").read_text())
    assert meta["schema"]["inputs"][0]["name"] == "serving_default_model_Placeholder"
    assert meta["schema"]["outputs"][0]["name"] == "PartitionedCall:0"


# -- options and files -------------------------------------------------------------------------


def test_required_files_default_is_embedding_then_every_head_but_tonal():
    files = required_files()
    assert files[:2] == ["essentia/discogs-effnet-bs64-1.pb", "essentia/discogs-effnet-bs64-1.json"]
    # tonal is opt-in: its model has no published checksum to fetch it with.
    assert len(files) == 2 + 2 * (len(HEADS) - 1)
    assert not any("tonal" in f for f in files)
    assert "essentia/genre_discogs400-discogs-effnet-1.pb" in files
    assert "essentia/voice_instrumental-discogs-effnet-1.json" in files
    assert all(f.startswith("essentia/") and f.endswith((".pb", ".json")) for f in files)


def test_required_files_follow_the_options():
    files = required_files({"heads": ["tonal"], "embedding_model": "discogs-effnet-bs1-1"})
    assert files == [
        "essentia/discogs-effnet-bs1-1.pb",
        "essentia/discogs-effnet-bs1-1.json",
        "essentia/tonal_atonal-discogs-effnet-1.pb",
        "essentia/tonal_atonal-discogs-effnet-1.json",
    ]


def test_model_names_match_the_files():
    options = {"backend": "onnx", "heads": ["mood", "tonal"]}
    assert model_names(options) == [
        "essentia:discogs-effnet-bsdynamic-1",
        "essentia:mtg_jamendo_moodtheme-discogs-effnet-1",
        "essentia:tonal_atonal-discogs-effnet-1",
    ]
    stems = [f.split("/")[1].rsplit(".", 1)[0] for f in required_files(options)]
    assert [f"essentia:{s}" for s in stems[::2]] == model_names(options)


def test_required_files_of_the_onnx_backend():
    files = required_files({"backend": "onnx", "heads": ["genre"]})
    assert files == [
        "essentia/discogs-effnet-bsdynamic-1.onnx",
        "essentia/discogs-effnet-bsdynamic-1.json",
        "essentia/genre_discogs400-discogs-effnet-1.pb",  # heads stay TensorFlow
        "essentia/genre_discogs400-discogs-effnet-1.json",
    ]


def test_output_fields():
    assert output_fields({"heads": list(HEADS)}) == ALL_FIELDS
    assert "tonal_probability" not in output_fields()  # opt-in
    # the table's order, whatever order the option lists the heads in
    assert output_fields({"heads": ["voice", "genre"]}) == [
        "essentia_genre",
        "voice_probability",
        "instrumental_probability",
    ]


def test_defaults():
    opts = parse_options({"enabled": True, "top_k": None})  # keys not read and None: ignored
    assert opts.top_k == 5 and opts.threshold == 0.1 and opts.backend == "tensorflow"
    assert opts.heads == tuple(h for h in HEADS if h != "tonal")
    assert opts.embedding_model == "discogs-effnet-bs64-1"
    assert parse_options({"backend": "onnx"}).embedding_model == "discogs-effnet-bsdynamic-1"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"heads": ["genre", "key"]}, "heads"),
        ({"heads": "genre"}, "heads"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "0.1"}, "threshold"),
        ({"backend": "torch"}, "backend"),
        ({"embedding_model": "msd-musicnn-1"}, "embedding_model"),
        ({"backend": "onnx", "embedding_model": "discogs-effnet-bs64-1"}, "embedding_model"),
        ({"embedding_model": "discogs-effnet-bsdynamic-1"}, "embedding_model"),
    ],
)
def test_bad_options_name_the_key(options, key):
    with pytest.raises(ValueError, match=key):
        parse_options(options)


# -- top-k and threshold (pure) ----------------------------------------------------------------


def test_top_k_labels_orders_cuts_and_thresholds():
    labels = ["a", "b", "c", "d", "e"]
    probs = [0.10, 0.70, 0.05, 0.40, 0.30]
    assert top_k_labels(probs, labels, 3, 0.0) == {"b": 0.70, "d": 0.40, "e": 0.30}
    assert list(top_k_labels(probs, labels, 3, 0.0)) == ["b", "d", "e"]  # most probable first
    assert top_k_labels(probs, labels, 5, 0.35) == {"b": 0.70, "d": 0.40}
    assert top_k_labels(probs, labels, 5, 0.40) == {"b": 0.70, "d": 0.40}  # >= threshold
    assert top_k_labels(probs, labels, 1, 0.9) == {}
    assert top_k_labels(probs, labels, 10, 0.0) == dict(zip(labels, probs, strict=True)) | {}


def test_top_k_labels_ties_keep_label_order_and_values_are_floats():
    result = top_k_labels(np.array([0.5, 0.5, 0.5], np.float32), ["x", "y", "z"], 2, 0.1)
    assert list(result) == ["x", "y"]
    assert all(type(v) is float for v in result.values())


def test_top_k_labels_needs_one_probability_per_label():
    with pytest.raises(ValueError, match="3 probabilities for 2 labels"):
        top_k_labels([0.1, 0.2, 0.3], ["a", "b"], 1, 0.0)


# -- classification ----------------------------------------------------------------------------


def test_classify_keys_types_and_ranges(classifiers):
    result = classifiers.classify(noise())
    assert list(result) == ALL_FIELDS
    for field, head in LABEL_FIELDS.items():
        labels = result[field]
        assert isinstance(labels, dict) and 1 <= len(labels) <= 3
        assert set(labels) <= set(TINY_CLASSES[HEADS[head].model])
        values = list(labels.values())
        assert all(type(v) is float and 0.2 <= v <= 1 for v in values)
        assert values == sorted(values, reverse=True)
    for field in ALL_FIELDS[3:]:
        assert type(result[field]) is float and 0 <= result[field] <= 1
    # one softmax over (instrumental, voice)
    assert result["voice_probability"] + result["instrumental_probability"] == pytest.approx(1)
    json.dumps(result)  # ready for .INFO


def test_genre_labels_are_kept_as_published(classifiers):
    everything = EssentiaClassifiers.load(
        classifiers.models_dir, {"heads": ["genre"], "threshold": 0, "top_k": 10}
    )
    labels = everything.classify(noise())["essentia_genre"]
    assert set(labels) == set(TINY_CLASSES["genre_discogs400-discogs-effnet-1"])
    assert "Electronic---House" in labels and "Rock---Indie Rock" in labels


def test_two_inputs_give_different_outputs(classifiers):
    a, b = classifiers.classify(noise()), classifiers.classify(tone())
    assert a["danceability"] != pytest.approx(b["danceability"], abs=1e-4)
    assert a["tonal_probability"] != pytest.approx(b["tonal_probability"], abs=1e-4)
    assert classifiers.classify(noise()) == a  # and the same input gives the same output


def test_predictions_are_the_mean_over_patches(classifiers):
    """The scalar equals the per-patch softmax of the head's dense layer, averaged: computed
    here in numpy from the fixture's weights and the embeddings Essentia produced."""
    audio = tone(seconds=6.0, freq=330.0)
    embeddings = classifiers.embeddings(audio)
    assert embeddings.shape == (4, EMBEDDING_DIM)  # 6 s: 1 + floor((376 - 128) / 62) patches
    assert np.ptp(embeddings, axis=0).max() > 0  # the patches differ, so the mean matters
    model = "voice_instrumental-discogs-effnet-1"
    weights, bias = head_weights(model)
    logits = embeddings.astype(np.float64) @ weights + bias
    per_patch = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = per_patch.mean(axis=0)
    voice = TINY_CLASSES[model].index("voice")
    result = classifiers.classify(audio)
    assert result["voice_probability"] == pytest.approx(expected[voice], abs=1e-5)
    assert result["instrumental_probability"] == pytest.approx(expected[1 - voice], abs=1e-5)


def test_labels_and_class_indices_come_from_the_json(models_dir, tmp_path):
    root = private_copy(models_dir, tmp_path)
    options = {"heads": ["mood", "voice"], "top_k": 5, "threshold": 0}
    before = EssentiaClassifiers.load(root, options).classify(noise())
    for model in ("mtg_jamendo_moodtheme-discogs-effnet-1", "voice_instrumental-discogs-effnet-1"):
        path = root / f"essentia/{model}.json"
        meta = json.loads(path.read_text())
        meta["classes"] = [f"renamed-{c}" for c in meta["classes"]][::-1]
        if model.startswith("voice"):
            meta["classes"] = ["voice", "instrumental"]  # the graph's outputs are not swapped
        path.write_text(json.dumps(meta))
    after = EssentiaClassifiers.load(root, options).classify(noise())
    moods = TINY_CLASSES["mtg_jamendo_moodtheme-discogs-effnet-1"]
    renamed = [f"renamed-{c}" for c in moods][::-1]
    for i, label in enumerate(moods):
        assert after["essentia_mood"][renamed[i]] == before["essentia_mood"][label]
    # the probability of output 0 is now read as "voice"
    assert after["voice_probability"] == before["instrumental_probability"]


def test_heads_subset_and_bs1_embedding_model(models_dir, classifiers):
    options = {"heads": ["danceability"], "embedding_model": "discogs-effnet-bs1-1"}
    bs1 = EssentiaClassifiers.load(models_dir, options)
    result = bs1.classify(noise())
    assert list(result) == ["danceability"]
    # same weights, batches of 1 instead of 64: the same numbers
    assert result["danceability"] == pytest.approx(classifiers.classify(noise())["danceability"])


def test_onnx_backend_gives_the_tensorflow_numbers(models_dir, classifiers):
    """onnxruntime on mel patches cut in Python == Essentia's own patching + TensorFlow."""
    onnx = EssentiaClassifiers.load(
        models_dir, {"heads": list(HEADS), "backend": "onnx", "top_k": 3, "threshold": 0.2}
    )
    for audio in (noise(), tone(seconds=2.5), noise(seconds=70.0, seed=3)):  # 1 to 68 patches
        expected = classifiers.embeddings(audio)
        got = onnx.embeddings(audio)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    a, b = onnx.classify(noise()), classifiers.classify(noise())
    assert list(a) == list(b)
    for field in ALL_FIELDS:
        if isinstance(b[field], dict):
            assert list(a[field]) == list(b[field])
            assert list(a[field].values()) == pytest.approx(list(b[field].values()), abs=1e-5)
        else:
            assert a[field] == pytest.approx(b[field], abs=1e-5)
    with pytest.raises(TrackError, match="at least"):
        onnx.classify(np.zeros(MIN_SAMPLES - 1, np.float32))
    assert onnx.classify(np.zeros(MIN_SAMPLES, np.float32))


def test_too_short_and_non_finite_audio_are_track_errors(classifiers):
    assert classifiers.classify(np.full(MIN_SAMPLES, 0.1, np.float32))  # exactly one patch
    with pytest.raises(TrackError, match=r"at least 2\.03 s"):
        classifiers.classify(np.full(MIN_SAMPLES - 1, 0.1, np.float32))
    with pytest.raises(TrackError, match="at least"):
        classifiers.classify(np.zeros(0, np.float32))
    bad = noise(3.0)
    bad[100] = np.nan
    with pytest.raises(TrackError, match="NaN"):
        classifiers.classify(bad)
    with pytest.raises(ValueError, match="mono"):
        classifiers.classify(np.zeros((2, CROP), np.float32))


def test_classify_file_decodes_and_resamples(classifiers):
    result = classifiers.classify_file(TRUMPET)  # 44.1 kHz stereo Ogg Vorbis
    assert list(result) == ALL_FIELDS


def test_corrupt_audio_is_a_track_error_naming_the_file(classifiers, tmp_path):
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + bytes(range(256)) * 8)
    with pytest.raises(TrackError, match="corrupt.flac"):
        classifiers.classify_file(corrupt)
    short = write_tone(tmp_path / "short.wav", seconds=1.0)
    with pytest.raises(TrackError, match=r"short\.wav.*at least"):
        classifiers.classify_file(short)


# -- loading -----------------------------------------------------------------------------------


def test_load_count_increments_once_per_load(models_dir):
    before = EssentiaClassifiers.load_count
    loaded = EssentiaClassifiers.load(models_dir, {"heads": ["genre", "mood"]})
    assert EssentiaClassifiers.load_count == before + 1
    loaded.classify(noise())
    loaded.classify(tone())
    assert EssentiaClassifiers.load_count == before + 1  # classifying loads nothing


def test_missing_files_are_named_with_make_models(models_dir, tmp_path):
    root = private_copy(models_dir, tmp_path)
    (root / "essentia/discogs-effnet-bs64-1.pb").unlink()
    (root / "essentia/mtg_jamendo_moodtheme-discogs-effnet-1.json").unlink()
    before = EssentiaClassifiers.load_count
    with pytest.raises(ModelNotFoundError) as info:
        EssentiaClassifiers.load(root, {})
    message = str(info.value)
    assert "discogs-effnet-bs64-1.pb" in message
    assert "mtg_jamendo_moodtheme-discogs-effnet-1.json" in message
    assert "genre_discogs400" not in message  # present files are not listed
    assert "make models" in message
    assert EssentiaClassifiers.load_count == before
    # a head that is not enabled is not needed
    EssentiaClassifiers.load(root, {"heads": ["genre"], "embedding_model": "discogs-effnet-bs1-1"})


def test_no_models_folder_at_all(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"(?s)essentia/discogs-effnet-bs64-1\.pb.*make"):
        EssentiaClassifiers.load(tmp_path / "nowhere", {})


def test_damaged_files_say_to_download_again(models_dir, tmp_path):
    root = private_copy(models_dir, tmp_path)
    (root / "essentia/danceability-discogs-effnet-1.pb").write_bytes(b"not a graph" * 10)
    with pytest.raises(ModelNotFoundError, match=r"danceability-discogs-effnet-1\.pb.*make models"):
        EssentiaClassifiers.load(root, {"heads": ["danceability"]})
    (root / "essentia/tonal_atonal-discogs-effnet-1.json").write_text("{not json")
    with pytest.raises(ModelNotFoundError, match=r"tonal_atonal-discogs-effnet-1\.json"):
        EssentiaClassifiers.load(root, {"heads": ["tonal"]})
    (root / "essentia/discogs-effnet-bsdynamic-1.onnx").write_bytes(b"not onnx" * 10)
    with pytest.raises(ModelNotFoundError, match=r"bsdynamic-1\.onnx.*make models"):
        EssentiaClassifiers.load(root, {"heads": ["genre"], "backend": "onnx"})


def test_metadata_that_does_not_fit_its_graph_is_refused(models_dir, tmp_path):
    root = private_copy(models_dir, tmp_path)
    path = root / "essentia/voice_instrumental-discogs-effnet-1.json"
    meta = json.loads(path.read_text())
    meta["classes"] = ["instrumental", "voice", "choir"]  # the graph has 2 outputs
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelNotFoundError, match="do not belong together"):
        EssentiaClassifiers.load(root, {"heads": ["voice"]})
    meta["classes"] = ["instrumental", "singing"]  # "voice" is what mirflow reports
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelNotFoundError, match="'voice'"):
        EssentiaClassifiers.load(root, {"heads": ["voice"]})


def test_importing_the_module_does_not_import_essentia():
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (
        "import sys, mirflow.classifiers as c; c.required_files(); print('essentia' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert cl.MIN_SECONDS == pytest.approx(2.032, abs=1e-3)


def test_a_long_file_is_classified_in_chunks_as_a_whole(classifiers, monkeypatch, tmp_path):
    """Chunks of 12 patch hops (~12 s) over 60 s of real audio give the one-shot
    result but for the patches that would straddle a chunk boundary."""
    from mirflow.audio import load_audio, write_audio

    audio, _ = load_audio(TRUMPET, sr=SAMPLE_RATE, mono=True)
    audio = np.tile(audio, (1, int(np.ceil(60 * SAMPLE_RATE / audio.shape[1]))))
    path = tmp_path / "long.wav"
    write_audio(path, audio[:, : 60 * SAMPLE_RATE], SAMPLE_RATE, "FLOAT")
    whole = classifiers.classify(load_audio(path)[0][0])
    monkeypatch.setattr(cl, "FILE_CHUNK", 12 * 62 * 256)
    chunked = classifiers.classify_file(path)
    assert list(chunked) == list(whole)
    for field, value in whole.items():
        if isinstance(value, dict):  # labels: the same ranking, near-equal probabilities
            assert list(chunked[field])[:1] == list(value)[:1], field
            for label in set(value) & set(chunked[field]):
                assert chunked[field][label] == pytest.approx(value[label], abs=0.005), field
        else:
            assert chunked[field] == pytest.approx(value, abs=0.005), field
