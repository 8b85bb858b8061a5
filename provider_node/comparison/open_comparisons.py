"""Blinded comparisons opened and never closed: each ends as ``abandoned`` in the audit log.

Step 1 of a blinded comparison commits an ``opened`` record (its ``related_id`` is the comparison's
id) before any evaluation leaves the node; step 2 commits the comparison's own record under that id.
A comparison whose second step never comes — its session expired, the node stopped or crashed, or
the store was down when the session expired — is closed by an ``abandoned`` record under the same
id, written before the session is forgotten and retried until it is written:

    in memory   expired sessions, and every session at a graceful stop   (``close``)
    in the log  opened records older than the session lifetime without a record of their
                comparison, e.g. after kill -9; checked at start and then periodically by
                every node process sharing the database                  (``reconcile``)

The comparison id is unique in the audit table, so of two processes closing the same comparison
exactly one record is written; ``close`` checks first, inside the same transaction.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Container
from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased

from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.core.vocabulary import Outcome
from provider_node.store.models import AuditRecord

__all__ = [
    "ComparisonStates",
    "close",
    "comparison_states",
    "reconcile",
    "recorded",
    "unclosed_openings",
]

ABANDONED_STATUS = "DEADLINE_EXCEEDED"


def recorded(session: Session, comparison_id: str) -> bool:
    """Whether the log holds a record under ``comparison_id`` (unique in the audit table)."""
    found = session.scalar(
        select(AuditRecord.seq).where(AuditRecord.comparison_id == comparison_id)
    )
    return found is not None


def close(audit: AuditLog, entry: AuditEntry) -> bool:
    """Commit ``entry`` (a comparison's own record) unless that comparison already has one.

    Returns True if this call wrote it. Raises ``AuditUnavailableError`` if the store is down:
    the caller keeps what it knows and tries again later.
    """
    return (
        audit.append_unless(
            lambda session: None if recorded(session, entry.comparison_id) else entry
        )
        is not None
    )


def unclosed_openings(session: Session, before: _dt.datetime) -> list[AuditRecord]:
    """``opened`` records older than ``before`` whose comparison has no record of its own."""
    own = aliased(AuditRecord)
    return list(
        session.scalars(
            select(AuditRecord)
            .where(
                AuditRecord.outcome == Outcome.OPENED,
                AuditRecord.occurred_at < before,
                ~exists().where(own.comparison_id == AuditRecord.related_id),
            )
            .order_by(AuditRecord.seq)
        )
    )


def reconcile(audit: AuditLog, before: _dt.datetime, *, open_here: Container[str] = ()) -> int:
    """Close every comparison opened before ``before`` and never closed; returns how many.

    ``open_here`` are the comparisons this process still holds open (closed by ``close`` when
    their sessions expire, not here).
    """
    with audit.sessions() as session:
        openings = [r for r in unclosed_openings(session, before) if r.related_id not in open_here]
        session.expunge_all()
    closed = 0
    for opening in openings:
        closed += close(
            audit,
            AuditEntry(
                action=opening.action,
                outcome=Outcome.ABANDONED,
                status_code=ABANDONED_STATUS,
                requester=opening.requester,
                cert_fingerprint=opening.cert_fingerprint,
                cert_serial=opening.cert_serial,
                grant_id=opening.grant_id,
                resource_id=opening.resource_id,
                comparison_key=opening.comparison_key,
                mode=opening.mode,
                purpose=opening.purpose,
                item_count=opening.item_count,
                # An opening's reason states a verification's or count's answer: kept first.
                reason=(opening.reason + "; " if opening.reason else "")
                + (
                    "found open in the audit log (the node that opened it stopped or crashed, "
                    "or could not record the end): finalized outputs never arrived"
                ),
                request_id=opening.request_id,
                payload_sha256=opening.payload_sha256,
                comparison_id=opening.related_id,
            ),
        )
    return closed


@dataclass(frozen=True)
class ComparisonStates:
    """What ``bidui audit verify`` and the quarterly report say about blinded comparisons."""

    open: int  # opened, not (yet) closed: waiting for step 2, or for a reaper to abandon them
    abandoned: int
    withheld: int  # answers whose record committed after the node's deadline: never sent


def comparison_states(session: Session) -> ComparisonStates:
    own = aliased(AuditRecord)
    open_count = session.scalar(
        select(func.count())
        .select_from(AuditRecord)
        .where(
            AuditRecord.outcome == Outcome.OPENED,
            ~exists().where(own.comparison_id == AuditRecord.related_id),
        )
    )
    abandoned = session.scalar(
        select(func.count())
        .select_from(AuditRecord)
        .where(AuditRecord.outcome == Outcome.ABANDONED)
    )
    withheld = session.scalar(
        select(func.count())
        .select_from(AuditRecord)
        .where(AuditRecord.outcome == Outcome.FAILED, AuditRecord.related_id != "")
    )
    return ComparisonStates(open_count or 0, abandoned or 0, withheld or 0)
