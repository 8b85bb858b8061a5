"""The provider's data service node (article 16): every check between a request and its answer.

``ProviderNode`` turns a request already decoded from protobuf into its answer (match bits, a
verification's outcomes, or a count: ``answers.py``), in this order::

    caller identity (identity/auth.py, in the servicer)
        -> one ComparisonRequest (request.py): caller, header, mode, start, payload digest
        -> resource, answer, key, mode, sharing type, grant (access/policy.py)
        -> header, verified fields, item count and lengths (checks.py, answers.py)
        -> allowance reserved (access/policy.py, access/quotas.py)
        -> lookups (or RFC 9497 BlindEvaluate)
        -> audit record committed, fail closed (audit_trail.py) -> metrics -> answer

Any refusal on the way goes, with the same request, to ``ComparisonAudit.refuse``.

Nothing here knows gRPC: refusals are ``provider_node.core.errors`` exceptions, which
``provider_node.transport.status`` maps to status codes. Every refusal of a comparison is audited
too.

Blinded mode takes two RPCs. Step 1 evaluates the blinded elements and opens a session
(sessions.py) once its ``opened`` record is committed; step 2, the RPC of the answer the header of
step 1 asked for, matches the finalized outputs and closes it with the comparison's one audit
record. A session not closed within its lifetime is audited as ``abandoned`` by
``reap_expired_sessions`` (session_closing.py).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session as DbSession

from comparator.errors import InvalidInputError
from comparator.index import ENTRY_LENGTH
from comparator.keyed_hash import TAG_LENGTH
from comparator.oprf import ELEMENT_LENGTH, MAX_VERIFIABLE_BATCH, OUTPUT_LENGTH
from provider_node.access.enumeration import EnumerationWatch
from provider_node.access.policy import AccessPolicy
from provider_node.audit.log import AuditLog
from provider_node.comparison.answers import (
    Answered,
    AnswerResult,
    check_answer,
    check_fields,
    check_width,
    evaluate,
    record_count,
)
from provider_node.comparison.audit_trail import ComparisonAudit
from provider_node.comparison.checks import (
    MAX_PURPOSE_CHARS,
    check_header,
    check_items,
    digest_more,
    quote,
)
from provider_node.comparison.refusal_tally import RefusalTally
from provider_node.comparison.request import ComparisonRequest
from provider_node.comparison.session_closing import SessionCloser
from provider_node.comparison.sessions import Session, SessionTable
from provider_node.core import errors
from provider_node.core.messages import EMPTY_HEADER, BlindOutcome, Header
from provider_node.core.vocabulary import Action, Answer, Outcome
from provider_node.core.vocabulary import ComparisonMode as Mode
from provider_node.identity.auth import Caller
from provider_node.observability.metrics import NodeMetrics
from provider_node.resources.catalog import ServedResource
from provider_node.store.gate import StoreGate

__all__ = ["MAX_PURPOSE_CHARS", "NodeLimits", "ProviderNode"]


@dataclass(frozen=True)
class NodeLimits:
    max_batch_items: int
    session_seconds: float = 300.0
    max_open_sessions: int = 1024
    max_open_sessions_per_department: int = 16
    #: Seconds over which one source's repeated refusals become one record (0: one each).
    refusal_window_seconds: float = 10.0
    #: Items a department's run against a resource reaches in a day before a match rate under
    #: 0.1 % flags it as an enumeration (0: never).
    enumeration_items: int = 100_000


class ProviderNode:
    """Answers comparisons for the resources it serves; thread-safe."""

    def __init__(
        self,
        resources: Mapping[str, ServedResource],
        audit: AuditLog,
        metrics: NodeMetrics,
        access: AccessPolicy,
        limits: NodeLimits,
        *,
        gate: StoreGate | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
        payload_key: bytes | None = None,
    ) -> None:
        # Audit records fix each request's payload by a digest keyed with a node secret
        # (NodeKeys.payload_digest_key): a plain SHA-256 of a request's tags could be searched
        # with the hashed-mode key any department may fetch, recovering what was queried.
        self._payload_key = payload_key if payload_key is not None else secrets.token_bytes(32)
        self._resources = dict(resources)
        self._clock = clock
        self._gate = gate or StoreGate()
        self._audit = audit
        refusals = RefusalTally(limits.refusal_window_seconds, monotonic=monotonic, clock=clock)
        self._record = ComparisonAudit(
            audit, metrics, self._gate, monotonic, self._resources, refusals
        )
        self._metrics = metrics
        self._access = access
        self._max_batch_items = limits.max_batch_items
        self._monotonic = monotonic
        self._sessions = SessionTable(
            lifetime=limits.session_seconds,
            max_open=limits.max_open_sessions,
            max_open_per_department=limits.max_open_sessions_per_department,
            monotonic=monotonic,
        )
        self._closer = SessionCloser(audit, self._record, metrics, self._sessions, clock)
        self._enumeration = EnumerationWatch(
            metrics.record_enumeration_suspected,
            clock=clock,
            threshold=limits.enumeration_items,
        )

    # -- catalog -----------------------------------------------------------------------------

    @property
    def resources(self) -> Mapping[str, ServedResource]:
        return self._resources

    def describe(self, resource_id: str) -> ServedResource:
        served = self._resources.get(resource_id)
        if served is None:
            raise errors.UnknownResourceError(f"no resource {quote(resource_id)} on this node")
        return served

    def hash_key(self, caller: Caller, resource_id: str, key_name: str) -> tuple[bytes, int]:
        """Hand the hashed-mode key to an authorised requester; audited as a governance action."""
        request = ComparisonRequest(
            caller,
            Header(resource_id, key_name, "", "", 0),
            Mode.HASHED,
            self._monotonic(),
            action=Action.HASH_KEY_FETCH,
        )
        try:
            served = self.describe(resource_id)
            # The key serves every answer the department may ask for.
            request.grant_id = self._access.permit(
                caller, served, request.header, Mode.HASHED, any_answer=True
            )
        except errors.NodeError as refusal:
            self._record.refuse(request, refusal)
            raise
        self._record.append(self._record.entry(request))
        return served.hmac_key, served.resource.key_version

    def refuse_unauthenticated(
        self, refusal: errors.UnauthenticatedError, action: Action, resource_id: str = ""
    ) -> None:
        """Audit a request whose certificate, from this node's CA, failed the identity checks."""
        caller = Caller("", refusal.cert_fingerprint, refusal.cert_serial)
        header = Header(resource_id, "", "", "", 0)
        request = ComparisonRequest(caller, header, "", self._monotonic(), action=action)
        self._record.refuse(request, refusal)

    # -- hashed mode -------------------------------------------------------------------------

    def compare_hashed(
        self, caller: Caller, header: Header, tags: Sequence[bytes], answer: Answer = Answer.MATCH
    ) -> AnswerResult:
        """Hashed mode in one RPC: the tags in, the ``answer`` its RPC gives out."""
        request = ComparisonRequest(
            caller,
            header,
            Mode.HASHED,
            self._monotonic(),
            records=record_count(header, len(tags)),
            payload_sha256=digest_more(self._payload_digest(), tags).hexdigest(),
        )
        try:
            served = self._authorise(request, answer)
            check_items(tags, TAG_LENGTH, "tag", self._max_batch_items)
            check_width(header, len(tags))
            answered = evaluate(served, header, Mode.HASHED, tags)
            # The allowance is charged in the transaction that records the answer: one commit.
            charge = self._access.charge(
                caller, Mode.HASHED, request.grant_id, len(tags), header.resource_id
            )
            return self._answer(request, answered, charge=charge)
        except errors.NodeError as refusal:
            self._record.refuse(request, refusal)
            raise

    # -- blinded mode ------------------------------------------------------------------------

    def blind_evaluate(
        self, caller: Caller, header: Header, blinded: Sequence[bytes]
    ) -> BlindOutcome:
        """Step 1 of 2: RFC 9497 BlindEvaluate in modeOPRF, or in modeVOPRF with a batched DLEQ
        proof (``header.verifiable``); opens a session for the answer ``header.answer`` asks
        (step 2 is the RPC of that answer, matched against the index of the same mode)."""
        digest = digest_more(self._payload_digest(), blinded)
        request = ComparisonRequest(
            caller,
            header,
            Mode.BLINDED,
            self._monotonic(),
            records=record_count(header, len(blinded)),
            payload_sha256=digest.hexdigest(),
        )
        try:
            served = self._authorise(request, header.answer)
            server = served.oprf_server(header.verifiable)
            if server is None:  # the index exists only for an offered mode: never happens
                raise errors.ModeNotOfferedError("this RFC 9497 mode is not offered")
            limit = self._max_batch_items
            if header.verifiable:
                # One DLEQ proof covers at most MAX_VERIFIABLE_BATCH items (RFC 9497 I2OSP(i, 2)).
                limit = min(limit, MAX_VERIFIABLE_BATCH)
            check_items(blinded, ELEMENT_LENGTH, "blinded element", limit)
            check_width(header, len(blinded))
            self._sessions.check_room(caller.department)
            comparison_id = str(uuid.uuid4())
            self._sessions.open(comparison_id, Session(request, len(blinded), digest))
            # Fail closed: no evaluation leaves before its comparison is on record as opened (an
            # evaluation is an oracle answer, RFC 9497 section 7), and a comparison on record is
            # always closed later: answered, refused, or abandoned. The allowance is charged in
            # the same transaction (one commit), and before the evaluation, the costly part.
            try:
                self._record.append(
                    self._record.entry(request, outcome=Outcome.OPENED, related_id=comparison_id),
                    also=self._access.charge(
                        caller, Mode.BLINDED, request.grant_id, len(blinded), header.resource_id
                    ),
                )
            except errors.NodeError:
                self._sessions.forget(comparison_id)
                raise
        except errors.NodeError as refusal:
            self._record.refuse(request, refusal)
            raise
        # Every later record of this comparison (answer, refusal, abandonment) carries its id.
        request.comparison_id = comparison_id
        try:
            evaluation = server.blind_evaluate(blinded)
        except InvalidInputError as bad:
            # On record as opened: closed by the refusal's record, under the comparison's id.
            self._sessions.forget(comparison_id)
            invalid = errors.InvalidRequestError(str(bad))
            self._record.refuse(request, invalid)
            raise invalid from None
        return BlindOutcome(comparison_id, evaluation, served.resource.key_version)

    def match_blinded(
        self,
        caller: Caller,
        comparison_id: str,
        outputs: Sequence[bytes],
        answer: Answer = Answer.MATCH,
    ) -> AnswerResult:
        """Step 2 of 2: look the finalized outputs up and give ``answer`` (its RPC's), which must
        be what step 1 asked for; the session closes whatever the outcome."""
        session = self._sessions.take(comparison_id, caller)
        if session is None or self._sessions.is_expired(session):
            refusal = errors.SessionExpiredError(
                f"no open blinded comparison {quote(comparison_id)}: it expired, was already "
                "answered, or never opened; start again with BlindEvaluate"
            )
            if session is None:
                unknown = ComparisonRequest(
                    caller, EMPTY_HEADER, Mode.BLINDED, self._monotonic(), records=len(outputs)
                )
                self._record.refuse(unknown, refusal)
            else:
                session.request.payload_sha256 = ""
                self._record.refuse(session.request, refusal)
            raise refusal
        request = session.request
        header = request.header
        request.payload_sha256 = digest_more(session.digest, outputs).hexdigest()
        try:
            check_answer(header, answer)
            if len(outputs) != session.item_count:
                raise errors.InvalidRequestError(
                    f"{len(outputs)} outputs for {session.item_count} evaluated elements: "
                    "send one finalized output per blinded element, in order"
                )
            check_items(outputs, OUTPUT_LENGTH, "output", self._max_batch_items)
            served = self.describe(header.resource_id)
            # The index keeps the first ENTRY_LENGTH bytes of each 64-byte PRF output.
            entries = [output[:ENTRY_LENGTH] for output in outputs]
            answered = evaluate(served, header, Mode.BLINDED, entries)
        except errors.NodeError as refusal:
            self._record.refuse(request, refusal)
            raise
        return self._answer(request, answered)

    def resolve_answers_in_doubt(self) -> int:
        """Answers whose record's write failed or ended late: where the record exists after all,
        record that the answer was withheld (the reaper runs this every round)."""
        return self._record.resolve_in_doubt()

    def reap_expired_sessions(self) -> int:
        """Close blinded comparisons whose second step never came; returns how many.

        A session is forgotten only once its ``abandoned`` record is committed: with the store
        down it stays, and the next round tries again.
        """
        return self._closer.reap_expired()

    def abandon_open_sessions(self) -> int:
        """At a graceful stop, after in-flight RPCs finished: close every open comparison."""
        return self._closer.abandon_all()

    def reconcile_open_comparisons(self, older_than: float) -> int:
        """Close comparisons opened more than ``older_than`` seconds ago that no process closed
        (a node killed between the two steps); safe to run in every node process."""
        return self._closer.reconcile(older_than)

    def record_refusals(self, *, everything: bool = False) -> int:
        """Write the records of refusal windows that closed (every window at a graceful stop);
        the reaper runs this every round. Returns how many records were written."""
        return self._record.refusals.flush(self._audit, everything=everything)

    @property
    def refusals_pending(self) -> int:
        """Refusals counted and not yet on record."""
        return self._record.refusals.pending

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    # -- shared steps ------------------------------------------------------------------------

    def _payload_digest(self) -> hmac.HMAC:
        return hmac.new(self._payload_key, digestmod=hashlib.sha256)

    def _authorise(self, request: ComparisonRequest, answer: Answer | None) -> ServedResource:
        """The catalog's facts and the department's permission; sets the request's grant."""
        header = request.header
        served = self.describe(header.resource_id)
        check_answer(header, answer or header.answer or Answer.MATCH)
        if header.verifiable and request.mode is not Mode.BLINDED:
            raise errors.InvalidRequestError("verifiable is for blinded comparisons only")
        request.grant_id = self._access.permit(request.caller, served, header, Mode(request.mode))
        check_fields(served, header, Mode(request.mode))
        check_header(header, served.resource)
        return served

    def _answer(
        self,
        request: ComparisonRequest,
        answered: Answered,
        *,
        charge: Callable[[DbSession], None] | None = None,
    ) -> AnswerResult:
        request.comparison_id = request.comparison_id or str(uuid.uuid4())
        request.records = answered.records
        # Fail closed: the answer exists only once its audit record is committed.
        self._record.append(
            self._record.entry(request, match_count=answered.matches, summary=answered.summary),
            answers=True,
            also=charge,
        )
        header = request.header
        self._metrics.record_comparison(
            requester=request.caller.department,
            resource=header.resource_id,
            mode=request.mode,
            outcome=Outcome.ANSWERED,
            items=answered.records,
            matches=answered.matches,
        )
        self._enumeration.record(
            request.caller.department, header.resource_id, answered.records, answered.matches
        )
        self._metrics.record_answer(
            header.resource_id,
            request.mode,
            str(header.answer),
            verdicts=answered.verdicts,
            mismatched=answered.mismatched,
        )
        return replace(answered.result, comparison_id=request.comparison_id)
