"""Model files: the manifest (models/manifest.yaml), which models a configuration
needs, whether they are in models/, and a download step that checks every byte.

Nothing here imports Snakemake or a model library. The workflow calls
:func:`check_models` before any job, so a missing model stops the run with the
command that fetches it; people run that command (``make models``, or
``python -m mirflow.models download``) themselves.

Downloads stream to a temporary file beside the destination, hashing as they
go; only a file whose sha256 (or published sha256 prefix) and size match the
manifest is renamed into place, so models/ never holds a partial or wrong file.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import importlib.util
import logging
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from mirflow import __version__
from mirflow.atomic import atomic_path
from mirflow.errors import ModelNotFoundError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
#: The manifest that ships with the project.
DEFAULT_MANIFEST = REPO / "models" / "manifest.yaml"
DEFAULT_MODELS_DIR = "models"
DEFAULT_CONFIG = "config/config.yaml"
FETCH_COMMAND = "make models"
FETCH_COMMAND_LONG = ".venv/bin/python -m mirflow.models download"

CHUNK = 1 << 20  # bytes read per step while streaming
#: ``sha256: unpublished`` marks a file whose publisher gives no checksum: it is
#: fetched only with --allow-unverified, and its digest is then kept beside it.
UNPUBLISHED = "unpublished"
_HEX = re.compile(r"[0-9a-f]+")


# ------------------------------------------------------------------ errors ---


class ManifestError(ValueError):
    """models/manifest.yaml is malformed; the message names the entry and key."""


class DownloadError(Exception):
    """A model file could not be fetched (network, HTTP status); the message names the URL."""


class ChecksumError(DownloadError):
    """A fetched (or copied) file's sha256 or size is not the manifest's; it was deleted."""

    def __init__(self, path: str, expected: str, actual: str, url: str, what: str = "sha256"):
        self.path, self.expected, self.actual, self.url, self.what = (
            path,
            expected,
            actual,
            url,
            what,
        )
        super().__init__(
            f"{what} mismatch for {path}: expected {expected}, got {actual} (from {url}); "
            "the file was deleted, nothing was put in its place"
        )


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
#: pass is one line here.
MODEL_PASSES: dict[str, Callable[[dict], list[str]]] = {
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
    for section, needs in MODEL_PASSES.items():
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
    """Files the ``section`` stage needs with ``options`` that ``models_dir`` lacks."""
    names = MODEL_PASSES[section](options)
    if not names:
        return []
    return missing_files(select(load_manifest(manifest_path), names), models_dir)


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
    their model is missing (the workflow decides that with :func:`missing_files`).
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


# ----------------------------------------------------------------- download ---


def download(
    entries: Iterable[ModelEntry],
    models_dir: str | Path,
    *,
    base_url_override: str | None = None,
    timeout: float = 60,
    allow_unverified: bool = False,
) -> list[tuple[Path, str]]:
    """Put every file of ``entries`` into ``models_dir``, verified.

    A file already present whose checksum and size match is skipped (hashed
    again first). Otherwise it is streamed to a temporary file beside its
    destination, checked, and renamed into place; on a mismatch the temporary
    is deleted and :class:`ChecksumError` raised. ``base_url_override``
    (a mirror) fetches ``<base>/<path>`` instead of each file's ``url``.
    ``from_package`` files are copied from the installed package.

    A file with no published checksum (``sha256: unpublished``) is left out
    ("unverified: left out") unless ``allow_unverified``; then its sha256 is
    written to ``<file>.sha256`` and a later download of it must match that.

    Returns ``(path, action)`` per file, action one of "skipped", "downloaded",
    "copied", "unverified: left out".
    """
    models_dir = Path(models_dir)
    done: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for entry in entries:
        for f in entry.files:
            if f.path in seen:
                continue
            seen.add(f.path)
            dest = models_dir / f.path
            if f.unpublished:
                done.append((dest, _fetch_unverified(f, dest, entry, allow_unverified, timeout)))
                continue
            if dest.is_file():
                digest, size = _hash_file(dest)
                problem = f.mismatch(digest, size)
                if problem is None:
                    log.info("skip %s: already present, %s", dest, f.verified)
                    done.append((dest, "skipped"))
                    continue
                what, expected, actual = problem
                log.warning(
                    "%s is present but its %s is %s, not %s: replacing it",
                    dest,
                    what,
                    actual,
                    expected,
                )
            if f.from_package:
                _copy_from_package(f, dest)
                done.append((dest, "copied"))
            else:
                _fetch(f, dest, _url(f, base_url_override), timeout)
                done.append((dest, "downloaded"))
    return done


def _fetch_unverified(
    f: ModelFile, dest: Path, entry: ModelEntry, allowed: bool, timeout: float
) -> str:
    """Fetch a file no checksum is published for, only when the user says so,
    and keep the sha256 it had: the next download must give the same bytes."""
    record = dest.with_name(dest.name + ".sha256")
    if dest.is_file() and record.is_file():
        log.info("skip %s: already present (sha256 recorded at its download)", dest)
        return "skipped"
    if not allowed:
        log.warning(
            "left out %s: no checksum is published for it, so it cannot be verified. "
            "Fetch it anyway with `%s --model %s --allow-unverified`, or put it there yourself",
            f.path, FETCH_COMMAND_LONG, entry.name,
        )  # fmt: skip
        return "unverified: left out"
    assert f.url is not None
    _fetch(f, dest, f.url, timeout)
    digest, size = _hash_file(dest)
    if record.is_file() and record.read_text().split()[0] != digest:
        dest.unlink()
        raise ChecksumError(f.path, record.read_text().split()[0], digest, f.url)
    with atomic_path(record) as tmp:
        tmp.write_text(f"{digest}  {dest.name}\n")
    log.warning("%s is NOT verified (none published); its sha256 is %s (kept in %s)",
                dest, digest, record)  # fmt: skip
    return "downloaded"


def _url(f: ModelFile, base_url_override: str | None) -> str:
    if base_url_override:
        return f"{base_url_override.rstrip('/')}/{f.path}"
    assert f.url is not None
    return f.url


def _hash_file(path: Path) -> tuple[str, int]:
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return digest, path.stat().st_size


def _verify(f: ModelFile, digest: str, size: int, origin: str) -> None:
    problem = f.mismatch(digest, size)
    if problem is not None:
        what, expected, actual = problem
        raise ChecksumError(f.path, expected, actual, origin, what)


def _fetch(f: ModelFile, dest: Path, url: str, timeout: float) -> None:
    expected = f" ({_human(f.size)})" if f.size else ""
    log.info("download %s%s from %s", f.path, expected, url)
    request = urllib.request.Request(url, headers={"User-Agent": f"mirflow/{__version__}"})
    try:
        # ".part": a killed download's leftover is never mistaken for a model
        # (demucs picks up every *.th and *.yaml in its folder); the next
        # atomic_path on this destination removes it.
        with atomic_path(dest, suffix=".part") as tmp:
            digest, size = hashlib.sha256(), 0
            progress = _Progress(f.path, f.size)
            with (
                urllib.request.urlopen(request, timeout=timeout) as response,
                open(tmp, "wb") as out,
            ):
                while chunk := response.read(CHUNK):
                    size += len(chunk)
                    if f.size is not None and size > f.size:
                        raise ChecksumError(
                            f.path, f"{f.size} bytes", f"more than {f.size} bytes", url, "size"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                    progress.update(size)
            progress.close()
            _verify(f, digest.hexdigest(), size, url)
            _make_readable(tmp)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DownloadError(
            f"cannot download {f.path}: HTTP {exc.code} {exc.reason} from {url}"
        ) from None
    except urllib.error.URLError as exc:
        raise DownloadError(
            f"cannot download {f.path} from {url}: {exc.reason} (is the network reachable? "
            f"a mirror: --base-url; or put the verified file at {dest} yourself)"
        ) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise DownloadError(
            f"cannot download {f.path} from {url}: {type(exc).__name__}: {exc} "
            "(the partial file was deleted; run the command again to retry)"
        ) from None
    log.info("ok %s: %s", dest, f.verified)


def _copy_from_package(f: ModelFile, dest: Path) -> None:
    assert f.from_package is not None
    package, _, inner = f.from_package.partition("/")
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"{f.path} is copied from the Python package {package!r}, which is not installed "
            "(run `make setup`)"
        )
    source = Path(next(iter(spec.submodule_search_locations))) / inner
    if not source.is_file():
        raise ModelNotFoundError(
            f"{f.path}: the installed {package} package has no {inner} ({source})"
        )
    with atomic_path(dest, suffix=".part") as tmp:
        shutil.copyfile(source, tmp)
        digest, size = _hash_file(tmp)
        _verify(f, digest, size, f"package file {source}")
        _make_readable(tmp)
    log.info("copied %s from %s: %s", dest, source, f.verified)


def _make_readable(path: Path) -> None:
    # mkstemp creates 0600; model files are shared (other users, cluster jobs).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


class _Progress:
    """A percentage on stderr for big files, when stderr is a terminal."""

    def __init__(self, name: str, total: int | None):
        self.name, self.total, self.shown = name, total, -1
        self.active = bool(total and total > 32 * CHUNK and sys.stderr.isatty())

    def update(self, size: int) -> None:
        if self.active and self.total:
            percent = 100 * size // self.total
            if percent != self.shown:
                self.shown = percent
                sys.stderr.write(f"\r  {self.name}: {percent:3d}% of {_human(self.total)}")
                sys.stderr.flush()

    def close(self) -> None:
        if self.active:
            sys.stderr.write("\n")


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.2f} GiB"


# ---------------------------------------------------------------------- CLI ---


def load_config(paths: Sequence[str | Path]) -> dict:
    """Merge YAML config files, later ones winning key by key (as --configfile does)."""
    merged: dict = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of options")
        _merge(merged, data)
    return merged


def _merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def format_table(
    entries: Sequence[ModelEntry],
    models_dir: str | Path,
    needed: Sequence[str] = (),
    needed_on: Sequence[str] | None = None,
) -> str:
    """One row per model; "needed" is "yes" (pass enabled), "auto" (enabled: auto) or empty."""
    needed_on = needed if needed_on is None else needed_on
    rows = [("model", "needed", "files", "size", "status", "licence")]
    for entry in entries:
        missing = missing_files([entry], models_dir)
        n = len(entry.files)
        status = "present" if not missing else f"missing {len(missing)}/{n}"
        sizes = [f.size for f in entry.files]
        total = _human(sum(s for s in sizes if s)) + ("" if all(sizes) else "+?")
        mark = "yes" if entry.name in needed_on else "auto" if entry.name in needed else ""
        rows.append((entry.name, mark, str(n), total, status, entry.licence))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mirflow.models",
        description="List, check and download the model files in models/manifest.yaml.",
    )
    parser.add_argument(
        "--manifest", default=str(DEFAULT_MANIFEST), help="the manifest (default: %(default)s)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            nargs="+",
            action="extend",
            metavar="FILE",
            help=f"config file(s), later ones win (default: {DEFAULT_CONFIG} if it exists)",
        )
        p.add_argument(
            "--models-dir",
            help=f"where model files go (default: the config's models_dir, else "
            f"{DEFAULT_MODELS_DIR})",
        )

    down = sub.add_parser("download", help="fetch (and verify) what the config needs")
    common(down)
    which = down.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every model in the manifest")
    which.add_argument(
        "--model", nargs="+", action="extend", metavar="NAME", help="these models, by name"
    )
    down.add_argument("--base-url", help="fetch <BASE_URL>/<path> from a mirror instead")
    down.add_argument("--timeout", type=float, default=60, help="seconds (default: 60)")
    down.add_argument(
        "--allow-unverified",
        action="store_true",
        help="also fetch files no checksum is published for (their sha256 is recorded)",
    )

    listing = sub.add_parser("list", help="a table: model, files, present/missing, licence")
    common(listing)

    check = sub.add_parser("check", help="exit 1 naming any file the config needs but lacks")
    common(check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        config_files = args.config
        if config_files is None:
            config_files = [DEFAULT_CONFIG] if Path(DEFAULT_CONFIG).is_file() else []
        config = load_config(config_files)
        models_dir = Path(args.models_dir or config.get("models_dir") or DEFAULT_MODELS_DIR)
        entries = load_manifest(args.manifest)
        needed = required_models(config)
        needed_on = required_models(config, include_auto=False)

        if args.command == "list":
            print(format_table(entries, models_dir, needed, needed_on))
            return 0
        if args.command == "check":
            check_models(config, args.manifest, models_dir)
            print(f"ok: every model file the configuration needs is in {models_dir}/")
            return 0

        if args.all:
            chosen = entries
        elif args.model:
            chosen = select(entries, args.model)
        else:
            if not needed:
                print(
                    "the configuration needs no models (no pass that uses one is enabled); "
                    "--all fetches every model, --model NAME one of them"
                )
                return 0
            chosen = select(entries, needed)
        done = download(
            chosen, models_dir, base_url_override=args.base_url, timeout=args.timeout,
            allow_unverified=args.allow_unverified,
        )  # fmt: skip
        counts = {a: sum(1 for _, b in done if b == a) for a in ("downloaded", "copied", "skipped")}
        left_out = [str(path) for path, action in done if action.startswith("unverified")]
        if left_out:
            print(f"left out (no published checksum; --allow-unverified): {', '.join(left_out)}")
        print(
            f"{len(done)} file(s) in {models_dir}/ verified for {', '.join(e.name for e in chosen)}"
            f": {counts['downloaded']} downloaded, {counts['copied']} copied, "
            f"{counts['skipped']} already present"
        )
        for entry in chosen:
            if entry.licence_note:
                print(f"licence of {entry.name}: {entry.licence}. {entry.licence_note}")
        return 0
    except (DownloadError, ModelNotFoundError, ValueError, OSError, yaml.YAMLError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: no partial file was left in place", file=sys.stderr)
        return 130
    finally:
        log.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
