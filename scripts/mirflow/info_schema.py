"""The published JSON Schemas of the ``.INFO`` sidecars, and checking files against them.

``workflow/schemas/track_info.schema.json`` describes ``dataset/<track>/<track>.INFO``,
``workflow/schemas/crop_info.schema.json`` ``dataset/<track>/crops/<crop>.INFO``
(JSON Schema draft 2020-12). They type every key README.md documents ("The .INFO
files") and require the keys every ``.INFO`` has whatever the config; keys they do
not name are allowed, so a new feature group does not break a reader.

Check a finished run::

    .venv/bin/python -m mirflow.info_schema results/demo/dataset
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "workflow" / "schemas"

#: ``kind`` -> schema file in :data:`SCHEMA_DIR`.
SCHEMA_FILES = {"track": "track_info.schema.json", "crop": "crop_info.schema.json"}


def load_schema(kind: str) -> dict[str, Any]:
    """The schema of a ``"track"`` or ``"crop"`` ``.INFO`` (a fresh copy)."""
    if kind not in SCHEMA_FILES:
        raise ValueError(f"kind must be one of {', '.join(SCHEMA_FILES)}, not {kind!r}")
    return json.loads((SCHEMA_DIR / SCHEMA_FILES[kind]).read_text(encoding="utf-8"))


@cache
def _validator(kind: str):
    from jsonschema.validators import validator_for  # noqa: PLC0415

    schema = load_schema(kind)
    cls = validator_for(schema)  # the class of the schema's own $schema draft
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _where(path) -> str:
    """``bpm``, ``stem_quality.drums.rms_db``, ``time_series.rms_db[3]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def info_errors(info: dict[str, Any], kind: str) -> list[str]:
    """Every way ``info`` breaks its schema, as ``"<key path>: <message>"``; [] when valid.

    A missing key is reported at the top level and named in the message
    (``(top level): 'status' is a required property``).
    """
    validator = _validator(kind)
    errors = sorted(
        validator.iter_errors(info),
        key=lambda e: ([str(p) for p in e.absolute_path], e.message),
    )
    return [f"{_where(e.absolute_path)}: {e.message}{_why(validator.schema, e)}" for e in errors]


def _why(schema: dict[str, Any], error) -> str:
    """The ``$comment`` of the conditional rule (``allOf``) an error comes from, if any:
    ``bpm: 120 is not of type 'null' (bpm_is_defined false: no tempo, bpm is null)``."""
    path = list(error.schema_path)
    if len(path) < 2 or path[0] != "allOf":
        return ""
    comment = schema["allOf"][path[1]].get("$comment")
    return f" ({comment})" if comment else ""


def info_files(dataset_dir: str | os.PathLike) -> Iterator[tuple[Path, str]]:
    """``(path, kind)`` of every ``.INFO`` of a ``dataset/`` folder, tracks first."""
    dataset_dir = Path(dataset_dir)
    for path in sorted(dataset_dir.glob("*/*.INFO")):
        yield path, "track"
    for path in sorted(dataset_dir.glob("*/crops/*.INFO")):
        yield path, "crop"


def dataset_errors(dataset_dir: str | os.PathLike) -> list[str]:
    """:func:`info_errors` of every ``.INFO`` under ``dataset_dir``, each prefixed
    with the file's path relative to it (``<track>/crops/<crop>.INFO: bpm: ...``).

    A file that is not a JSON object is an error too; a folder that does not exist
    is one error.
    """
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        return [f"{dataset_dir}: not a folder"]
    out = []
    for path, kind in info_files(dataset_dir):
        name = path.relative_to(dataset_dir).as_posix()
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            out.append(f"{name}: not readable JSON: {exc}")
            continue
        if not isinstance(info, dict):
            out.append(f"{name}: not a JSON object")
            continue
        out += [f"{name}: {error}" for error in info_errors(info, kind)]
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m mirflow.info_schema DATASET_DIR...``: print every error; exit 1 if any."""
    folders = sys.argv[1:] if argv is None else argv
    if not folders:
        print("usage: python -m mirflow.info_schema DATASET_DIR...", file=sys.stderr)
        return 2
    errors = [error for folder in folders for error in dataset_errors(folder)]
    for error in errors:
        print(error)
    checked = sum(1 for folder in folders for _ in info_files(folder))
    print(f"{checked} .INFO files checked, {len(errors)} errors", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
