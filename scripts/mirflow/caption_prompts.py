"""Music Flamingo's prompts and text, with no model: filling the prompt placeholders, the
deterministic subset of crops that is captioned, and cleaning the generated text.

Nothing here imports llama.cpp (or numpy), so the workflow and the passes can use it at
parse time; mirflow.captions drives the model.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mirflow.labels import top_labels

DEFAULT_PROMPTS = {
    "caption": (
        "Describe this music in a few sentences: genre and style, mood, instrumentation, "
        "tempo and rhythm, and production. Genre hints: {genres}. Track information: {metadata}."
    ),
}

_PLACEHOLDER_RE = re.compile(r"\{(genres|metadata)\}")
# A sentence or clause: up to and including '.', '!', '?', ';' (and the spaces after), or a line.
_CLAUSE_RE = re.compile(r"[^.!?;\n]*(?:[.!?;]+[ \t]*|\n|$)")
_SPECIAL_TOKEN_RE = re.compile(r"<\|[^|<>]{0,40}\|>")
_MEDIA_MARKER = "<__media__>"  # mtmd_default_marker(); scrubbed from filled values


# ---------------------------------------------------------------- prompts ---


def fill_prompt(
    template: str,
    genres: Sequence[str] | Mapping[str, float] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """``template`` with ``{genres}`` and ``{metadata}`` filled in.

    ``genres``: Essentia labels, as a list or as ``{label: probability}`` (the 3 most probable
    at 0.1 or more, always at least one; ``"Parent---Child"`` keeps the child). ``metadata``:
    ``year``, ``label`` and ``genre`` (a string or a list; tag genres), also accepted as
    ``track_metadata_year``/``_label``/``_genre``. Filled: ``"techno, house"`` and
    ``"year 1999, label Warp, tagged genres: idm, electronic"``.

    The rule for a placeholder with no value (nothing known): the sentence or clause it is in
    is removed, where a clause ends at ``.``, ``!``, ``?``, ``;`` or a line break, which go
    with it. So ``"Describe it. Genres: {genres}. Context: {metadata}."`` loses
    ``"Genres: {genres}. "`` when no genre is known. A clause made of nothing but placeholders
    (``"{genres} {metadata}."``) loses only its empty ones (all of it when all are empty), and
    if removing clauses would leave no text at all, only the placeholders go. Values are
    cleaned of chat-template tokens, the media marker and line breaks, so tags cannot steer
    the prompt format.
    """
    values = {"genres": _genres_text(genres), "metadata": _metadata_text(metadata)}
    clauses = [m.group(0) for m in _CLAUSE_RE.finditer(template) if m.group(0)]
    kept: list[str] = []
    for clause in clauses:
        names = _PLACEHOLDER_RE.findall(clause)
        empty = [n for n in names if not values[n]]
        if not empty:
            kept.append(clause)
        elif not _PLACEHOLDER_RE.sub("", clause).strip(" \t.!?;,:"):
            rest = _drop_placeholders(clause, empty)
            if _PLACEHOLDER_RE.search(rest):  # "{genres} {metadata}.": keep the known one
                kept.append(rest)
        # else: the clause is about an unknown value; it goes
    text = "".join(kept)
    if not _PLACEHOLDER_RE.sub("", text).strip():
        text = _drop_placeholders(template, [n for n, v in values.items() if not v])
    filled = _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], text)
    return _tidy(filled)


def _drop_placeholders(text: str, names: Sequence[str]) -> str:
    for name in names:
        text = text.replace("{" + name + "}", "")
    return text


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" +([.,;:!?])", r"\1", text)
    text = re.sub(r" *\n *", "\n", text)
    return text.strip()


def _clean_value(value: Any, limit: int = 120) -> str:
    text = _SPECIAL_TOKEN_RE.sub(" ", str(value)).replace(_MEDIA_MARKER, " ")
    text = re.sub(r"[\x00-\x1f\x7f{}]+", " ", text)
    return " ".join(text.split())[:limit].strip()


def genre_labels(
    genres: Sequence[str] | Mapping[str, float] | None, n: int = 3, min_probability: float = 0.1
) -> list[str]:
    """Readable genre labels: ``"Electronic---Techno"`` -> ``"techno"``, no repeats.

    A mapping gives its ``n`` most probable labels at ``min_probability`` or more (always at
    least the most probable one: mirflow.labels.top_labels, as the exports choose them); a
    list is taken in order. Each is cleaned for the prompt.
    """
    if genres is None:
        return []
    if isinstance(genres, Mapping):
        labels = top_labels(dict(genres), n, min_probability)
    elif isinstance(genres, str):
        labels = [genres]
    else:
        labels = [str(g) for g in genres]
    out: list[str] = []
    for label in labels:
        name = _clean_value(label.split("---")[-1].replace("_", " ")).lower()
        if name and name not in out:
            out.append(name)
    return out


def _genres_text(genres: Sequence[str] | Mapping[str, float] | None) -> str:
    return ", ".join(genre_labels(genres))


def _metadata_text(metadata: Mapping[str, Any] | None) -> str:
    if not metadata:
        return ""

    def get(key: str) -> Any:
        value = metadata.get(key)
        return metadata.get(f"track_metadata_{key}") if value in (None, "", []) else value

    parts = []
    year = get("year")
    if isinstance(year, (int, float)) and not isinstance(year, bool) and math.isfinite(year):
        parts.append(f"year {int(year)}")
    elif isinstance(year, str) and (found := re.search(r"\b\d{4}\b", year)):
        parts.append(f"year {found.group(0)}")
    label = get("label")
    if isinstance(label, str) and _clean_value(label):
        parts.append(f"label {_clean_value(label)}")
    tags = get("genre")
    if isinstance(tags, str):
        tags = re.split(r"\s*[;,/|]\s*", tags)
    if isinstance(tags, (list, tuple)):
        names: list[str] = []
        for tag in tags:
            name = _clean_value(tag).lower() if tag is not None else ""
            if name and name not in names:
                names.append(name)
        if names:
            parts.append(f"tagged genres: {', '.join(names[:5])}")
    return ", ".join(parts)


def prompt_fields(
    prompts: Mapping[str, str],
    genres: Sequence[str] | Mapping[str, float] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """``{"caption_prompt_{key}": filled prompt}``: the exact prompts, for the ``.INFO``."""
    return {f"caption_prompt_{k}": fill_prompt(t, genres, metadata) for k, t in prompts.items()}


def selected_for_caption(crop_id: str, fraction: float) -> bool:
    """Whether ``crop_id`` is in the captioned subset for ``fraction`` (0 to 1).

    The sha256 of the id, read as a number in [0, 1), is compared with ``fraction``: the same
    crops are chosen on every run, and raising the fraction only adds crops.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"sample_fraction must be between 0 and 1, not {fraction}")
    digest = hashlib.sha256(crop_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < fraction


# ------------------------------------------------------------ clean text ---


def clean_caption(text: str, prompt: str = "") -> str:
    """Generated text without chat-template residue, an echo of the prompt, or extra whitespace.

    Removes ``<think>...</think>`` blocks (and an unterminated ``<think>`` tail), special
    tokens like ``<|im_end|>``, ``<sound>`` and the media marker, a leading ``assistant``
    role line or ``Assistant:`` label, and the prompt when the text starts by repeating it;
    then joins all whitespace into single spaces.
    """
    text = re.sub(r"<think>.*?(?:</think>|$)", " ", text, flags=re.DOTALL | re.IGNORECASE)
    text = _SPECIAL_TOKEN_RE.sub(" ", text)
    text = re.sub(r"</?(?:sound|think)>|<__media__>", " ", text, flags=re.IGNORECASE)
    text = " ".join(text.split())
    while True:
        before = text
        text = re.sub(r"^(?:assistant|user|system)\b\s*:?\s*", "", text, flags=re.IGNORECASE)
        echo = " ".join(_SPECIAL_TOKEN_RE.sub(" ", prompt).replace(_MEDIA_MARKER, " ").split())
        if echo and text.lower().startswith(echo.lower()):
            text = text[len(echo) :].lstrip(" :-\n")
        if text == before:
            return text.strip()
