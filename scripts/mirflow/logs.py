"""Send a job's logging, warnings and uncaught tracebacks to its log file."""

from __future__ import annotations

import errno
import logging
import os
import sys
import traceback


def log_to_file(path: str | os.PathLike) -> logging.Logger:
    """Configure the root logger: everything to ``path``, warnings also to stderr.

    Uncaught exceptions are written to the log too, so a failed job's log
    always says why it failed.
    """
    handlers: list[logging.Handler] = [logging.FileHandler(path, mode="w", encoding="utf-8")]
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)  # the terminal hears only what needs attention
    handlers.append(console)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    logger = logging.getLogger("mirflow")

    def excepthook(kind, value, tb):
        logger.error("".join(traceback.format_exception(kind, value, tb)).rstrip())
        if advice := environment_advice(value):
            logger.error(advice)

    sys.excepthook = excepthook
    return logger


#: Errors of the machine, not of a track: what the user reads, and can do.
_ENVIRONMENT_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the output is on a read-only file system",
    errno.EACCES: "the output cannot be written (permission denied)",
}


def environment_advice(error: BaseException) -> str:
    """One line for an error of the machine (disk full, read-only output):
    what is wrong, and that a re-run after fixing it needs no cleaning.
    '' for anything else."""
    if not isinstance(error, OSError) or error.errno not in _ENVIRONMENT_ERRORS:
        return ""
    where = f" ({error.filename})" if error.filename else ""
    return (
        f"mirflow: {_ENVIRONMENT_ERRORS[error.errno]}{where}: fix that, then run again; "
        "what finished is kept and nothing needs cleaning by hand"
    )
