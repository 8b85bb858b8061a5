"""Who may compare what, and how much (articles 24, 25, 31, 34).

``permit`` decides whether a department may compare against a resource with a comparison key, a
mode and an answer (match bits, verification, count: each its own permission): ``not_shared``
never; ``unconditional`` for every identified department, for the answers the resource offers;
``conditional`` only under a grant that covers the key, the mode and the answer today (the audit
record names it).
``charge`` then counts the request's items against the department's per-minute limit and the
grant's items per day, in the node's database, so the counts are shared by every node process and
survive restarts. A request that does not fit is refused whole, with what remains and when it
resets; nothing of it is counted.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from provider_node.access.quotas import (
    consume_department_minute,
    consume_department_resource_day,
    consume_grant_day,
)
from provider_node.core import errors
from provider_node.core.errors import quote
from provider_node.core.messages import Header
from provider_node.core.vocabulary import ComparisonMode as Mode
from provider_node.core.vocabulary import SharingType
from provider_node.core.workdays import china_date
from provider_node.governance.grant_lookup import find_grant, get_grant
from provider_node.identity.auth import Caller
from provider_node.resources.catalog import ServedResource, index_mode
from provider_node.store.gate import StoreGate
from provider_node.store.models import Grant

__all__ = ["AccessPolicy", "ItemsPerDay", "ItemsPerMinute"]


@dataclass(frozen=True)
class ItemsPerMinute:
    """Per-department limits, one per mode: a hashed item costs the node far less than a blinded
    one, so one number for both would either starve hashed comparisons or not protect blinded
    capacity. 0 means no limit."""

    hashed: int
    blinded: int

    def of(self, mode: Mode) -> int:
        return self.hashed if mode is Mode.HASHED else self.blinded


@dataclass(frozen=True)
class ItemsPerDay:
    """A department's items per calendar day in China on one resource, one per mode, granted or
    not: an unconditional resource's member list cannot be rebuilt by enumeration in days (the
    plausible resident-ID space, ~2.6e8, takes months at the defaults). 0 means no limit."""

    hashed: int
    blinded: int

    def of(self, mode: Mode) -> int:
        return self.hashed if mode is Mode.HASHED else self.blinded


class AccessPolicy:
    """Sharing type, grant and allowance checks; thread-safe (a session per call)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        items_per_minute: ItemsPerMinute,
        *,
        gate: StoreGate | None = None,
        clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
        items_per_day: Mapping[str, ItemsPerDay] | None = None,
    ) -> None:
        self._sessions = sessions
        self._per_minute = items_per_minute
        # By resource id; a resource not named has no daily limit.
        self._per_day = dict(items_per_day or {})
        self._gate = gate or StoreGate()
        self._clock = clock

    def permit(
        self,
        caller: Caller,
        served: ServedResource,
        header: Header,
        mode: Mode,
        *,
        any_answer: bool = False,
    ) -> str:
        """Raise unless ``caller`` may compare this way; returns the grant relied on, or "".

        ``any_answer``: whatever ``header.answer`` says, allow what some answer allows (the
        hashed-mode key serves every answer).
        """
        resource = served.resource
        if resource.sharing_type is SharingType.NOT_SHARED:
            raise errors.NotSharedError(
                f"resource {quote(resource.id)} is catalogued as not shared (article 24): "
                "it is never compared"
            )
        if header.comparison_key not in resource.comparison_keys:
            offered = ", ".join(sorted(resource.comparison_keys))
            raise errors.UnknownResourceError(
                f"resource {quote(resource.id)} has no comparison key "
                f"{quote(header.comparison_key)} (offered: {offered})"
            )
        if mode not in resource.modes:
            raise errors.ModeNotOfferedError(
                f"resource {quote(resource.id)} does not offer {mode} comparisons "
                f"(modes: {', '.join(resource.modes)})"
            )
        if mode is Mode.BLINDED and not resource.offers_oprf(header.verifiable):
            wanted = "voprf" if header.verifiable else "oprf"
            offered = ", ".join(resource.offered_oprf_modes)
            raise errors.ModeNotOfferedError(
                f"resource {quote(resource.id)} does not offer blinded comparisons in RFC 9497 "
                f"mode {wanted} (offered: {offered}); set verifiable to "
                f"{'false' if header.verifiable else 'true'}"
            )
        if (header.comparison_key, index_mode(mode, header.verifiable)) not in served.indexes:
            raise errors.ModeNotOfferedError(
                f"resource {quote(resource.id)} does not offer {mode} comparisons"
            )
        answer = None if any_answer else header.answer
        if not any_answer and header.answer not in resource.answers:
            offered = ", ".join(resource.answers)
            raise errors.AnswerNotOfferedError(
                f"resource {quote(resource.id)} does not answer {header.answer or 'unknown'} "
                f"comparisons (it answers: {offered})"
            )
        if resource.sharing_type is not SharingType.CONDITIONAL:
            return ""
        return self._gate.run(
            lambda: self._grant(caller, resource.id, header, mode, answer), owner=caller.department
        )

    def _grant(
        self, caller: Caller, resource_id: str, header: Header, mode: Mode, answer: str | None
    ) -> str:
        today = china_date(self._clock())
        with self._store() as session:
            grant = find_grant(
                session, caller.department, resource_id, header.comparison_key, mode, today, answer
            )
            if not header.grant_id or header.grant_id == grant.id:
                return grant.id
            # The department named one of its grants: that one must cover the comparison.
            # One answer for "no such grant" and "another department's": nothing tells them apart.
            missing = errors.UnknownRecordError(
                f"no grant {quote(header.grant_id)} of your department on {quote(resource_id)}"
            )
            try:
                named = get_grant(session, header.grant_id)
            except (errors.InvalidRequestError, errors.UnknownRecordError):
                raise missing from None
            if named.department != caller.department or named.resource_id != resource_id:
                raise missing
            if not _covers(named, header.comparison_key, mode, today, answer):
                raise errors.NotGrantedError(
                    f"grant {quote(named.id)} does not cover {mode} comparisons by "
                    f"{quote(header.comparison_key)} today; grant {grant.id} does"
                )
            return named.id

    def charge(
        self, caller: Caller, mode: Mode, grant_id: str, items: int, resource_id: str = ""
    ) -> Callable[[Session], None] | None:
        """The allowance charge of one request — ``items`` against the department's minute, its
        day on the resource and the grant's day, or ``QuotaExceededError`` and nothing counted —
        to run inside the transaction that commits the request's audit record (one commit, one
        fsync, for all). None when nothing limits the request."""
        per_minute = self._per_minute.of(mode)
        daily = self._per_day.get(resource_id)
        per_day = daily.of(mode) if daily is not None else 0
        if not per_minute and not per_day and not grant_id:
            return None
        now = self._clock()

        def charge(session: Session) -> None:
            # Fixed order (department minute, department resource day, grant day, then the audit
            # chain head): two transactions never wait on each other's rows.
            if per_minute:
                scope = f"{caller.department}/{mode}"
                consume_department_minute(session, scope, per_minute, items, now)
            if per_day:
                scope = f"{caller.department}/{resource_id}/{mode}"
                consume_department_resource_day(session, scope, per_day, items, now)
            if grant_id:
                grant = get_grant(session, grant_id)
                consume_grant_day(session, grant_id, grant.items_per_day, items, now)

        return charge

    def _store(self) -> _Store:
        return _Store(self._sessions)


def _covers(grant: Grant, key: str, mode: Mode, today: _dt.date, answer: str | None) -> bool:
    return (
        key in grant.comparison_keys
        and mode in grant.modes
        and (answer is None or answer in grant.answers)
        and grant.revoked_at is None
        and grant.valid_from <= today <= grant.valid_until
    )


class _Store:
    """A session whose store failures become ``AuditUnavailableError``: fail closed."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._session = sessions()

    def __enter__(self) -> Session:
        return self._session

    def __exit__(self, kind: object, error: BaseException | None, _tb: object) -> None:
        self._session.close()
        if isinstance(error, SQLAlchemyError):
            raise errors.AuditUnavailableError(
                "the node's database cannot be read, so it cannot check grants and allowances; "
                "retry later"
            ) from error
