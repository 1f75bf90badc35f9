"""Logging setup and a periodic progress line (rate and ETA) that reads well in a rule's log file."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr (rules redirect it into their ``log:`` file)."""
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)


class Progress:
    """Counts work done and logs ``desc: done/total (pct) rate/s ETA`` at most every ``interval`` seconds.

    Used instead of a terminal progress bar because rule logs are files: one line per interval stays
    readable there, and the final line gives the total wall time.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "it", logger: logging.Logger | None = None,
                 interval: float = 5.0) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.logger = logger or logging.getLogger("mgfm.progress")
        self.interval = interval
        self.done = 0
        self.start = time.perf_counter()
        self._last = self.start

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            self.logger.info(self._line(now))

    def close(self) -> None:
        self.logger.info(self._line(time.perf_counter(), final=True))

    def _line(self, now: float, final: bool = False) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        if final:
            return f"{self.desc}: {self.done} {self.unit} in {elapsed:.1f}s ({rate:.1f} {self.unit}/s)"
        if self.total:
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            return (f"{self.desc}: {self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%) "
                    f"{rate:.1f} {self.unit}/s ETA {eta:.0f}s")
        return f"{self.desc}: {self.done} {self.unit} {rate:.1f} {self.unit}/s"


def progress(items: Iterable[T], total: int | None, desc: str, unit: str = "it",
             logger: logging.Logger | None = None, interval: float = 5.0) -> Iterator[T]:
    """Iterate ``items`` while logging progress lines; logs a final summary line."""
    bar = Progress(total, desc, unit, logger, interval)
    for item in items:
        yield item
        bar.update()
    bar.close()
