"""Which model files the configured backend needs (checked when the workflow starts)."""

from mirflow.models import missing_for
from mirflow.separation import required_files

SECTION = "source_separation"


def test_demucs_needs_its_bag_and_the_official_checkpoint_names(tmp_path):
    missing = missing_for(
        SECTION, {"backend": "demucs", "demucs": {"model": "htdemucs_ft"}}, tmp_path
    )
    names = [p.name for p in missing]
    assert names[0] == "htdemucs_ft.yaml"
    assert names[1:] == ["f7e0c4bc-ba3fe64a.th", "d12395a8-e57c48e6.th",
                         "92cfc3b6-ef3bcb9c.th", "04573f0d-f3cf25b2.th"]  # fmt: skip


def test_present_files_are_not_missing(tmp_path):
    config = {"backend": "demucs", "demucs": {"model": "htdemucs"}}
    (tmp_path / "demucs").mkdir()
    (tmp_path / "demucs" / "htdemucs.yaml").write_text("models: ['955717e8']\n")
    (tmp_path / "demucs" / "955717e8-8726e21a.th").write_bytes(b"x")
    assert missing_for(SECTION, config, tmp_path) == []
    assert len(required_files(config, tmp_path)) == 2


def test_roformer_needs_checkpoint_and_yaml(tmp_path):
    config = {"backend": "bs_roformer", "bs_roformer": {"model_file": "m.ckpt"}}
    assert [p.name for p in missing_for(SECTION, config, tmp_path)] == ["m.ckpt", "m.yaml"]
