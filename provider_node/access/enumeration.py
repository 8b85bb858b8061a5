"""A run shaped like an enumeration, seen: many items from one department against one resource in
a day, almost none of them present.

A department checking its own records finds most of them (its clients are the city's residents);
one walking the space of plausible ID numbers to rebuild the provider's member list finds almost
none. ``EnumerationWatch`` counts, per node process, each department's items and matches per
resource and day in China; once the day's items reach ``threshold`` with a match rate below
``max_match_rate``, it says so once that day: a warning in the operations log naming the
department, the resource and the counts, and ``bidui_enumeration_suspected_total``. The daily
limit (``ItemsPerDay``) caps such a run; this is what tells the operator to look at it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date, datetime

from provider_node.core.workdays import china_date

__all__ = ["EnumerationWatch"]

_log = logging.getLogger(__name__)


class EnumerationWatch:
    """Thread-safe; ``flagged(department, resource)`` is called once per flagged day."""

    def __init__(
        self,
        flagged: Callable[[str, str], None],
        *,
        clock: Callable[[], datetime],
        threshold: int = 100_000,
        max_match_rate: float = 0.001,
    ) -> None:
        self._flagged = flagged
        self._clock = clock
        self.threshold = threshold
        self.max_match_rate = max_match_rate
        self._day: date | None = None
        # (department, resource) -> [items, matches, flagged today]
        self._runs: dict[tuple[str, str], list[int]] = {}
        self._lock = threading.Lock()

    def record(self, department: str, resource: str, items: int, matches: int) -> bool:
        """Count an answered comparison; True if this one made the day's run suspect."""
        if not self.threshold or not department:
            return False
        today = china_date(self._clock())
        with self._lock:
            if today != self._day:
                self._day, self._runs = today, {}
            run = self._runs.setdefault((department, resource), [0, 0, 0])
            run[0] += items
            run[1] += matches
            suspect = (
                not run[2] and run[0] >= self.threshold and run[1] < self.max_match_rate * run[0]
            )
            if suspect:
                run[2] = 1
            seen, found = run[0], run[1]
        if suspect:
            _log.warning(
                "%s compared %d items against %s today (China time) and %d matched (%.3f%%): a "
                "run shaped like an enumeration of the resource; check its purpose in the audit "
                "log (bidui audit export) and, if it has none, revoke its access",
                department,
                seen,
                resource,
                found,
                100.0 * found / seen,
            )
            self._flagged(department, resource)
        return suspect
