"""Resident model passes: one job loads a model once and runs it over the crops
(and whole tracks) of a batch of tracks, writing one record per track.

The passes (aesthetics, classifiers, transcription, captions) share this
driver; each is described once in :data:`PASSES` (:class:`ModelPass`): the
factory that loads its model into a :class:`PassRunner`, the model files it
needs, and the class that counts its loads. The factory and is called only when the first track that
needs it comes up, so a batch whose tracks all failed upstream loads nothing.

A batch job writes a temporary folder::

    <batch>/<track>/record.json   the track's StageResult (data.batch names the batch)
    <batch>/<track>/files/        files the pass writes for the track (MIDI), if any

and the pass's per-track rule copies each track's part into ``tracks/<track>/``
(``<pass>.json``, and ``midi/`` for transcription), so that a finished track
never depends on its batch again: a growing library adds batches of new
tracks and never reruns old ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mirflow.errors import TrackError
from mirflow.progress import Progress
from mirflow.provenance import provenance
from mirflow.records import StageResult, read_result, run_stage, write_result

log = logging.getLogger(__name__)

RECORD = "record.json"
FILES = "files"


@dataclass
class PassRunner:
    """What a pass does with its loaded model.

    ``crop(crop_dir, crop_fields, files_dir)`` returns the crop's new ``.INFO``
    fields. ``crop_fields`` are its fields from crops.json over what earlier
    records say of the track and the crop (tags, Essentia labels: see
    ``PassMember.context``); files such as MIDI go into ``files_dir``.
    ``track(source_path, track_fields)`` returns track fields; None when the
    pass has none. ``model_fields`` (the model's name) go into every track
    record, ``provenance`` (mirflow.provenance) is the record's provenance.
    ``wants_crop(track, crop)`` picks the crops to run on (captions: a subset).
    """

    crop: Callable[[Path, dict[str, Any], Path], dict[str, Any]]
    track: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
    model_fields: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    wants_crop: Callable[[str, str], bool] = lambda track, crop: True


@dataclass(frozen=True)
class PassMember:
    track: str
    source: str  # the track's file in the library
    crops_dir: str | None  # tracks/<track>/crops, None when crops are off
    crops_record: str  # crops.json, or source.json when crops are off
    context: tuple[str, ...] = ()  # earlier records the pass reads (source.json, ...)


def run_pass_batch(
    stage: str,
    make_runner: Callable[[], PassRunner],
    members: list[PassMember],
    out_dir: str | os.PathLike,
    batch: str,
) -> dict[str, StageResult]:
    """Run one pass over every member track; write ``out_dir/<track>/record.json``.

    Progress (crops done of all the batch's crops, rate, time left) goes to
    the job's log and the console every few seconds (mirflow.progress)."""
    out_dir = Path(out_dir)
    runner: PassRunner | None = None
    results = {}
    upstreams = {member.track: read_result(member.crops_record) for member in members}
    with_crops = any(member.crops_dir is not None for member in members)
    sizes = {m.track: len(upstreams[m.track].crops) if with_crops else 1 for m in members}
    unit = "crops" if with_crops else "tracks"
    with Progress(sum(sizes.values()), f"{stage} {batch}", unit=unit) as bar:
        for member in members:
            folder = out_dir / member.track
            files_dir = folder / FILES
            files_dir.mkdir(parents=True, exist_ok=True)
            upstream = upstreams[member.track]
            done = bar.n + sizes[member.track]

            def compute(member=member, upstream=upstream, files_dir=files_dir) -> StageResult:
                nonlocal runner
                if runner is None:
                    runner = make_runner()
                tick = bar.update if with_crops else lambda: None
                return _run_track(stage, runner, member, upstream, files_dir, tick)

            result = run_stage(stage, [upstream], compute)
            result.data["batch"] = batch
            write_result(folder / RECORD, result)
            log.info(
                "%s: %s, %d crops %s", member.track, result.status, len(result.crops), result.error
            )
            results[member.track] = result
            bar.update(done - bar.n)  # skipped crops and failed tracks count as done
    return results


def _run_track(
    stage: str,
    runner: PassRunner,
    member: PassMember,
    upstream: StageResult,
    files_dir: Path,
    tick: Callable[[], Any] = lambda: None,
) -> StageResult:
    """The pass over one track; ``tick()`` after each of its crops."""
    context = [read_result(path) for path in member.context]
    known = {k: v for record in context for k, v in record.track.items()}
    track_fields = dict(runner.model_fields)
    if runner.track is not None:
        track_fields.update(runner.track(member.source, known))
    crops: dict[str, dict[str, Any]] = {}
    if member.crops_dir is not None:
        for name, crop_fields in upstream.crops.items():
            if crop_fields.get("status", "ok") != "ok" or not runner.wants_crop(member.track, name):
                tick()
                continue
            fields = dict(known)
            for record in context:
                fields.update(record.crops.get(name, {}))
            fields.update(crop_fields)
            try:
                crops[name] = runner.crop(Path(member.crops_dir), fields, files_dir)
            except TrackError as exc:
                # One unreadable crop fails that crop, not the track.
                crops[name] = {"status": "failed", "error": f"{stage}: {exc}"}
            tick()
    return StageResult(stage, track=track_fields, crops=crops, provenance=runner.provenance)


# ------------------------------------------------------------------ runners ---


def aesthetics_runner(options: dict[str, Any], models_dir: str) -> PassRunner:
    from mirflow.aesthetics import AestheticsModel  # noqa: PLC0415

    checkpoint = Path(models_dir) / options["checkpoint"]
    model = AestheticsModel.load(
        checkpoint, options["device"], options["window_batch_size"], threads=options["threads"]
    )
    return PassRunner(
        crop=lambda crop_dir, crop, files_dir: model.score_file(crop_dir / crop["audio_file"]),
        track=(lambda source, known: model.score_file(source)) if options["track"] else None,
        model_fields={"aesthetics_model": options["checkpoint"]},
        provenance=provenance(("audiobox-aesthetics", "torch"), [checkpoint]),
    )


def classifiers_runner(options: dict[str, Any], models_dir: str) -> PassRunner:
    from mirflow.classifiers import (  # noqa: PLC0415
        EssentiaClassifiers,
        parse_options,
        required_files,
    )

    model = EssentiaClassifiers.load(models_dir, options)
    opts = parse_options(options)
    tool = "essentia-tensorflow" if opts.backend == "tensorflow" else "onnxruntime"
    return PassRunner(
        crop=lambda crop_dir, crop, files_dir: model.classify_file(crop_dir / crop["audio_file"]),
        track=(lambda source, known: model.classify_file(source)) if options["track"] else None,
        provenance=provenance(
            (tool,),
            [Path(models_dir) / rel for rel in required_files(options)],
            {**asdict(opts), "heads": list(opts.heads)},
        ),
    )


def transcription_runner(options: dict[str, Any], models_dir: str) -> PassRunner:
    from mirflow.transcription import (  # noqa: PLC0415
        NoteTranscriber,
        model_path,
        transcribe_crop,
    )

    model = NoteTranscriber.load(options)
    params = {k: v for k, v in asdict(model.options).items() if k != "threads"}
    return PassRunner(
        crop=lambda crop_dir, crop, files_dir: transcribe_crop(model, crop_dir, crop, files_dir),
        model_fields={"midi_model": "basic-pitch"},
        provenance=provenance(("basic-pitch", "onnxruntime"), [model_path()], params),
    )


def captions_runner(options: dict[str, Any], models_dir: str) -> PassRunner:
    from mirflow.caption_prompts import selected_for_caption  # noqa: PLC0415
    from mirflow.captions import Captioner, find_model  # noqa: PLC0415

    gguf, mmproj = find_model(models_dir, options["model"])
    model = Captioner.load(
        gguf, mmproj, n_ctx=options["n_ctx"], n_gpu_layers=options["n_gpu_layers"],
        n_threads=options["threads"], seed=options["seed"],
        system_prompt=options["system_prompt"],
    )  # fmt: skip

    named = model.model_fields()

    def caption(path: str | Path, known: dict[str, Any]) -> dict[str, Any]:
        # Each captioned crop names its model too: crops travel without their track.
        return {**named, **caption_fields(model, path, known, options)}

    params = {key: options[key] for key in CAPTION_PARAMS}
    return PassRunner(
        crop=lambda crop_dir, crop, files_dir: caption(crop_dir / crop["audio_file"], crop),
        track=caption if options["whole_track"] else None,
        model_fields=named,
        provenance=provenance(("llama-cpp-python",), [gguf, mmproj], params),
        wants_crop=lambda track, crop: selected_for_caption(
            f"{track}/{crop}", options["sample_fraction"]
        ),
    )


#: Captions options that change the text (n_gpu_layers and threads do not).
CAPTION_PARAMS = (
    "prompts", "max_tokens", "temperature", "seed", "system_prompt", "n_ctx",
    "sample_fraction", "whole_track",
)  # fmt: skip


def caption_fields(model: Any, path: str | Path, known: dict[str, Any], options: dict) -> dict:
    """Captions of one file, with the prompts as filled in (Essentia genres and
    tags from earlier records, when they exist) for the ``.INFO``."""
    from mirflow.caption_prompts import prompt_fields  # noqa: PLC0415

    genres, metadata = known.get("essentia_genre"), known
    captions = model.caption_file(
        path, options["prompts"], options["max_tokens"], genres, metadata, options["temperature"]
    )
    return {**captions, **prompt_fields(options["prompts"], genres, metadata)}


@dataclass(frozen=True)
class ModelPass:
    """One model pass, described once: the workflow makes its rules from this
    (workflow/rules/passes.smk) and the tests count its loads; its model files
    are the one answer of :func:`mirflow.models.missing_for` (the pass's name).

    ``gpu(options)`` is the GPUs its batch job reserves; ``reads`` the earlier
    records (by stage name) whose fields it uses, when that stage runs;
    ``files`` the track folder its files (``<batch>/<track>/files``) are
    copied to, if it writes any.
    """

    runner: Callable[[dict[str, Any], str], PassRunner]  # (options, models_dir), loads the model
    model_class: tuple[str, str]  # (module, class) whose ``load_count`` counts loads
    gpu: Callable[[dict[str, Any]], int] = lambda options: 0
    reads: tuple[str, ...] = ()
    files: str | None = None


#: The passes, in the order their fields reach the .INFO. Captions come last:
#: their prompts use the classifiers' labels. basic-pitch's model ships inside
#: its wheel: transcription has nothing to fetch. AudioBox runs on CUDA when it
#: can; Essentia's and basic-pitch's builds here are CPU-only.
PASSES: dict[str, ModelPass] = {
    "aesthetics": ModelPass(
        aesthetics_runner,
        ("mirflow.aesthetics", "AestheticsModel"),
        # AudioBox Aesthetics scores (CE, CU, PC, PQ) of every crop and of the whole track
        gpu=lambda options: int(options["device"] != "cpu"),
    ),
    "classifiers": ModelPass(
        classifiers_runner,
        ("mirflow.classifiers", "EssentiaClassifiers"),
        # Essentia classifier labels (genre, mood, instrument, voice, danceability, tonality)
    ),
    "transcription": ModelPass(
        transcription_runner,
        ("mirflow.transcription", "NoteTranscriber"),
        # MIDI (basic-pitch) of every crop and of its bass, other and vocals stems
        files="midi",
    ),
    "captions": ModelPass(
        captions_runner,
        ("mirflow.captions", "Captioner"),
        # Music Flamingo captions of the crops (and optionally the whole track)
        gpu=lambda options: int(options["n_gpu_layers"] != 0),
        reads=("source", "classifiers"),
    ),
}


def model_loads(stage: str) -> int:
    """Models the pass loaded in this process (the batch rule's promise: at most 1)."""
    import sys  # noqa: PLC0415

    module, cls = PASSES[stage].model_class
    return getattr(sys.modules[module], cls).load_count if module in sys.modules else 0


def run_pass(
    stage: str,
    options: dict[str, Any],
    models_dir: str,
    members: list[list[str]],
    out_dir: str | os.PathLike,
    batch: str,
) -> dict[str, StageResult]:
    """The batch rules' entry point: ``members`` are ``[track, source, crops_dir,
    record, [context records]]``."""
    factory = PASSES[stage].runner
    return run_pass_batch(
        stage,
        lambda: factory(options, models_dir),
        [PassMember(*m[:4], context=tuple(m[4])) for m in members],
        out_dir,
        batch,
    )
