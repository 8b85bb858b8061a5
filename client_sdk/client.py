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
seconds per chunk, retries included; see :mod:`client_sdk.retry`), so a rolling restart of the
node costs time, not a failed comparison; in blinded mode a retry starts again from
BlindEvaluate with fresh blinds, so no blind is ever used twice. A used-up quota is raised at
once, with the node's words on what remains and when it resets. A refused certificate is
reported at once as an :class:`AuthenticationError` naming the likely cause
(:mod:`client_sdk.refusals`).

A conditional resource is compared only under a grant: :meth:`ComparisonClient.apply` for one,
:meth:`ComparisonClient.application` to see the operator's decision (:mod:`client_sdk.sharing`).

The hashed-mode HMAC key is held in memory while the client is open and is never logged.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import grpc

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import catalog_pb2_grpc as _catalog_pb2_grpc
from bidui.v1 import comparison_pb2_grpc as _comparison_pb2_grpc
from bidui.v1 import discrepancy_pb2_grpc as _discrepancy_pb2_grpc
from bidui.v1 import sharing_pb2_grpc as _sharing_pb2_grpc
from client_sdk.blinded import compare_blinded
from client_sdk.catalog import Catalog, ComparisonMode, check_mode, comparison_key_for
from client_sdk.chunks import Comparison, ProgressCallback, Record, chunk_ranges
from client_sdk.credentials import Credentials
from client_sdk.discrepancies import DiscrepancyCalls
from client_sdk.errors import InvalidRequestError
from client_sdk.hashed import compare_hashed
from client_sdk.refusals import Refusals
from client_sdk.results import ComparisonResult
from client_sdk.retry import NodeCalls, RetryPolicy, call_with_retries
from client_sdk.sharing import SharingCalls

__all__ = [
    "ComparisonClient",
    "ComparisonMode",
    "ProgressCallback",
    "Record",
    "RetryPolicy",
    "call_with_retries",
    "channel_options",
    "check_request_id",
    "chunk_ranges",
    "comparison_key_for",
]

_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")
_MIB = 1 << 20
# Per item on the wire: a 64-byte finalize output (the largest message) plus protobuf framing.
_WIRE_BYTES_PER_ITEM = 64 + 4


def check_request_id(request_id: str | None) -> str:
    """The caller's request id if valid (1-64 printable ASCII characters), else a fresh one."""
    if request_id is None:
        return uuid.uuid4().hex
    if not _REQUEST_ID.fullmatch(request_id):
        raise InvalidRequestError(
            "request_id must be 1 to 64 printable ASCII characters without spaces"
        )
    return request_id


def channel_options(
    max_batch: int, server_name: str | None = None, retry_policy: RetryPolicy | None = None
) -> list[tuple[str, Any]]:
    """gRPC channel options sized for ``max_batch`` items per request.

    While the node is away, grpc reconnects on its own schedule (from 1 s, growing to 120 s) and
    fails calls at once in between; a retry lands only once it has reconnected. So its backoff
    follows ``retry_policy``'s, or a node back after a restart would wait up to two minutes for
    a channel that no longer looks for it.
    """
    policy = retry_policy or RetryPolicy()
    send_limit = max(4 * _MIB, max_batch * _WIRE_BYTES_PER_ITEM + _MIB)
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", send_limit),
        ("grpc.max_receive_message_length", 64 * _MIB),
        ("grpc.primary_user_agent", "bidui-client_sdk"),
        ("grpc.initial_reconnect_backoff_ms", max(100, int(policy.initial_backoff * 1000))),
        ("grpc.max_reconnect_backoff_ms", max(100, int(policy.max_backoff * 1000))),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


class ComparisonClient(SharingCalls, DiscrepancyCalls):
    """A connection to one provider node, over mTLS.

    ``timeout`` is the time allowed for each request: a catalog call, or one chunk of a
    comparison with its retries. ``max_batch`` is the largest number of records sent in one
    request; larger inputs are split transparently. ``retries`` is how many more attempts a
    request gets while the node is away, or a whole :class:`RetryPolicy`. Give
    :class:`Credentials` rather than raw ``grpc.ChannelCredentials`` to have a refused
    certificate told apart from a restarting node. Use as a context manager, or call
    :meth:`close`. ``apply``, ``application`` and ``applications`` (from
    :class:`~client_sdk.sharing.SharingCalls`) are for conditional resources;
    ``report_discrepancy``, ``discrepancy`` and ``discrepancies`` (from
    :class:`~client_sdk.discrepancies.DiscrepancyCalls`) for results in doubt (article 26).
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
        calls = NodeCalls(self.timeout, self.retry_policy, refusals=refusals)
        SharingCalls.__init__(self, _sharing_pb2_grpc.SharingServiceStub(self._channel), calls)
        stub = _discrepancy_pb2_grpc.DiscrepancyServiceStub(self._channel)
        DiscrepancyCalls.__init__(self, stub, calls)
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

    def list_resources(self) -> list[_catalog_pb2.Resource]:
        """The catalog entries the node publishes."""
        return self._catalog.list_resources()

    def describe(self, resource_id: str) -> _catalog_pb2.Resource:
        """The catalog entry of ``resource_id`` (raises ResourceNotFoundError if unknown)."""
        return self._catalog.describe(resource_id)

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
    ) -> ComparisonResult:
        """Compare ``records`` against ``resource`` on comparison key ``key``.

        ``purpose`` states the duty the comparison serves (required, audited at the node).
        ``grant_id`` names the grant a comparison of a conditional resource relies on (the
        ``id`` of an approved application's ``grant``); every request of the comparison carries
        it. When it is omitted the node finds the department's grant that covers the resource,
        key and mode today; a named grant that does not cover them is refused
        (:class:`PermissionDeniedError`), an id that is no grant of the department too
        (:class:`ResourceNotFoundError`). Unconditional resources need none.

        Returns one outcome per input record, in input order. Raises a :class:`BiduiError`
        subclass when the comparison as a whole fails; no partial result is returned.
        """
        check_mode(mode)
        if not purpose or not purpose.strip():
            raise InvalidRequestError(
                "a purpose stating the duty the comparison serves is required"
            )
        if grant_id is not None and not grant_id.strip():
            raise InvalidRequestError("grant_id must name a grant, or be left out")
        request_id = check_request_id(request_id)
        items = list(records)
        for attempt in (1, 2):
            entry = self._catalog.entry(resource)
            comparison = Comparison(
                resource_id=entry.id,
                comparison_key=comparison_key_for(entry, key, mode),
                mode=mode,
                purpose=purpose,
                request_id=request_id,
                progress=progress,
                grant_id=grant_id or "",
            )
            try:
                if mode == "hashed":
                    return compare_hashed(
                        self._calls,
                        self._comparison,
                        self._catalog,
                        entry,
                        comparison,
                        items,
                        max_batch=self.max_batch,
                    )
                return compare_blinded(
                    self._calls,
                    self._comparison,
                    entry,
                    comparison,
                    items,
                    max_batch=self.max_batch,
                )
            except InvalidRequestError as error:
                # The node's catalog changed (e.g. a key rotation): describe again, once.
                if attempt == 2 or error.code != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                self._catalog.forget(resource, key)
        raise AssertionError("unreachable")
