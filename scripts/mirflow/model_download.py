"""The download step of ``make models``: every file of the chosen manifest entries
(mirflow.models) put into models/, each byte checked.

Downloads stream to a temporary file beside the destination, hashing as they
go; only a file whose sha256 (or published sha256 prefix) and size match the
manifest is renamed into place, so models/ never holds a partial or wrong file.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import logging
import os
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from mirflow import __version__
from mirflow.atomic import atomic_path
from mirflow.errors import ModelNotFoundError
from mirflow.models import FETCH_COMMAND_LONG, ModelEntry, ModelFile

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes read per step while streaming


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
    expected = f" ({human_size(f.size)})" if f.size else ""
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
                sys.stderr.write(f"\r  {self.name}: {percent:3d}% of {human_size(self.total)}")
                sys.stderr.flush()

    def close(self) -> None:
        if self.active:
            sys.stderr.write("\n")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.2f} GiB"
