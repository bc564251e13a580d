"""Exceptions that say a track's *content* is bad, as opposed to a bug or an
environment fault (disk full, missing model).

A stage that meets a ``TrackError`` records the track as failed, with the
message as its cause, and the run goes on; anything else fails the job so the
user sees it and a re-run retries it.
"""


class TrackError(Exception):
    """The track cannot be processed; the message is the cause a user reads."""


class AudioDecodeError(TrackError):
    """The file is not audio we can decode (corrupt, truncated, unsupported)."""


#: How a ModelNotFoundError's message ends: the command that fetches the weights.
MAKE_MODELS = "run `make models` (downloads and checks the official weights)"


class ModelNotFoundError(Exception):
    """A model file is not in models/ (or cannot be used): the message names it
    and the download command. Not a TrackError: no track can go on without it."""
