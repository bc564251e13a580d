import numpy as np
import pytest
import soundfile as sf

from conftest import TRUMPET, VIBE_ACE, write_tone
from mirflow.errors import AudioDecodeError
from mirflow.ingest import VARIOUS_ARTISTS, ingest_track, metadata_fields, probe, read_tags


def test_vibe_ace_id3_tags_read_exactly():
    tags, error = read_tags(VIBE_ACE)
    assert error == ""
    fields = metadata_fields(tags, VARIOUS_ARTISTS)
    assert fields["track_metadata_artist"] == "Kevin MacLeod"
    assert fields["track_metadata_title"] == "Vibe Ace"
    assert fields["track_metadata_album"] == "Jazz Sampler"
    assert fields["track_metadata_genre"] == "Jazz"
    assert fields["track_metadata_year"] == 2011
    assert fields["track_metadata_bpm"] == 130.0
    assert fields["track_metadata_key"] == "E"


def test_probe_reads_decoded_length_not_the_header_estimate():
    facts = probe(VIBE_ACE)
    # 2,709,504 frames decoded; libsndfile's header estimate says 63.02 s.
    assert facts["duration_s"] == pytest.approx(61.44, abs=1e-3)
    assert (facts["codec"], facts["sample_rate"], facts["channels"]) == ("mp3", 44100, 2)
    assert probe(TRUMPET)["codec"] == "vorbis"


@pytest.mark.parametrize(
    "tags, artist, album_artist",
    [
        ({"artist": "A", "album_artist": "Various Artists"}, "A", "A"),
        ({"artist": "A", "album_artist": "va"}, "A", "A"),
        ({"artist": "A", "album_artist": "Band"}, "A", "Band"),
        ({"album_artist": "Band"}, "Band", "Band"),
        ({"album_artist": "Various Artists"}, None, None),
        ({}, None, None),
    ],
)
def test_various_artists_album_artist_is_replaced_by_track_artist(tags, artist, album_artist):
    fields = metadata_fields(tags, VARIOUS_ARTISTS)
    assert fields["track_metadata_artist"] == artist
    assert fields["track_metadata_album_artist"] == album_artist


def test_configured_aliases_are_used():
    fields = metadata_fields({"artist": "A", "album_artist": "Sampler"}, ("Sampler",))
    assert fields["track_metadata_album_artist"] == "A"


def test_corrupt_and_empty_files_raise_decode_errors_naming_the_file(tmp_path):
    junk = tmp_path / "junk.flac"
    junk.write_bytes(np.random.default_rng(0).bytes(50_000))
    with pytest.raises(AudioDecodeError, match="junk.flac"):
        probe(junk)
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty"):
        probe(empty)


def test_m4a_goes_through_ffmpeg(tmp_path):
    import subprocess

    wav = write_tone(tmp_path / "t.wav", seconds=1.0, sr=44100, channels=2)
    m4a = tmp_path / "t.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), str(m4a)], check=True)
    facts = probe(m4a)
    assert facts["codec"] == "aac" and facts["channels"] == 2
    assert facts["duration_s"] == pytest.approx(1.0, abs=0.05)


def test_ingest_record(tmp_path):
    wav = write_tone(tmp_path / "x.wav", seconds=1.5, sr=8000)
    result = ingest_track(wav, "x.wav", "x", VARIOUS_ARTISTS)
    assert result.ok and result.stage == "ingest"
    fields = result.track
    assert fields["source"] == "x.wav" and fields["sample_rate"] == 8000
    assert fields["duration_s"] == pytest.approx(1.5)
    assert len(fields["sha256"]) == 64
    assert fields["peak_dbfs"] == pytest.approx(20 * np.log10(0.5), abs=0.1)
    assert sf.info(wav).frames == 12000  # the source is untouched
