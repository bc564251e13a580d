import numpy as np
import pytest
import soundfile as sf
import yaml

from conftest import REPO, TRUMPET, VIBE_ACE, write_tone
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


def _mp3(seconds=2.0, sr=44100):
    import lameenc

    t = np.arange(int(seconds * sr)) / sr
    pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(128)
    encoder.set_in_sample_rate(sr)
    encoder.set_channels(1)
    return bytes(encoder.encode(pcm.tobytes()) + encoder.flush())


def _frame_starts(data: bytes) -> list[int]:
    from mirflow.ingest import mpeg_frame

    starts, pos = [], 0
    while pos < len(data) and (frame := mpeg_frame(data[pos : pos + 4])):
        starts.append(pos)
        pos += frame[1]
    assert pos == len(data)  # lameenc writes frames and nothing else
    return starts


def test_truncated_flac_fails_with_its_header_length_and_a_remedy(tmp_path):
    full = write_tone(tmp_path / "full.flac", seconds=2.0, sr=44100, channels=2)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(AudioDecodeError, match=r"cut.flac: truncated: its FLAC header says 2.00 s"):
        probe(cut)
    with pytest.raises(AudioDecodeError, match="replace it with a complete copy"):
        probe(cut)
    assert probe(full)["duration_s"] == 2.0


def test_mp3_cut_inside_a_frame_is_truncated_at_a_boundary_or_with_tags_it_is_not(tmp_path):
    from mirflow.ingest import mp3_cut_short

    data = _mp3()
    starts = _frame_starts(data)
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: starts[40] + 100])
    assert (
        mp3_cut_short(cut) == f"its last MPEG frame has 100 of its {starts[41] - starts[40]} bytes"
    )
    with pytest.raises(AudioDecodeError, match="truncated"):
        probe(cut)
    # Cut on a frame boundary: nothing in an MP3 without a Xing header tells.
    boundary = tmp_path / "boundary.mp3"
    boundary.write_bytes(data[: starts[40]])
    assert mp3_cut_short(boundary) == ""
    # Whole files with an ID3v2 tag in front and an ID3v1 tag or junk behind.
    whole = tmp_path / "whole.mp3"
    id3v2 = b"ID3\x03\x00\x00\x00\x00\x00\x0a" + bytes(10)
    for tail in (b"", b"TAG" + bytes(125), b"\x00" * 300, b"\xff\x00junk"):
        whole.write_bytes(id3v2 + data + tail)
        assert mp3_cut_short(whole) == "", tail
    assert mp3_cut_short(VIBE_ACE) == ""


def test_header_only_and_undecodable_files_say_what_to_do(tmp_path):
    text = tmp_path / "notes.mp3"
    text.write_text("not audio\n" * 100)
    with pytest.raises(AudioDecodeError) as excinfo:
        probe(text)
    message = str(excinfo.value)
    assert message.startswith(f"{text}: not decodable audio (libsndfile: ")
    assert "remove it from the library" in message
    assert "does not exist" not in message  # libsndfile's misleading wording for unknown bytes


def test_too_long_track_fails_at_ingest_with_a_way_out(tmp_path):
    from mirflow.errors import TrackError
    from mirflow.ingest import MAX_DURATION_S

    wav = write_tone(tmp_path / "long.wav", seconds=3.0, sr=8000)
    with pytest.raises(TrackError, match=r"over the [0-9.]+-minute limit .* split it into parts"):
        ingest_track(wav, "long.wav", "long", VARIOUS_ARTISTS, max_duration_s=2.0)
    assert ingest_track(wav, "long.wav", "long", VARIOUS_ARTISTS).ok
    # The package default is the config default.
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    rhythm = schema["properties"]["rhythm"]["properties"]
    assert MAX_DURATION_S == rhythm["max_track_minutes"]["default"] * 60
