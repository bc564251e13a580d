"""Send a job's logging, warnings and uncaught tracebacks to its log file."""

from __future__ import annotations

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

    sys.excepthook = excepthook
    return logger
