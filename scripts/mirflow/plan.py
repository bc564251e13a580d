"""The run's plan: which tracks each batched rule's jobs take.

Separation, the features and every model pass run one job per batch of tracks
so that a model (or a heavy import) is loaded once for many tracks. Which
tracks share a batch is decided once, by the main Snakemake process, from
what is finished when the run starts: only tracks without a current result
are batched, so a finished track is never computed again and a growing
library adds batches of its new tracks. A job that parses the workflow again
(a cluster job) would see more tracks finished, hence other batches, so it
reads the plan the run started with (:func:`read_or_make`).

A rule's plan is ``(origin, pending, finished)``: the batch each track comes
(or came) from, the batches to run ``{batch: [track]}`` and the finished
batches whose tracks still name them. Plain dicts and lists: the plan file is
JSON. This module knows nothing of Snakemake; common.smk calls it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from mirflow.atomic import read_json
from mirflow.batches import (
    batch_of_record,
    batch_size_for,
    finished_stems,
    make_batches,
    record_is_current,
)
from mirflow.models import missing_for
from mirflow.stems import STEMS

Plan = tuple[dict, dict, dict]
EMPTY: Plan = ({}, {}, {})


@dataclass(frozen=True)
class Stages:
    """What runs, as the config and the models on disk decide: enough to name
    every file a batched rule reads, for any track."""

    out: str
    crops: bool = True
    crop_features: bool = True
    features: bool = True
    separation: bool = False
    duplicates: bool = False  # fingerprints and duplicate groups
    passes: Mapping[str, bool] = field(default_factory=dict)  # pass name -> on
    pass_reads: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # records it reads
    notes: tuple[str, ...] = ()  # why a stage that needs models is off, for the summary
    missing: Mapping[str, list] = field(default_factory=dict)  # section -> model files lacking

    @classmethod
    def from_config(cls, config: Mapping[str, Any], out: str, passes: Mapping[str, Any]) -> Stages:
        """The stages ``config`` turns on, given the model files each lacks
        (``passes``: mirflow.passes.PASSES; mirflow.models.missing_for says which)."""
        models_dir, stages = config["models_dir"], config["stages"]
        section = "source_separation"
        missing = {section: missing_for(section, config[section], models_dir)}
        missing |= {name: missing_for(name, config[name], models_dir) for name in passes}
        state = partial(stage_state, crops=stages["crops"], models_dir=models_dir)
        separation, note = state(
            "source_separation", config["source_separation"], missing["source_separation"]
        )
        notes, on = [note] if note else [], {}
        for name in passes:
            needs_crops = not config[name].get("track", False)
            on[name], note = state(name, config[name], missing[name], needs_crops=needs_crops)
            notes += [note] if note else []
        duplicates = stages["duplicates"] and shutil.which("fpcalc") is not None
        if stages["duplicates"] and not duplicates:
            notes.append(
                "duplicates: off, no fpcalc on PATH (Chromaprint: apt-get install "
                "libchromaprint-tools, or run `make setup`)"
            )
        crop_features = stages["crops"] and stages["crop_features"]
        return cls(
            out,
            crops=stages["crops"],
            crop_features=crop_features,
            features=stages["features"] or crop_features,
            separation=separation,
            duplicates=duplicates,
            passes=on,
            pass_reads={name: p.reads for name, p in passes.items()},
            notes=tuple(notes),
            missing=missing,
        )

    def folder(self, track: str) -> str:
        return f"{self.out}/tracks/{track}"

    def pass_upstream(self, track: str) -> str:
        """The record a pass's results derive from: newer means they are stale."""
        return f"{self.folder(track)}/{'crops' if self.crops else 'source'}.json"

    def pass_context(self, name: str, track: str) -> list[str]:
        """Earlier records pass ``name`` reads besides its crops (captions: the
        tags in source.json, the labels in classifiers.json when that runs)."""
        return [
            f"{self.folder(track)}/{record}.json"
            for record in self.pass_reads.get(name, ())
            if record == "source" or self.passes.get(record)
        ]

    def features_inputs(self, track: str) -> list[str]:
        """What a track's features are made from."""
        folder = self.folder(track)
        inputs = [f"{folder}/source.json", f"{folder}/rhythm.json", f"{folder}/{track}.BEATS"]
        if self.crop_features:
            inputs.append(f"{folder}/crops.json")
        if self.separation:
            inputs += [f"{folder}/stems.json", f"{folder}/stems"]
        return inputs

    def upstream(self, name: str, track: str) -> list[str]:
        """Every file a batched rule ``name`` reads for ``track``: its jobs'
        inputs, and what decides whether the track's record is current."""
        if name == "features":
            return self.features_inputs(track)
        return [self.pass_upstream(track), *self.pass_context(name, track)]


def plan_batches(
    stages: Stages,
    name: str,
    tracks: Iterable[str],
    batch_size: int,
    cores: int | None = None,
) -> Plan:
    """The plan of the batched rule whose per-track record is ``<name>.json``.

    A track whose record is no older than its upstream files (and names its
    batch) keeps that batch; the others are batched anew. With ``cores``, a
    few pending tracks are spread over that many batches (features: a small
    library still uses every core).
    """
    origin: dict[str, str] = {}
    pending: list[str] = []
    finished: dict[str, list[str]] = {}
    for track in tracks:
        record = f"{stages.folder(track)}/{name}.json"
        batch = None
        if record_is_current(record, stages.upstream(name, track)):
            batch = batch_of_record(record)
        if batch:
            origin[track] = batch
            finished.setdefault(batch, []).append(track)
        else:
            pending.append(track)
    if cores:
        batch_size = batch_size_for(len(pending), batch_size, cores)
    batches = make_batches(pending, batch_size)
    for batch, members in batches.items():
        origin.update({track: batch for track in members})
    return origin, batches, finished


@dataclass
class StemsPlan:
    """Where each track's stems come from, and what planning found wrong."""

    plan: Plan = EMPTY
    damaged: dict[str, str] = field(default_factory=dict)  # track -> which file, how
    library_redo: list[str] = field(default_factory=list)  # library stems to link again (dry run)


def plan_stems(
    out: str,
    library_stems: Mapping[str, Mapping[str, str]],
    separation: Mapping[str, Any],
    repair: bool = False,
) -> StemsPlan:
    """Each track's stems origin: ``("library", None)`` (beside it in the
    library, with ``use_library_stems``), ``("done", batch)`` (in the output,
    newer than its source record) or ``("separate", batch)``. A track whose
    stem files were damaged is separated again (a new batch: its input
    changes). Damaged library stems are linked again: library stems are
    params, not inputs, so nothing tells Snakemake that one is gone. With
    ``repair`` (a run) their record is removed, so the stems rule remakes it
    and what depends on it; without (a dry run, which writes nothing) they are
    listed in ``library_redo`` for the workflow to show the job."""
    result = StemsPlan()
    origin, pending, finished = {}, [], {}
    for track, stems in library_stems.items():
        made, damage = finished_stems(out, track)
        if damage:
            result.damaged[track] = damage
        if separation["use_library_stems"] and set(STEMS) <= set(stems):
            origin[track] = ("library", None)
            if damage and repair:
                os.remove(f"{out}/tracks/{track}/stems.json")
            elif damage:
                result.library_redo.append(track)
        elif made is not None:
            origin[track] = ("done", made["batch"])
            if made["batch"]:
                finished[made["batch"]] = made
        else:
            pending.append(track)
    batches = make_batches(pending, separation["batch_size"])
    for batch, members in batches.items():
        origin.update({track: ("separate", batch) for track in members})
    result.plan = (origin, batches, finished)
    return result


def make_plan(
    stages: Stages,
    config: Mapping[str, Any],
    library_stems: Mapping[str, Mapping[str, str]],
    cores: int | None = None,
    repair: bool = False,
) -> tuple[dict, StemsPlan]:
    """Every batched rule's plan for the tracks of ``library_stems`` (track ->
    its stems in the library): ``{"stems", "passes": {name: plan}, "features"}``,
    with what the stems planning found (see :func:`plan_stems`)."""
    tracks = list(library_stems)
    stems = StemsPlan()
    if stages.separation:
        stems = plan_stems(stages.out, library_stems, config["source_separation"], repair)

    def batched(name: str, on: bool, batch_size: int, cores: int | None = None) -> Plan:
        return plan_batches(stages, name, tracks, batch_size, cores) if on else EMPTY

    passes = {n: batched(n, on, config[n]["batch_size"]) for n, on in stages.passes.items()}
    # The features' batches are split further, so that a small library still
    # uses every core.
    features = batched("features", stages.features, config["features"]["batch_size"], cores)
    return {"stems": stems.plan, "passes": passes, "features": features}, stems


def stage_state(
    section: str,
    options: Mapping[str, Any],
    missing: list,
    *,
    crops: bool,
    models_dir: str,
    needs_crops: bool = False,
) -> tuple[bool, str]:
    """``(on, note)`` of a stage that needs models: ``enabled: false`` is off;
    ``auto`` is on when no file is ``missing``; ``true`` is on (and the run
    stops, see :func:`missing_models`, if a track needs the missing model).
    A pass that ``needs_crops`` (no whole-track option on) is off without them."""
    label = section.replace("_", " ")
    wanted = options["enabled"]
    if wanted and needs_crops and not crops:
        return False, f"{label}: off (it works on crops, and stages.crops is false)"
    if wanted is False:
        return False, f"{label}: off ({section}.enabled: false)"
    if missing and wanted == "auto":
        return False, (
            f"{label}: off, no model in {models_dir} "
            f"({', '.join(str(m) for m in missing)} missing: run `make models`)"
        )
    return True, ""


def missing_models(stages: Stages, plan: dict) -> str | None:
    """Why the run must stop before any job, if it must: a stage has work to
    do (pending batches) and its model files are not there."""
    pending = {"source_separation": plan["stems"][1]}
    pending |= {name: batches for name, (_, batches, _) in plan["passes"].items()}
    for section, batches in pending.items():
        if batches and (missing := stages.missing.get(section)):
            return (
                f"mirflow: {section.replace('_', ' ')} needs {', '.join(map(str, missing))}: "
                "run `make models` (downloads and checks the weights), or set "
                f"{section}.enabled: auto or false."
            )
    return None


def read_or_make(path: str | os.PathLike, reuse: bool, make: Callable[[], dict]) -> dict:
    """The plan in ``path`` when ``reuse`` (a job's process) and it exists,
    else a new one from ``make`` (the main process writes it when the run starts)."""
    if reuse and os.path.exists(path):
        return read_json(path)
    return make()
