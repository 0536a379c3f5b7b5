"""Progress of long steps (reading large files, pattern search, ranking) as log lines.

Lines go through ``logging`` (logger ``car.progress``), so Hydra shows them on the console and
keeps them in ``train.log``; a step logs at most one line every ``LOG_EVERY_S`` seconds, and a
step that ends sooner logs nothing, e.g.::

    reading alerts.csv.gz: 45.1 M of 100.0 M bytes (45%), 9.0 M bytes/s; 1.2 M lines
    reading alerts.csv.gz: done, 100.0 M bytes in 11.1 s (9.0 M bytes/s); 2.7 M lines
"""

from __future__ import annotations

import logging
from time import monotonic
from types import TracebackType

log = logging.getLogger(__name__)

LOG_EVERY_S = 5.0
# A step done in one call (e.g. pandas parsing a file) cannot report while it runs: from this
# input size on it logs a line when it starts, so that a long silence is explained.
ANNOUNCE_BYTES = 64 << 20
_PREFIXES = ((1e9, " G"), (1e6, " M"), (1e3, " k"))


def quantity(n: int, noun: str) -> str:
    """``n`` with ``noun`` in the singular or plural: ``1 time``, ``2 times``, ``1,000 new values``."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def amount(value: float) -> str:
    """A count for a log line: ``950``, ``12.3 k``, ``1.2 M``, ``3.4 G``."""
    for size, prefix in _PREFIXES:
        if abs(value) >= size:
            return f"{value / size:.1f}{prefix}"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2g}"


class Progress:
    """One long step: ``update`` it with the work done so far; it logs now and then.

    task: what is done, e.g. ``reading alerts.csv``; total: the work to do in ``unit`` (None if
    unknown: no percentage). announce: log a line at the start (a step done in one call).
    As a context manager it logs a closing line with the total and rate when the step has
    logged anything or lasted ``LOG_EVERY_S`` seconds; nothing when it fails.
    """

    def __init__(self, task: str, total: float | None = None, unit: str = "rows", announce: bool = False) -> None:
        self.task, self.total, self.unit = task, total, unit
        self.done, self.note = 0.0, ""
        self.start = self.last = monotonic()
        self.logged = announce
        if announce:
            log.info("%s: started%s", task, f", {amount(total)} {unit}" if total is not None else "")

    def update(self, done: float, note: str = "") -> None:
        """Record ``done`` units of work so far (and a detail ``note``); log if it is time."""
        self.done, self.note = done, note
        now = monotonic()
        if now - self.last >= LOG_EVERY_S:
            self.last, self.logged = now, True
            log.info("%s: %s", self.task, self._status(now))

    def _status(self, now: float) -> str:
        rate = f"{amount(self.done / max(now - self.start, 1e-9))} {self.unit}/s"
        if self.total:
            share = f"{amount(self.done)} of {amount(self.total)} {self.unit} ({100 * self.done / self.total:.0f}%)"
        else:
            share = f"{amount(self.done)} {self.unit}"
        return f"{share}, {rate}" + (f"; {self.note}" if self.note else "")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        now = monotonic()
        if kind is None and (self.logged or now - self.start >= LOG_EVERY_S):
            seconds = now - self.start
            rate = amount(self.done / max(seconds, 1e-9))
            note = f"; {self.note}" if self.note else ""
            log.info("%s: done, %s %s in %.1f s (%s %s/s)%s", self.task, amount(self.done), self.unit, seconds,
                     rate, self.unit, note)
