"""``ComparisonClient``: compare a batch of records against a provider node's resource.

One call, :meth:`ComparisonClient.compare`, does the whole requester's side::

    records (dicts by field name, or tuples in key order)
      -> DescribeResource: field types, comparison key, key version, OPRF public key  (catalog)
      -> canonicalise per comparison key (comparator.canonical); invalid records become
         per-record errors and are never sent                                          (chunks)
      -> for each chunk of at most max_batch records (one request, one audit record at the node):
           hashed:  GetHashKey (once) -> HMAC tags -> CompareHashed -> match bits      (hashed)
           blinded: blind -> BlindEvaluate -> verify the DLEQ proof and finalize
                    -> MatchBlinded(outputs) -> match bits                             (blinded)
      -> ComparisonResult aligned with the input

Chunks of one call share a ``request_id`` (and a ``grant_id`` when one is given). A chunk whose
node is stopping, restarting, unreachable, or busy with the department's other blinded
comparisons is retried with exponential backoff and jitter within its deadline (``timeout``
seconds per chunk, retries included; see :mod:`client_sdk.connection.retry`), so a rolling restart
of the
node costs time, not a failed comparison; in blinded mode a retry starts again from
BlindEvaluate with fresh blinds, so no blind is ever used twice. A used-up quota is raised at
once, with the node's words on what remains and when it resets. A refused certificate is
reported at once as an :class:`AuthenticationError` naming the likely cause
(:mod:`client_sdk.connection.refusals`).

:meth:`ComparisonClient.verify` verifies fields against a key (核验: not found, consistent, or
inconsistent with the fields that differ) and ``compare(..., answer="count")`` asks only how many
matched: the same pipeline with the answer's RPCs (:mod:`client_sdk.comparison.answers`).

A conditional resource is compared only under a grant: :meth:`ComparisonClient.apply` for one,
:meth:`ComparisonClient.application` to see the operator's decision
(:mod:`client_sdk.governance.sharing`).

The hashed-mode HMAC key is held in memory while the client is open and is never logged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Literal, overload

import grpc

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import catalog_pb2_grpc as _catalog_pb2_grpc
from bidui.v1 import comparison_pb2_grpc as _comparison_pb2_grpc
from bidui.v1 import discrepancy_pb2_grpc as _discrepancy_pb2_grpc
from bidui.v1 import sharing_pb2_grpc as _sharing_pb2_grpc
from client_sdk.comparison.answers import count_records, verification_plan, verify_records
from client_sdk.comparison.blinded import compare_blinded
from client_sdk.comparison.catalog import (
    Catalog,
    ComparisonMode,
    answer_to_wire,
)
from client_sdk.comparison.chunks import Comparison, ProgressCallback, Record
from client_sdk.comparison.hashed import compare_hashed
from client_sdk.comparison.request import ComparisonRequest, run_comparison
from client_sdk.comparison.results import ComparisonResult
from client_sdk.comparison.verification_results import CountResult, VerificationResult
from client_sdk.connection.channel import channel_options
from client_sdk.connection.credentials import Credentials
from client_sdk.connection.refusals import Refusals
from client_sdk.connection.retry import NodeCalls, RetryPolicy
from client_sdk.delegation import delegated
from client_sdk.errors import InvalidRequestError
from client_sdk.governance.discrepancies import DiscrepancyCalls
from client_sdk.governance.sharing import SharingCalls

__all__ = ["ComparisonClient", "ComparisonMode", "ProgressCallback", "Record", "RetryPolicy"]


class ComparisonClient:
    """A connection to one provider node, over mTLS.

    ``timeout`` is the time allowed for each request: a catalog call, or one chunk of a
    comparison with its retries. ``max_batch`` is the largest number of records sent in one
    request; larger inputs are split transparently. ``retries`` is how many more attempts a
    request gets while the node is away, or a whole :class:`RetryPolicy`. Give
    :class:`Credentials` rather than raw ``grpc.ChannelCredentials`` to have a refused
    certificate told apart from a restarting node. Use as a context manager, or call
    :meth:`close`. ``apply``, ``application`` and ``applications`` (those of
    :class:`~client_sdk.governance.sharing.SharingCalls`) are for conditional resources;
    ``report_discrepancy``, ``discrepancy`` and ``discrepancies`` (those of
    :class:`~client_sdk.governance.discrepancies.DiscrepancyCalls`) for results in doubt (article
    26).
    """

    def __init__(
        self,
        target: str,
        credentials: Credentials | grpc.ChannelCredentials,
        *,
        timeout: float = 60.0,
        max_batch: int = 10_000,
        retries: int | RetryPolicy = RetryPolicy.retries,
        server_name: str | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.target = target
        self.timeout = float(timeout)
        self.max_batch = max_batch
        self.retry_policy = retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries)
        channel_credentials = (
            credentials.channel_credentials()
            if isinstance(credentials, Credentials)
            else credentials
        )
        self._channel = grpc.secure_channel(
            target,
            channel_credentials,
            options=channel_options(max_batch, server_name, self.retry_policy),
        )
        refusals = Refusals(
            target,
            server_name=server_name,
            credentials=credentials if isinstance(credentials, Credentials) else None,
        )
        self._calls = NodeCalls(self.timeout, self.retry_policy, refusals=refusals)
        self._sharing = SharingCalls(
            _sharing_pb2_grpc.SharingServiceStub(self._channel), self._calls
        )
        self._discrepancies = DiscrepancyCalls(
            _discrepancy_pb2_grpc.DiscrepancyServiceStub(self._channel), self._calls
        )
        self._catalog = Catalog(_catalog_pb2_grpc.CatalogServiceStub(self._channel), self._calls)
        self._comparison = _comparison_pb2_grpc.ComparisonServiceStub(self._channel)

    def __enter__(self) -> ComparisonClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ComparisonClient(target={self.target!r})"

    def close(self) -> None:
        """Close the channel and forget cached keys. Calls made afterwards fail."""
        self._catalog.clear()
        self._channel.close()

    # Conditional sharing (article 25) and doubted results (article 26): the calls of
    # SharingCalls and DiscrepancyCalls, with their signatures and documentation.
    apply = delegated(SharingCalls.apply, "_sharing")
    application = delegated(SharingCalls.application, "_sharing")
    applications = delegated(SharingCalls.applications, "_sharing")
    report_discrepancy = delegated(DiscrepancyCalls.report_discrepancy, "_discrepancies")
    discrepancy = delegated(DiscrepancyCalls.discrepancy, "_discrepancies")
    discrepancies = delegated(DiscrepancyCalls.discrepancies, "_discrepancies")

    def list_resources(self) -> list[_catalog_pb2.Resource]:
        """The catalog entries the node publishes."""
        return self._catalog.list_resources()

    def describe(self, resource_id: str) -> _catalog_pb2.Resource:
        """The catalog entry of ``resource_id`` (raises ResourceNotFoundError if unknown)."""
        return self._catalog.describe(resource_id)

    @overload
    def compare(
        self,
        resource: str,
        records: Iterable[Record],
        *,
        key: str,
        mode: ComparisonMode = ...,
        purpose: str,
        progress: ProgressCallback | None = ...,
        request_id: str | None = ...,
        grant_id: str | None = ...,
        answer: Literal["match"] = ...,
        verifiable: bool = ...,
    ) -> ComparisonResult: ...

    @overload
    def compare(
        self,
        resource: str,
        records: Iterable[Record],
        *,
        key: str,
        mode: ComparisonMode = ...,
        purpose: str,
        progress: ProgressCallback | None = ...,
        request_id: str | None = ...,
        grant_id: str | None = ...,
        answer: Literal["count"],
        verifiable: bool = ...,
    ) -> CountResult: ...

    def compare(
        self,
        resource: str,
        records: Iterable[Record],
        *,
        key: str,
        mode: ComparisonMode = "blinded",
        purpose: str,
        progress: ProgressCallback | None = None,
        request_id: str | None = None,
        grant_id: str | None = None,
        answer: Literal["match", "count"] = "match",
        verifiable: bool = False,
    ) -> ComparisonResult | CountResult:
        """Compare ``records`` against ``resource`` on comparison key ``key``.

        ``purpose`` states the duty the comparison serves (required, audited at the node).
        ``grant_id`` names the grant a comparison of a conditional resource relies on (the
        ``id`` of an approved application's ``grant``); every request of the comparison carries
        it. When it is omitted the node finds the department's grant that covers the resource,
        key, mode and answer today; a named grant that does not cover them is refused
        (:class:`PermissionDeniedError`), an id that is no grant of the department too
        (:class:`ResourceNotFoundError`). Unconditional resources need none.

        ``answer="match"`` returns one outcome per input record, in input order.
        ``answer="count"`` returns a :class:`CountResult`: how many records matched, never
        which (for statistics work; a permission of its own, refused
        :class:`PermissionDeniedError` where the resource or the grant does not allow it).
        Blinded mode is RFC 9497 modeOPRF by default. ``verifiable=True`` asks for modeVOPRF:
        the node proves (a batched DLEQ proof, checked here) that it evaluated under the public key
        its catalog entry publishes, which matters when PRF outputs are kept or compared across
        nodes; it does not prove the answer, which the node computes. The resource must offer the
        mode (its catalog entry's ``oprf_modes``; :class:`InvalidRequestError` otherwise).
        Raises a :class:`BiduiError` subclass when the comparison as a whole fails; no partial
        result is returned.
        """
        if answer not in ("match", "count"):
            raise InvalidRequestError(
                f"answer must be 'match' or 'count' (verify: see verify()), not {answer!r}"
            )

        def run(entry: _catalog_pb2.Resource, comparison: Comparison, items: list[Record]) -> Any:
            args = (self._calls, self._comparison)
            if answer == "count":
                return count_records(
                    *args, self._catalog, entry, comparison, items, max_batch=self.max_batch
                )
            if mode == "hashed":
                return compare_hashed(
                    *args, self._catalog, entry, comparison, items, max_batch=self.max_batch
                )
            return compare_blinded(*args, entry, comparison, items, max_batch=self.max_batch)

        wire = answer_to_wire(answer)
        request = ComparisonRequest(
            resource, key, mode, purpose, progress, request_id, grant_id, wire,
            verifiable=verifiable,
        )  # fmt: skip
        result: ComparisonResult | CountResult = run_comparison(
            self._catalog, request, records, run
        )
        return result

    def verify(
        self,
        resource: str,
        records: Iterable[Record],
        *,
        key: str,
        fields: Sequence[str],
        mode: ComparisonMode = "blinded",
        purpose: str,
        progress: ProgressCallback | None = None,
        request_id: str | None = None,
        grant_id: str | None = None,
        verifiable: bool = False,
    ) -> VerificationResult:
        """Verify (核验) ``fields`` of ``records`` against ``resource`` by comparison key ``key``.

        Each record is ``not_found`` (库无: the provider holds no record with this key),
        ``consistent`` (一致: every one of ``fields`` agrees) or ``inconsistent`` (不一致: its
        ``mismatched_fields`` disagree); a record invalid for the key or a field is an ``error``
        with its reason, and is never sent. Only these outcomes come back, and only for fields
        the resource makes verifiable against ``key`` (``verifiable_fields`` in its catalog
        entry). Verification is a permission of its own: an unconditional resource must offer
        it, a conditional one's grant must allow it (:class:`PermissionDeniedError` otherwise).
        ``purpose``, ``grant_id``, ``request_id``, ``progress`` and ``verifiable`` are as for
        :meth:`compare`.
        """
        names = (fields,) if isinstance(fields, str) else tuple(fields)
        if not names:
            raise InvalidRequestError("name at least one field to verify")

        def run(entry: _catalog_pb2.Resource, comparison: Comparison, items: list[Record]) -> Any:
            plan = verification_plan(entry, comparison, names)
            return verify_records(
                self._calls,
                self._comparison,
                self._catalog,
                entry,
                comparison,
                plan,
                items,
                max_batch=self.max_batch,
            )

        request = ComparisonRequest(
            resource, key, mode, purpose, progress, request_id, grant_id,
            _catalog_pb2.ANSWER_VERIFY, names, verifiable,
        )  # fmt: skip
        result: VerificationResult = run_comparison(self._catalog, request, records, run)
        return result
