"""Durable quotas (articles 25, 34): items counted per window in the node's database.

Every node process on one database shares the counts, and they survive restarts. A window is a
row of ``quota_usage`` keyed by (kind, scope, window start)::

    kind                 scope         window                       limit
    grant_day            a grant id    one calendar day in China    the grant's items_per_day
    department_minute    a department  one minute (UTC)             the node's items per minute
    department_resource_day  department/resource/mode  one day in China  the resource's daily limit

``consume`` counts a request's items in one step that either takes all of them or none::

    UPDATE quota_usage SET used = used + :items
     WHERE kind = … AND scope = … AND window_start = … AND used + :items <= :limit
     RETURNING used                     -- a row: counted (the usual case, one statement)
    -- no row: the window is new, or the request does not fit; then
    INSERT INTO quota_usage (kind, scope, window_start, used) VALUES (…, 0) ON CONFLICT DO NOTHING
    UPDATE … (the same, once more)     -- still no row: it does not fit, nothing is counted

so no request runs an allowance into debt, and two processes can never both pass the limit: on
PostgreSQL the UPDATE locks the row and re-checks its condition on the committed value (READ
COMMITTED, the default); on SQLite ``make_engine`` opens every transaction with ``BEGIN IMMEDIATE``.
The caller owns the transaction (``with sessions.begin():``): a rolled-back transaction counts
nothing, and the row stays locked until it ends, so keep it short. A request that is counted against
several windows must consume them in one fixed order (department minute, department resource day,
then grant day) so two
transactions never wait on each other's rows.

``QuotaPruner`` deletes quota windows two days after they end: nothing reads a window once it is
over, and without pruning the table would grow by a row per department-minute.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import cast

from sqlalchemy import ColumnElement, Executable, Table, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from provider_node.core import errors
from provider_node.core.chores import Periodic
from provider_node.core.workdays import CHINA_TZ, as_utc, china_date, china_midnight
from provider_node.store.models import QuotaUsage

__all__ = [
    "QUOTA_WINDOWS_KEPT",
    "Allowance",
    "QuotaExceededError",
    "QuotaKind",
    "QuotaPruner",
    "consume",
    "consume_department_minute",
    "consume_department_resource_day",
    "consume_grant_day",
    "peek",
    "prune",
    "window_start",
]

QuotaExceededError = errors.QuotaExceededError

#: Far above any real limit; keeps ``used + items`` well inside a 64-bit column.
_MAX_ITEMS = 2**40
_MAX_SCOPE = 128


class QuotaKind(StrEnum):
    """What a window limits, and how long it lasts."""

    #: Items compared under one grant per calendar day in China (the grant's ``items_per_day``).
    GRANT_DAY = "grant_day"
    #: Items one department compares per minute on this node, whatever the resource.
    DEPARTMENT_MINUTE = "department_minute"
    #: Items one department compares against one resource per calendar day in China, granted or
    #: not: what bounds an enumeration of a resource shared unconditionally.
    DEPARTMENT_RESOURCE_DAY = "department_resource_day"

    @property
    def length(self) -> timedelta:
        # China keeps no daylight saving, so its day is always 24 hours.
        return timedelta(minutes=1) if self is QuotaKind.DEPARTMENT_MINUTE else timedelta(days=1)


@dataclass(frozen=True)
class Allowance:
    """A window's count after a request was taken (or as it stands, from ``peek``)."""

    kind: QuotaKind
    scope: str
    window_start: datetime
    limit: int
    used: int

    @property
    def remaining(self) -> int:
        """Items still allowed in this window (0 once the limit is reached or was lowered)."""
        return max(self.limit - self.used, 0)

    @property
    def resets_at(self) -> datetime:
        """When the next window opens (UTC)."""
        return self.window_start + self.kind.length


def window_start(kind: QuotaKind, now: datetime) -> datetime:
    """The start (UTC) of the ``kind`` window that contains ``now``.

    A grant's day starts at midnight in China (16:00 UTC the day before); a minute at second 0.
    """
    if kind is not QuotaKind.DEPARTMENT_MINUTE:
        return china_midnight(china_date(now))
    return as_utc(now).replace(second=0, microsecond=0)


def consume(
    session: Session,
    kind: QuotaKind,
    scope: str,
    window_start: datetime,
    limit: int,
    items: int,
    now: datetime,
) -> Allowance:
    """Count ``items`` against the window, or none of them if they do not all fit.

    ``window_start`` must be the start of the ``kind`` window containing ``now`` (see
    ``window_start``). Raises ``QuotaExceededError`` (RESOURCE_EXHAUSTED) stating what remains and
    when the window resets; ``ValueError`` for a limit or count that is not a positive integer.
    """
    kind = QuotaKind(kind)
    start = _check_window(kind, scope, window_start, now)
    _check_count("limit", limit)
    _check_count("items", items)
    # The window's row usually exists already: one UPDATE. Only when it takes nothing (no row
    # yet, or the request does not fit) is the row made and the UPDATE tried once more.
    used = _add(session, kind, scope, start, limit, items)
    if used is None:
        _insert_empty_window(session, kind, scope, start)
        used = _add(session, kind, scope, start, limit, items)
    if used is not None:
        return Allowance(kind, scope, start, limit, used)
    current = session.execute(select(QuotaUsage.used).where(*_window_key(kind, scope, start)))
    refused = Allowance(kind, scope, start, limit, current.scalar_one())
    raise QuotaExceededError(
        _refusal_message(refused, items, as_utc(now)),
        limit=limit,
        remaining=refused.remaining,
        requested=items,
        resets_at=refused.resets_at,
    )


def _add(
    session: Session, kind: QuotaKind, scope: str, start: datetime, limit: int, items: int
) -> int | None:
    """``items`` added to the window's row if they fit, returning the new count; else None."""
    used: int | None = session.execute(
        _ADD_IF_FITS,
        {"w_kind": kind.value, "w_scope": scope, "w_start": start, "items": items, "limit": limit},
    ).scalar_one_or_none()
    return used


def consume_grant_day(
    session: Session, grant_id: str, items_per_day: int, items: int, now: datetime
) -> Allowance:
    """``consume`` against the grant's quota for today (a calendar day in China)."""
    kind = QuotaKind.GRANT_DAY
    return consume(session, kind, grant_id, window_start(kind, now), items_per_day, items, now)


def consume_department_resource_day(
    session: Session, scope: str, items_per_day: int, items: int, now: datetime
) -> Allowance:
    """``consume`` against a department's daily limit on one resource (``scope``:
    department/resource/mode), a calendar day in China."""
    kind = QuotaKind.DEPARTMENT_RESOURCE_DAY
    return consume(session, kind, scope, window_start(kind, now), items_per_day, items, now)


def consume_department_minute(
    session: Session, department: str, items_per_minute: int, items: int, now: datetime
) -> Allowance:
    """``consume`` against the department's per-minute limit on this node."""
    kind = QuotaKind.DEPARTMENT_MINUTE
    return consume(session, kind, department, window_start(kind, now), items_per_minute, items, now)


def peek(session: Session, kind: QuotaKind, scope: str, limit: int, now: datetime) -> Allowance:
    """The window containing ``now`` as it stands, counting nothing (for catalogs and metrics)."""
    kind = QuotaKind(kind)
    start = window_start(kind, now)
    _check_window(kind, scope, start, now)
    used = session.scalar(select(QuotaUsage.used).where(*_window_key(kind, scope, start)))
    return Allowance(kind, scope, start, limit, used or 0)


def prune(session: Session, before: datetime) -> int:
    """Delete the windows that ended at or before ``before``; returns how many were deleted.

    A window still open at ``before`` is never deleted, whatever its kind.
    """
    before = as_utc(before)
    deleted = 0
    for kind in QuotaKind:
        result = session.execute(
            delete(QuotaUsage).where(
                QuotaUsage.kind == kind.value, QuotaUsage.window_start <= before - kind.length
            ),
            execution_options={"synchronize_session": False},
        )
        deleted += result.rowcount  # type: ignore[attr-defined]
    return deleted


_USAGE = cast(Table, QuotaUsage.__table__)
# Built once with bound parameters (the window as ``_window_key`` names it): a charge runs in
# every request's transaction, and building the statement anew each time cost more CPU than
# running it.
_ADD_IF_FITS = (
    update(_USAGE)
    .where(
        _USAGE.c.kind == bindparam("w_kind"),
        _USAGE.c.scope == bindparam("w_scope"),
        _USAGE.c.window_start == bindparam("w_start"),
        _USAGE.c.used + bindparam("items") <= bindparam("limit"),
    )
    .values(used=_USAGE.c.used + bindparam("items"))
    .returning(_USAGE.c.used)
)


def _insert_empty_window(session: Session, kind: QuotaKind, scope: str, start: datetime) -> None:
    row = {"kind": kind.value, "scope": scope, "window_start": start, "used": 0}
    key = ["kind", "scope", "window_start"]
    dialect = session.get_bind().dialect.name
    statement: Executable
    if dialect == "postgresql":
        statement = (
            postgresql.insert(QuotaUsage).values(row).on_conflict_do_nothing(index_elements=key)
        )
    elif dialect == "sqlite":
        statement = sqlite.insert(QuotaUsage).values(row).on_conflict_do_nothing(index_elements=key)
    else:
        raise NotImplementedError(f"durable quotas need PostgreSQL or SQLite, not {dialect}")
    session.execute(statement)


def _window_key(kind: QuotaKind, scope: str, start: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        QuotaUsage.kind == kind.value,
        QuotaUsage.scope == scope,
        QuotaUsage.window_start == start,
    )


def _check_window(kind: QuotaKind, scope: str, start: datetime, now: datetime) -> datetime:
    if not scope or len(scope) > _MAX_SCOPE or "\x00" in scope:
        raise ValueError(f"a quota scope is 1 to {_MAX_SCOPE} characters")
    start, now = as_utc(start), as_utc(now)
    if start != window_start(kind, start):
        raise ValueError(f"{start.isoformat()} is not the start of a {kind.value} window")
    if not start <= now < start + kind.length:
        raise ValueError(f"now ({now.isoformat()}) is outside the {kind.value} window given")
    return start


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_ITEMS:
        raise ValueError(f"{name} must be a positive whole number of items")


def _refusal_message(window: Allowance, items: int, now: datetime) -> str:
    if window.kind is QuotaKind.GRANT_DAY:
        whose, per, period = f"grant {window.scope}", "per day (China time)", "day"
    else:
        whose, per, period = f"department {window.scope}", "per minute on this node", "minute"
    resets = window.resets_at.astimezone(CHINA_TZ).isoformat(timespec="seconds")
    message = (
        f"{whose} may compare {window.limit} items {per}; {window.remaining} remain in this "
        f"{period} and this request has {items}, so none of it was counted. "
        f"The allowance resets at {resets} (in {_duration(window.resets_at - now)})"
    )
    if items > window.limit:
        return f"{message}; at most {window.limit} items fit in one {period}: split the batch"
    return message


def _duration(wait: timedelta) -> str:
    seconds = max(wait.total_seconds(), 0.0)
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


_log = logging.getLogger(__name__)

#: How long a quota window is kept after it ends.
QUOTA_WINDOWS_KEPT = timedelta(days=2)


class QuotaPruner(Periodic):
    """Deletes the quota windows that ended ``keep`` or more before the node's ``clock``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Callable[[], datetime],
        interval: float = 3600.0,
        keep: timedelta = QUOTA_WINDOWS_KEPT,
    ) -> None:
        def run() -> None:
            with sessions.begin() as session:
                deleted = prune(session, clock() - keep)
            _log.debug("deleted %d quota windows older than %s", deleted, keep)

        super().__init__("bidui-quota-pruner", "delete old quota windows", run, interval)
