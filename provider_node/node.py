"""The provider's data service node (article 16): every check between a request and its answer.

``ProviderNode`` turns a request already decoded from protobuf into match bits, in this order::

    caller identity (auth.py) -> resource, key, mode, sharing type, key version
        -> item count and lengths -> lookup (or RFC 9497 BlindEvaluate)
        -> audit record committed (fail closed) -> metrics -> answer

Nothing here knows gRPC: refusals are ``provider_node.errors`` exceptions, which
``provider_node.status`` maps to status codes. Every refusal of a comparison is audited too.

Blinded mode takes two RPCs. Step 1 evaluates the blinded elements and opens a session; step 2
matches the finalized outputs and closes it with the comparison's one audit record. A session not
closed within ``session_seconds`` is audited as ``abandoned`` by ``reap_expired_sessions``.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from comparator.errors import InvalidInputError
from comparator.index import ENTRY_LENGTH, MatchIndex, pack_matches
from comparator.keyed_hash import TAG_LENGTH
from comparator.oprf import (
    ELEMENT_LENGTH,
    MAX_VERIFIABLE_BATCH,
    OUTPUT_LENGTH,
    Evaluation,
    VoprfServer,
)
from provider_node import errors
from provider_node.audit import AuditEntry, AuditLog
from provider_node.auth import Caller
from provider_node.metrics import NodeMetrics
from provider_node.resources import Resource

HASHED = "hashed"
BLINDED = "blinded"
MAX_PURPOSE_CHARS = 500
_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,64}$")


@dataclass(frozen=True)
class Header:
    """What every comparison states: resource, comparison key, purpose (articles 31, 32)."""

    resource_id: str
    comparison_key: str
    purpose: str
    request_id: str
    key_version: int


@dataclass
class ServedResource:
    """A catalogued resource with what the node needs to compare against it.

    ``hmac_key`` and the OPRF private key inside ``oprf_server`` are secrets: never logged.
    """

    resource: Resource
    oprf_server: VoprfServer
    oprf_public_key: bytes
    hmac_key: bytes = field(repr=False)
    indexes: dict[tuple[str, str], MatchIndex] = field(default_factory=dict)
    last_refresh: datetime | None = None


@dataclass(frozen=True)
class MatchOutcome:
    """The only thing a comparison returns: match bits aligned with the request."""

    match_bits: bytes
    item_count: int
    match_count: int
    comparison_id: str


@dataclass(frozen=True)
class BlindOutcome:
    comparison_id: str
    evaluation: Evaluation
    key_version: int


@dataclass
class _Session:
    caller: Caller
    header: Header
    item_count: int
    digest: hashlib._Hash
    started: float
    expires: float


class ProviderNode:
    """Answers comparisons for the resources it serves; thread-safe."""

    def __init__(
        self,
        resources: Mapping[str, ServedResource],
        audit: AuditLog,
        metrics: NodeMetrics,
        *,
        max_batch_items: int,
        session_seconds: float = 300.0,
        max_open_sessions: int = 1024,
        max_items_per_minute: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resources = dict(resources)
        self._audit = audit
        self._metrics = metrics
        self._max_batch_items = max_batch_items
        self._session_seconds = session_seconds
        self._max_open_sessions = max_open_sessions
        self._monotonic = monotonic
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._items_per_minute = max_items_per_minute
        # Per department: (tokens, when last refilled). A bucket may go into debt by one request,
        # so a single batch larger than the limit still passes, then the department waits.
        self._buckets: dict[str, tuple[float, float]] = {}

    # -- catalog -----------------------------------------------------------------------------

    @property
    def resources(self) -> Mapping[str, ServedResource]:
        return self._resources

    def describe(self, resource_id: str) -> ServedResource:
        served = self._resources.get(resource_id)
        if served is None:
            raise errors.UnknownResourceError(f"no resource {_quote(resource_id)} on this node")
        return served

    def hash_key(self, caller: Caller, resource_id: str, key_name: str) -> tuple[bytes, int]:
        """Hand the hashed-mode key to an authorised requester; audited as a governance action."""
        started = self._monotonic()
        header = Header(resource_id, key_name, "", "", 0)
        try:
            served = self._authorise(header, HASHED, check_version=False)
        except errors.NodeError as refusal:
            self._audit_refusal(caller, header, HASHED, 0, "", started, refusal, "hash_key_fetch")
            raise
        self._append(
            self._entry(
                caller,
                header,
                HASHED,
                0,
                0,
                "answered",
                "OK",
                "",
                "",
                started,
                str(uuid.uuid4()),
                "hash_key_fetch",
            )
        )
        return served.hmac_key, served.resource.key_version

    def refuse_unauthenticated(
        self, refusal: errors.UnauthenticatedError, action: str, resource_id: str = ""
    ) -> None:
        """Audit a request refused before any department could be named (article 34)."""
        caller = Caller("", refusal.cert_fingerprint, refusal.cert_serial)
        header = Header(resource_id, "", "", "", 0)
        self._audit_refusal(caller, header, "", 0, "", self._monotonic(), refusal, action)

    # -- hashed mode -------------------------------------------------------------------------

    def compare_hashed(self, caller: Caller, header: Header, tags: Sequence[bytes]) -> MatchOutcome:
        started = self._monotonic()
        digest = _payload_digest(tags)
        try:
            served = self._authorise(header, HASHED)
            self._check_items(tags, TAG_LENGTH, "tag")
            self._throttle(caller, len(tags))
            index = served.indexes[(header.comparison_key, HASHED)]
            mask = index.contains(tags)
        except errors.NodeError as refusal:
            self._audit_refusal(
                caller, header, HASHED, len(tags), digest.hexdigest(), started, refusal
            )
            raise
        return self._answer(caller, header, HASHED, mask, digest.hexdigest(), started)

    # -- blinded mode ------------------------------------------------------------------------

    def blind_evaluate(
        self, caller: Caller, header: Header, blinded: Sequence[bytes]
    ) -> BlindOutcome:
        """Step 1 of 2: RFC 9497 BlindEvaluate with a batched DLEQ proof; opens a session."""
        started = self._monotonic()
        self.reap_expired_sessions()
        digest = _payload_digest(blinded)
        try:
            served = self._authorise(header, BLINDED)
            # One DLEQ proof covers at most MAX_VERIFIABLE_BATCH items (RFC 9497 I2OSP(i, 2)).
            self._check_items(
                blinded,
                ELEMENT_LENGTH,
                "blinded element",
                limit=min(self._max_batch_items, MAX_VERIFIABLE_BATCH),
            )
            self._throttle(caller, len(blinded))
            with self._lock:
                if len(self._sessions) >= self._max_open_sessions:
                    raise errors.TooManySessionsError(
                        "too many blinded comparisons are open on this node; retry shortly"
                    )
            try:
                evaluation = served.oprf_server.blind_evaluate(blinded)
            except InvalidInputError as bad:
                raise errors.InvalidRequestError(str(bad)) from None
        except errors.NodeError as refusal:
            self._audit_refusal(
                caller, header, BLINDED, len(blinded), digest.hexdigest(), started, refusal
            )
            raise
        comparison_id = str(uuid.uuid4())
        session = _Session(
            caller=caller,
            header=header,
            item_count=len(blinded),
            digest=digest,
            started=started,
            expires=self._monotonic() + self._session_seconds,
        )
        with self._lock:
            self._sessions[comparison_id] = session
        return BlindOutcome(comparison_id, evaluation, served.resource.key_version)

    def match_blinded(
        self, caller: Caller, comparison_id: str, outputs: Sequence[bytes]
    ) -> MatchOutcome:
        """Step 2 of 2: match finalized outputs; the session closes whatever the outcome."""
        with self._lock:
            session = self._sessions.get(comparison_id)
            # Another department's session is reported exactly like a missing one.
            if session is not None and session.caller == caller:
                del self._sessions[comparison_id]
            else:
                session = None
        if session is None or session.expires < self._monotonic():
            refusal = errors.SessionExpiredError(
                f"no open blinded comparison {_quote(comparison_id)}: it expired, was already "
                "answered, or never opened; start again with BlindEvaluate"
            )
            header = session.header if session else Header("", "", "", "", 0)
            started = session.started if session else self._monotonic()
            self._audit_refusal(
                caller,
                header,
                BLINDED,
                len(outputs),
                "",
                started,
                refusal,
                comparison_id=comparison_id if session else "",
            )
            raise refusal
        header = session.header
        digest = _digest_more(session.digest, outputs)
        try:
            if len(outputs) != session.item_count:
                raise errors.InvalidRequestError(
                    f"{len(outputs)} outputs for {session.item_count} evaluated elements: "
                    "send one finalized output per blinded element, in order"
                )
            self._check_items(outputs, OUTPUT_LENGTH, "output")
            served = self.describe(header.resource_id)
            index = served.indexes[(header.comparison_key, BLINDED)]
            # The index keeps the first ENTRY_LENGTH bytes of each 64-byte PRF output.
            mask = index.contains([output[:ENTRY_LENGTH] for output in outputs])
        except errors.NodeError as refusal:
            self._audit_refusal(
                caller,
                header,
                BLINDED,
                len(outputs),
                digest.hexdigest(),
                session.started,
                refusal,
                comparison_id=comparison_id,
            )
            raise
        return self._answer(
            caller,
            header,
            BLINDED,
            mask,
            digest.hexdigest(),
            session.started,
            comparison_id=comparison_id,
        )

    def reap_expired_sessions(self) -> int:
        """Audit blinded comparisons whose second step never came; returns how many."""
        now = self._monotonic()
        with self._lock:
            expired = {cid: s for cid, s in self._sessions.items() if s.expires < now}
            for cid in expired:
                del self._sessions[cid]
        for cid, session in expired.items():
            self._append(
                self._entry(
                    session.caller,
                    session.header,
                    BLINDED,
                    session.item_count,
                    0,
                    "abandoned",
                    "DEADLINE_EXCEEDED",
                    "finalized outputs never arrived within the session lifetime",
                    session.digest.hexdigest(),
                    session.started,
                    cid,
                ),
            )
            self._metrics.record_comparison(
                requester=session.caller.department,
                resource=session.header.resource_id,
                mode=BLINDED,
                outcome="abandoned",
                items=session.item_count,
                matches=0,
            )
        return len(expired)

    @property
    def open_sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

    # -- shared steps ------------------------------------------------------------------------

    def _authorise(
        self, header: Header, mode: str, *, check_version: bool = True
    ) -> ServedResource:
        served = self.describe(header.resource_id)
        resource = served.resource
        if resource.sharing_type == "not_shared":
            raise errors.NotSharedError(
                f"resource {_quote(resource.id)} is catalogued as not shared (article 24): "
                "it is never compared"
            )
        if resource.sharing_type == "conditional":
            raise errors.NotGrantedError(
                f"resource {_quote(resource.id)} is shared conditionally: comparisons need a grant "
                "from the provider (article 25), and this node does not yet issue grants"
            )
        if header.comparison_key not in resource.comparison_keys:
            offered = ", ".join(sorted(resource.comparison_keys))
            raise errors.UnknownResourceError(
                f"resource {_quote(resource.id)} has no comparison key "
                f"{_quote(header.comparison_key)} (offered: {offered})"
            )
        if mode not in resource.modes or (header.comparison_key, mode) not in served.indexes:
            raise errors.ModeNotOfferedError(
                f"resource {_quote(resource.id)} does not offer {mode} comparisons"
            )
        if check_version:
            if not header.purpose.strip():
                raise errors.InvalidRequestError(
                    "purpose is required: state the duty this comparison serves (article 31)"
                )
            if len(header.purpose) > MAX_PURPOSE_CHARS:
                raise errors.InvalidRequestError(
                    f"purpose is longer than {MAX_PURPOSE_CHARS} characters"
                )
            if header.request_id and not _REQUEST_ID.match(header.request_id):
                raise errors.InvalidRequestError(
                    "request_id must be 1 to 64 printable ASCII characters without spaces"
                )
            if header.key_version != resource.key_version:
                raise errors.KeyVersionMismatchError(
                    f"key version {header.key_version} is not the current version "
                    f"{resource.key_version} of {_quote(resource.id)}: describe the resource again"
                )
        return served

    def _throttle(self, caller: Caller, items: int) -> None:
        """Article 34 process control: at most ``max_items_per_minute`` items per department."""
        rate = self._items_per_minute
        if rate <= 0:
            return
        now = self._monotonic()
        with self._lock:
            tokens, then = self._buckets.get(caller.department, (float(rate), now))
            tokens = min(float(rate), tokens + (now - then) * rate / 60.0)
            if tokens <= 0:
                self._buckets[caller.department] = (tokens, now)
                wait = -tokens * 60.0 / rate
                raise errors.RateLimitedError(
                    f"this node accepts at most {rate} items per minute from one department; "
                    f"retry in {max(wait, 0.1):.1f} s"
                )
            self._buckets[caller.department] = (tokens - items, now)

    def _check_items(
        self, items: Sequence[bytes], length: int, what: str, *, limit: int | None = None
    ) -> None:
        limit = limit or self._max_batch_items
        if not items:
            raise errors.InvalidRequestError(f"empty batch: send at least one {what}")
        if len(items) > limit:
            raise errors.BatchTooLargeError(
                f"{len(items)} items in one request; this node accepts at most {limit} "
                f"in this mode: split the batch"
            )
        for position, item in enumerate(items):
            if len(item) != length:
                raise errors.InvalidRequestError(
                    f"{what} {position} is {len(item)} bytes; expected {length}"
                )

    def _answer(
        self,
        caller: Caller,
        header: Header,
        mode: str,
        mask: object,
        payload_sha256: str,
        started: float,
        *,
        comparison_id: str | None = None,
    ) -> MatchOutcome:
        bits = pack_matches(mask)  # type: ignore[arg-type]
        item_count = len(mask)  # type: ignore[arg-type]
        match_count = int(mask.sum())  # type: ignore[attr-defined]
        cid = comparison_id or str(uuid.uuid4())
        # Fail closed: the answer exists only once its audit record is committed.
        self._append(
            self._entry(
                caller,
                header,
                mode,
                item_count,
                match_count,
                "answered",
                "OK",
                "",
                payload_sha256,
                started,
                cid,
            )
        )
        self._metrics.record_comparison(
            requester=caller.department,
            resource=header.resource_id,
            mode=mode,
            outcome="answered",
            items=item_count,
            matches=match_count,
        )
        return MatchOutcome(bits, item_count, match_count, cid)

    def _audit_refusal(
        self,
        caller: Caller,
        header: Header,
        mode: str,
        item_count: int,
        payload_sha256: str,
        started: float,
        refusal: errors.NodeError,
        action: str = "comparison",
        *,
        comparison_id: str = "",
    ) -> None:
        from provider_node.status import status_code  # local: status imports grpc

        self._metrics.record_refusal(refusal.reason)
        # Only known resources become label values: the label set stays bounded.
        if action == "comparison" and header.resource_id in self._resources:
            self._metrics.record_comparison(
                requester=caller.department,
                resource=header.resource_id,
                mode=mode,
                outcome=refusal.outcome,
                items=item_count,
                matches=0,
            )
        entry = self._entry(
            caller,
            header,
            mode,
            item_count,
            0,
            refusal.outcome,
            status_code(refusal).name,
            str(refusal)[:300],
            payload_sha256,
            started,
            comparison_id or str(uuid.uuid4()),
            action,
        )
        self._append(entry)

    def _entry(
        self,
        caller: Caller,
        header: Header,
        mode: str,
        item_count: int,
        match_count: int,
        outcome: str,
        status: str,
        reason: str,
        payload_sha256: str,
        started: float,
        comparison_id: str,
        action: str = "comparison",
    ) -> AuditEntry:
        return AuditEntry(
            action=action,
            requester=caller.department,
            cert_fingerprint=caller.cert_fingerprint,
            cert_serial=caller.cert_serial,
            resource_id=header.resource_id[:64],
            comparison_key=header.comparison_key[:64],
            mode=mode,
            purpose=header.purpose[:MAX_PURPOSE_CHARS],
            item_count=item_count,
            match_count=match_count,
            outcome=outcome,
            status_code=status,
            reason=reason,
            request_id=header.request_id[:64],
            duration_ms=self._elapsed_ms(started),
            payload_sha256=payload_sha256,
            comparison_id=comparison_id,
        )

    def _append(self, entry: AuditEntry) -> None:
        try:
            self._audit.append(entry)
        except errors.AuditUnavailableError:
            self._metrics.record_audit_failure()
            raise
        except Exception as failure:  # the store's own errors: fail closed all the same
            self._metrics.record_audit_failure()
            raise errors.AuditUnavailableError(
                "the audit log cannot be written, so no comparison is answered (article 35); "
                "retry later"
            ) from failure

    def _elapsed_ms(self, started: float) -> float:
        return (self._monotonic() - started) * 1000.0


def _payload_digest(items: Sequence[bytes]) -> hashlib._Hash:
    return _digest_more(hashlib.sha256(), items)


def _digest_more(digest: hashlib._Hash, items: Sequence[bytes]) -> hashlib._Hash:
    """Fold length-prefixed ``items`` into ``digest`` (the audit record's payload_sha256)."""
    for item in items:
        digest.update(len(item).to_bytes(4, "big"))
        digest.update(item)
    return digest


def _quote(text: str) -> str:
    """Echo a requester-supplied name safely: bounded and printable."""
    shown = text[:64]
    return repr(shown)
