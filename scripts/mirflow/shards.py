"""Shards of a library: which tracks one run takes (``--config shard=I/N``).

A track belongs to shard ``crc32(track id) % N``: the same track is always in
the same shard however the library grows, so adding an album adds work to the
shards its tracks fall in and leaves the others' plans as they were.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

#: ``shard: merge`` builds the library-wide outputs from what the shards finished.
MERGE = "merge"
SHARD_PATTERN = re.compile(r"(\d+)/(\d+)")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __contains__(self, track: str) -> bool:
        return shard_of(track, self.count) == self.index

    @property
    def name(self) -> str:
        """A file-name-safe label, e.g. ``shard-3-of-16``."""
        return f"shard-{self.index}-of-{self.count}"


def shard_of(track: str, count: int) -> int:
    """The shard (``0 .. count - 1``) a track id belongs to."""
    return zlib.crc32(track.encode("utf-8")) % count


def parse_shard(spec: str | None) -> Shard | str | None:
    """``None`` (the whole library), :data:`MERGE`, or the :class:`Shard` of ``"I/N"``."""
    if spec is None or spec == MERGE:
        return spec
    match = SHARD_PATTERN.fullmatch(str(spec).strip())
    if not match:
        raise ValueError(f"shard must be I/N (e.g. 0/16) or {MERGE!r}, not {spec!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise ValueError(f"shard {spec}: I must be 0 .. N-1 and N at least 1")
    return Shard(index, count)
