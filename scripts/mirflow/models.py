"""Model files: the manifest (models/manifest.yaml), which models a configuration
needs, and whether they are in models/ (:func:`missing_for`, the one answer).

Nothing here imports Snakemake or a model library. The workflow asks
:func:`missing_for` before any job, so a missing model stops the run with the
command that fetches it; people run that command (``make models``, or
``python -m mirflow.models download``) themselves. The download step that
checks every byte is mirflow.model_download; the command line, mirflow.model_cli.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from mirflow.errors import ModelNotFoundError

REPO = Path(__file__).resolve().parents[2]
#: The manifest that ships with the project.
DEFAULT_MANIFEST = REPO / "models" / "manifest.yaml"
DEFAULT_MODELS_DIR = "models"
FETCH_COMMAND = "make models"
FETCH_COMMAND_LONG = ".venv/bin/python -m mirflow.models download"

#: ``sha256: unpublished`` marks a file whose publisher gives no checksum: it is
#: fetched only with --allow-unverified, and its digest is then kept beside it.
UNPUBLISHED = "unpublished"
_HEX = re.compile(r"[0-9a-f]+")


class ManifestError(ValueError):
    """models/manifest.yaml is malformed; the message names the entry and key."""


# ----------------------------------------------------------------- manifest ---


@dataclass(frozen=True)
class ModelFile:
    path: str  # relative to the models folder, POSIX separators
    url: str | None = None
    from_package: str | None = None  # "<package>/<file inside it>"
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None

    @property
    def unpublished(self) -> bool:
        """No checksum is published for this file (``sha256: unpublished``)."""
        return self.sha256 == UNPUBLISHED

    @property
    def verified(self) -> str:
        """What a successful verification proves, for messages."""
        checked = "size and " if self.size is not None else ""
        if self.unpublished:
            return f"{checked}NOT verified: no checksum is published for it"
        if self.sha256:
            return f"{checked}sha256 verified"
        if self.sha256_prefix:
            return (
                f"{checked}sha256 prefix {self.sha256_prefix} verified (no full sha256 is "
                "published, so only the prefix could be checked)"
            )
        return f"{checked}no checksum verified (the manifest gives none)"

    def mismatch(self, digest: str, size: int) -> tuple[str, str, str] | None:
        """(what, expected, actual) for the first check that fails, else None."""
        if self.size is not None and size != self.size:
            return "size", f"{self.size} bytes", f"{size} bytes"
        if self.sha256 and not self.unpublished and digest != self.sha256:
            return "sha256", self.sha256, digest
        if self.sha256_prefix and not digest.startswith(self.sha256_prefix):
            return "sha256 prefix", self.sha256_prefix, digest
        return None


@dataclass(frozen=True)
class ModelEntry:
    name: str  # "<backend>:<model>", e.g. "demucs:htdemucs"
    backend: str
    description: str
    licence: str
    source: tuple[str, ...]
    files: tuple[ModelFile, ...]
    licence_note: str | None = None


_ENTRY_KEYS = {"name", "backend", "description", "licence", "licence_note", "source", "files"}
_FILE_KEYS = {"path", "url", "from_package", "sha256", "sha256_prefix", "size"}


def load_manifest(path: str | Path = DEFAULT_MANIFEST) -> list[ModelEntry]:
    """Read and check the manifest; :class:`ManifestError` names what is wrong."""
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    items = data.get("models") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ManifestError(f"{path}: expected a list of models under 'models:'")
    entries: list[ModelEntry] = []
    names: set[str] = set()
    for index, item in enumerate(items):
        entry = _parse_entry(item, f"{path}: models[{index}]")
        if entry.name in names:
            raise ManifestError(f"{path}: model {entry.name!r} is listed twice")
        names.add(entry.name)
        entries.append(entry)
    return entries


def _check_keys(item: Any, allowed: set[str], where: str) -> None:
    """``item`` is a mapping with no key outside ``allowed``."""
    if not isinstance(item, dict):
        raise ManifestError(f"{where}: expected a mapping")
    unknown = set(item) - allowed
    if unknown:
        raise ManifestError(f"{where}: unknown key(s) {sorted(unknown)}")


def _parse_entry(item: Any, where: str) -> ModelEntry:
    _check_keys(item, _ENTRY_KEYS, where)
    for key in ("name", "backend", "description", "licence"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ManifestError(f"{where}: '{key}' must be a non-empty string")
    where = f"{where} ({item['name']})"
    source = item.get("source")
    if isinstance(source, str):
        source = [source]
    if not source or not all(isinstance(s, str) and s.strip() for s in source):
        raise ManifestError(f"{where}: 'source' must be a string or a list of strings")
    note = item.get("licence_note")
    if note is not None and not isinstance(note, str):
        raise ManifestError(f"{where}: 'licence_note' must be a string")
    files = item.get("files")
    if not isinstance(files, list) or not files:
        raise ManifestError(f"{where}: 'files' must be a non-empty list")
    return ModelEntry(
        name=item["name"],
        backend=item["backend"],
        description=" ".join(item["description"].split()),
        licence=item["licence"],
        licence_note=" ".join(note.split()) if note else None,
        source=tuple(source),
        files=tuple(_parse_file(f, f"{where}: files[{i}]") for i, f in enumerate(files)),
    )


def _parse_file(item: Any, where: str) -> ModelFile:
    _check_keys(item, _FILE_KEYS, where)
    path = item.get("path")
    if not isinstance(path, str) or not path:
        raise ManifestError(f"{where}: 'path' must be a non-empty string")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise ManifestError(f"{where}: 'path' must be relative to models/ ({path!r})")
    where = f"{where} ({path})"
    url, package = item.get("url"), item.get("from_package")
    if (url is None) == (package is None):
        raise ManifestError(f"{where}: give exactly one of 'url' and 'from_package'")
    if url is not None and not (isinstance(url, str) and url.startswith(("https://", "http://"))):
        raise ManifestError(f"{where}: 'url' must be an http(s) URL")
    if package is not None and not (isinstance(package, str) and "/" in package):
        raise ManifestError(f"{where}: 'from_package' must be '<package>/<file>'")
    sha256, prefix = item.get("sha256"), item.get("sha256_prefix")
    if sha256 == UNPUBLISHED and prefix is None:
        pass
    elif sha256 is not None and not _is_hex(sha256, 64, 64):
        raise ManifestError(
            f"{where}: 'sha256' must be 64 lower-case hex digits (or '{UNPUBLISHED}')"
        )
    if prefix is not None and not _is_hex(prefix, 8, 63):
        raise ManifestError(f"{where}: 'sha256_prefix' must be 8 to 63 lower-case hex digits")
    if sha256 and sha256 != UNPUBLISHED and prefix and not sha256.startswith(prefix):
        raise ManifestError(f"{where}: 'sha256' does not start with 'sha256_prefix'")
    if url is not None and not (sha256 or prefix):
        raise ManifestError(f"{where}: a downloaded file needs 'sha256' or 'sha256_prefix'")
    size = item.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise ManifestError(f"{where}: 'size' must be a positive number of bytes")
    return ModelFile(path, url, package, sha256, prefix, size)


def _is_hex(value: Any, least: int, most: int) -> bool:
    return isinstance(value, str) and least <= len(value) <= most and bool(_HEX.fullmatch(value))


# ------------------------------------------------- what a configuration needs ---


def _separation_models(options: dict) -> list[str]:
    backend = options.get("backend", "demucs")
    if backend == "demucs":
        return [f"demucs:{(options.get('demucs') or {}).get('model', 'htdemucs')}"]
    if backend == "bs_roformer":
        model_file = (options.get("bs_roformer") or {}).get("model_file", "BS-Roformer-SW.ckpt")
        return [f"bs_roformer:{model_file}"]
    raise ValueError(f"source_separation.backend: unknown backend {backend!r} (demucs|bs_roformer)")


def _classifier_models(options: dict) -> list[str]:
    from mirflow.classifiers import model_names  # noqa: PLC0415

    return model_names(options)


def _captions_models(options: dict) -> list[str]:
    """``model: auto`` fetches Q6_K (near Q8_0's quality at 5.9 GB); a
    quantisation name fetches that one; a path names no manifest entry."""
    choice = options.get("model", "auto")
    if choice in (None, "auto"):
        return ["music_flamingo:Q6_K"]
    return [] if choice.endswith(".gguf") else [f"music_flamingo:{choice}"]


def _rhythm_models(options: dict) -> list[str]:
    if options.get("backend", "madmom") != "beat_this":
        return []  # madmom's models ship inside its wheel
    model = (options.get("beat_this") or {}).get("model", "final0")
    return [] if model.endswith(".ckpt") else [f"beat_this:{model}"]  # a path: the user's own


#: Stages that always run, whose models depend on their options alone.
ALWAYS_RUN = {"rhythm"}

#: The passes that use models: config section -> function of that section giving
#: the names of the manifest entries it needs. The section's ``enabled`` (true,
#: false or "auto") says whether the pass runs (ALWAYS_RUN: it does). A new
#: pass is one line here (and one in STAGE_MISSING if it loads files that its
#: options name rather than its manifest entries').
STAGE_MODELS: dict[str, Callable[[dict], list[str]]] = {
    "rhythm": _rhythm_models,
    "source_separation": _separation_models,
    "aesthetics": lambda options: ["audiobox:aesthetics"],
    "classifiers": _classifier_models,
    "captions": _captions_models,
}


def required_models(config: dict, *, include_auto: bool = True) -> list[str]:
    """Names of the manifest entries ``config`` needs, in pass order, without repeats.

    A pass with ``enabled: auto`` (on when its model is present) counts unless
    ``include_auto`` is false: ``make models`` fetches its model, while
    :func:`check_models` leaves the decision to the workflow.
    """
    names: list[str] = []
    for section, needs in STAGE_MODELS.items():
        options = config.get(section) or {}
        enabled = section in ALWAYS_RUN or options.get("enabled", False)
        if not enabled or (enabled == "auto" and not include_auto):
            continue
        names.extend(n for n in needs(options) if n not in names)
    return names


def missing_for(
    section: str,
    options: dict,
    models_dir: str | Path,
    manifest_path: str | Path = DEFAULT_MANIFEST,
) -> list[Path]:
    """Files the ``section`` stage needs with ``options`` that ``models_dir`` lacks.

    The one answer to "are the model files there?": the parse-time checks, the
    ``enabled: auto`` decisions and the passes' ``missing`` all ask it. No
    hashing, so it is cheap enough for parse time (``make models`` checks the
    checksums). A stage needs its manifest entries' files (:data:`STAGE_MODELS`),
    present and of the manifest's size, unless :data:`STAGE_MISSING` says what
    it loads instead (a checkpoint path of the config's, the members of a Demucs
    bag as its yaml lists them, a GGUF found by name): those need only exist.
    """
    models_dir = Path(models_dir)
    if section in STAGE_MISSING:
        return STAGE_MISSING[section](options, models_dir)
    names = STAGE_MODELS[section](options)
    if not names:
        return []
    return missing_files(select(load_manifest(manifest_path), names), models_dir)


def _absent(paths: Iterable[Path]) -> list[Path]:
    return [path for path in paths if not path.is_file()]


def _separation_missing(options: dict, models_dir: Path) -> list[Path]:
    from mirflow.separation import required_files  # noqa: PLC0415

    return _absent(required_files(options, models_dir))


def _classifiers_missing(options: dict, models_dir: Path) -> list[Path]:
    from mirflow.classifiers import required_files  # noqa: PLC0415

    return _absent(models_dir / rel for rel in required_files(options))


def _captions_missing(options: dict, models_dir: Path) -> list[Path]:
    """Music Flamingo is found by name (mirflow.captions.find_model), not
    listed: what is missing is named by the pattern it is looked for by."""
    from mirflow.captions import MODEL_FOLDER, find_model  # noqa: PLC0415

    try:
        find_model(models_dir, options["model"])
    except ModelNotFoundError:
        choice = options["model"]
        wanted = "<model>.gguf" if choice in (None, "auto") else choice
        if not str(wanted).endswith(".gguf"):
            wanted = f"*{wanted}*.gguf"
        return [models_dir / MODEL_FOLDER / f"{wanted} (+ its *mmproj*.gguf)"]
    return []


#: Stages whose files are not simply their manifest entries' (see
#: :func:`missing_for`): section -> ``(options, models_dir)`` -> files missing.
#: basic-pitch's model ships inside its wheel: transcription needs none.
STAGE_MISSING: dict[str, Callable[[dict, Path], list[Path]]] = {
    "source_separation": _separation_missing,
    "aesthetics": lambda options, models_dir: _absent([models_dir / options["checkpoint"]]),
    "classifiers": _classifiers_missing,
    "transcription": lambda options, models_dir: [],
    "captions": _captions_missing,
}


def select(entries: Sequence[ModelEntry], names: Iterable[str]) -> list[ModelEntry]:
    """The entries called ``names``; :class:`ModelNotFoundError` for a name not listed."""
    by_name = {e.name: e for e in entries}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ModelNotFoundError(
            f"no entry for {', '.join(unknown)} in the model manifest (it lists "
            f"{', '.join(by_name)}): choose one of those, or add the model with its files, "
            "URLs, sha256 and licence to models/manifest.yaml"
        )
    return [by_name[n] for n in names]


def missing_files(entries: Iterable[ModelEntry], models_dir: str | Path) -> list[Path]:
    """Files of ``entries`` absent from ``models_dir`` or not of the manifest's size.

    Cheap (no hashing): the download step hashes; this only catches files that
    were never fetched, or were cut short by something other than mirflow.
    """
    models_dir = Path(models_dir)
    missing: list[Path] = []
    for entry in entries:
        for f in entry.files:
            dest = models_dir / f.path
            if dest in missing:
                continue
            if not dest.is_file() or (f.size is not None and dest.stat().st_size != f.size):
                missing.append(dest)
    return missing


def fetch_hint(models_dir: str | Path = DEFAULT_MODELS_DIR) -> str:
    extra = "" if Path(models_dir) == Path(DEFAULT_MODELS_DIR) else f" --models-dir {models_dir}"
    return (
        f"fetch them with `{FETCH_COMMAND}` (equivalently `{FETCH_COMMAND_LONG}{extra}`; "
        "add --config <file> for another configuration)"
    )


def check_models(
    config: dict,
    manifest_path: str | Path = DEFAULT_MANIFEST,
    models_dir: str | Path = DEFAULT_MODELS_DIR,
) -> list[ModelEntry]:
    """The entries ``config`` needs; :class:`ModelNotFoundError` if any file is missing.

    The message names every missing file and the command that fetches them.
    Passes with ``enabled: auto`` are not checked: they simply stay off while
    their model is missing (the workflow decides that with :func:`missing_for`).
    """
    names = required_models(config, include_auto=False)
    if not names:
        return []
    entries = select(load_manifest(manifest_path), names)
    missing = missing_files(entries, models_dir)
    if missing:
        raise ModelNotFoundError(
            f"{len(missing)} model file(s) needed by {', '.join(names)} missing (or of the wrong "
            f"size): {', '.join(str(p) for p in missing)}; {fetch_hint(models_dir)}"
        )
    return entries


if __name__ == "__main__":  # python -m mirflow.models (make models): the command line
    import sys

    from mirflow.model_cli import main

    sys.exit(main())
