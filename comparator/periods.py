"""ISO 8601 durations, as a catalog states a resource's update period (articles 8, 23): the one
parser for the node's configuration, its metrics and the requester's CLI alike."""

from __future__ import annotations

import re

__all__ = ["DURATION_RE", "duration_seconds"]

#: ISO 8601 duration, e.g. P1D, PT12H, P1M.
DURATION_RE = re.compile(r"P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?")


def duration_seconds(text: str) -> float:
    """An ISO 8601 duration (``DURATION_RE``) in seconds, a year counted as 365 days and a month
    as 30: for comparing an index's age with its resource's ``update_period``. ``ValueError`` for
    anything else."""
    found = DURATION_RE.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not an ISO 8601 duration (e.g. P1D)")
    parts = found.groups()
    years, months, weeks, days, hours, minutes, seconds = (
        int(part[:-1]) if part else 0 for part in (*parts[:4], *parts[5:])
    )
    days += 365 * years + 30 * months + 7 * weeks
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
