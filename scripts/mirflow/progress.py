"""Progress of a long job as plain lines: done of total, rate, time left.

A batch job (separation, a model pass, the features) may run for an hour over
thousands of crops. :class:`Progress` is a tqdm bar that, instead of redrawing
a terminal line, writes a whole line at most every ``interval`` seconds (and
once at the end) to the ``mirflow.progress`` logger: the job's log file (see
mirflow.logs) and stderr, which Snakemake shows on the console and SLURM keeps
in the job's log. Plain lines keep both readable; tqdm's counting gives the
rate and the estimate.

The interval is ``MIRFLOW_PROGRESS_INTERVAL`` seconds (30 by default): an
environment variable rather than a config key, so changing it never makes
Snakemake re-run a job.
"""

from __future__ import annotations

import logging
import os
import sys

from tqdm import tqdm

log = logging.getLogger("mirflow.progress")

#: Seconds between two progress lines of a job.
DEFAULT_INTERVAL_S = 30.0
BAR_FORMAT = (
    "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {rate_fmt}, "
    "{elapsed} elapsed, {remaining} left"
)


def interval_s() -> float:
    """The configured seconds between lines (``MIRFLOW_PROGRESS_INTERVAL``)."""
    try:
        return max(0.0, float(os.environ.get("MIRFLOW_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def _console() -> None:
    """Progress lines reach stderr too (once), whatever the root logger's
    console level: they are what the user watches."""
    if not any(getattr(h, "_mirflow_progress", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        handler._mirflow_progress = True  # noqa: SLF001
        log.addHandler(handler)
        log.setLevel(logging.INFO)


class _Nowhere:
    """tqdm's own output (a redrawn bar, a closing carriage return) goes
    nowhere: the lines go through the logger."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class Progress(tqdm):
    """``with Progress(total, "aesthetics b1f2", unit="crops") as bar: bar.update()``.

    Lines look like ``aesthetics b1f2: 120/800 crops (15%), 3.92 crops/s,
    00:30 elapsed, 02:53 left``.
    """

    monitor_interval = 0  # no monitor thread: lines come from update() and close()

    def __init__(self, total: int, desc: str, unit: str = "crops", interval: float | None = None):
        _console()
        every = interval_s() if interval is None else interval
        self._shown = -1  # the count last written (tqdm displays from __init__ on)
        super().__init__(
            total=total,
            desc=desc,
            unit=unit,
            mininterval=every,
            maxinterval=max(every, 1.0),
            miniters=1,
            bar_format=BAR_FORMAT,
            file=_Nowhere(),
            disable=False,
            leave=False,
            dynamic_ncols=False,
        )

    def display(self, msg: str | None = None, pos: int | None = None) -> None:  # noqa: ARG002
        # A line per display, not a redrawn bar; none for the empty start.
        if self.n == self._shown or (self.n == 0 and self.total):
            return
        self._shown = self.n
        log.info(self.format_meter(**self.format_dict))

    def close(self) -> None:
        if not self.disable and self.n != getattr(self, "_shown", self.n):
            self.display()
        super().close()
