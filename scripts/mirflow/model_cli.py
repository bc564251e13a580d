"""The command line of the model files: ``python -m mirflow.models`` (``make
models`` runs its ``download``) lists, checks and downloads what
models/manifest.yaml describes, for the files a configuration needs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from mirflow import model_download
from mirflow.errors import ModelNotFoundError
from mirflow.model_download import DownloadError, download, human_size
from mirflow.models import (
    DEFAULT_MANIFEST,
    DEFAULT_MODELS_DIR,
    ModelEntry,
    check_models,
    load_manifest,
    missing_files,
    required_models,
    select,
)

DEFAULT_CONFIG = "config/config.yaml"
#: The download step's messages go to stdout while a command runs.
log = model_download.log


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
        total = human_size(sum(s for s in sizes if s)) + ("" if all(sizes) else "+?")
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
