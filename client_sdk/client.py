"""``ComparisonClient``: compare a batch of records against a provider node's resource.

One call, :meth:`ComparisonClient.compare`, does the whole requester's side::

    records (dicts by field name, or tuples in key order)
      -> DescribeResource: field types, comparison key, key version, OPRF public key
      -> canonicalise per comparison key (comparator.canonical); invalid records become
         per-record errors and are never sent
      -> for each chunk of at most max_batch records (one request, one audit record at the node):
           hashed:  GetHashKey (once) -> HMAC tags -> CompareHashed -> match bits
           blinded: blind -> BlindEvaluate -> verify the DLEQ proof and finalize
                    -> MatchBlinded(outputs) -> match bits
      -> ComparisonResult aligned with the input

Chunks of one call share a ``request_id``. A chunk that fails with UNAVAILABLE is retried with
exponential backoff and jitter within its deadline (``timeout`` seconds per chunk, retries
included); in blinded mode a retry starts again from BlindEvaluate with fresh blinds, so no blind
is ever used twice.

The hashed-mode HMAC key is held in memory for the duration of one ``compare`` call only and is
never logged.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal, TypeVar

import grpc
import numpy as np
import numpy.typing as npt

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import catalog_pb2_grpc as _catalog_pb2_grpc
from bidui.v1 import comparison_pb2 as _comparison_pb2
from bidui.v1 import comparison_pb2_grpc as _comparison_pb2_grpc
from client_sdk.credentials import Credentials
from client_sdk.errors import (
    DeadlineExceededError,
    InvalidRequestError,
    ProofVerificationError,
    ServiceError,
    error_from_status,
    is_tls_failure,
    rpc_status,
)
from client_sdk.results import ComparisonResult, result_from_arrays
from comparator.canonical import ComparisonKey, Domain, RecordError, encode_records
from comparator.errors import ComparatorError, InvalidInputError, VerifyError
from comparator.index import unpack_matches
from comparator.keyed_hash import TAG_LENGTH, KeyedHasher
from comparator.oprf import (
    MAX_VERIFIABLE_BATCH,
    PROOF_LENGTH,
    SUITE_ID,
    ClientState,
    Evaluation,
    VoprfClient,
)

__all__ = [
    "ComparisonClient",
    "ComparisonMode",
    "ProgressCallback",
    "Record",
    "RetryPolicy",
    "call_with_retries",
    "check_request_id",
    "chunk_ranges",
    "comparison_key_for",
]

ComparisonMode = Literal["blinded", "hashed"]
#: Called after each chunk with (records done, records in total).
ProgressCallback = Callable[[int, int], None]
#: A record: a mapping by field name, or a sequence positional in the key's field order.
Record = Mapping[str, Any] | Sequence[Any]

_T = TypeVar("_T")

_MODES: dict[str, int] = {
    "hashed": _catalog_pb2.MODE_HASHED,
    "blinded": _catalog_pb2.MODE_BLINDED,
}
_MODE_NAMES = {value: name for name, value in _MODES.items()}
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")
_MIB = 1 << 20
# Per item on the wire: a 64-byte finalize output (the largest message) plus protobuf framing.
_WIRE_BYTES_PER_ITEM = 64 + 4


@dataclass(frozen=True)
class RetryPolicy:
    """How UNAVAILABLE is retried: ``retries`` more attempts, backoff growing by ``multiplier``
    from ``initial_backoff`` up to ``max_backoff`` seconds, each pause scaled by a random factor in
    [0.5, 1] so that many clients do not retry in step."""

    retries: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and the multiplier >= 1")

    def backoff(self, retry: int) -> float:
        """The pause before retry number ``retry`` (0-based), before jitter."""
        return float(min(self.max_backoff, self.initial_backoff * self.multiplier**retry))


class RpcFailure(Exception):
    """A failed RPC inside an attempt: its status, and which call it was."""

    def __init__(self, code: grpc.StatusCode, details: str | None, context: str) -> None:
        super().__init__(f"{context}: {code.name}")
        self.code = code
        self.details = details
        self.context = context


def call_with_retries(
    attempt: Callable[[float], _T],
    *,
    deadline: float,
    policy: RetryPolicy,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> _T:
    """Run ``attempt(deadline)`` until it succeeds, retrying :class:`RpcFailure` UNAVAILABLE.

    Other failures, TLS handshake failures, and UNAVAILABLE once the retries or the time before
    ``deadline`` (on ``clock``) are used up, are raised as the mapped :class:`BiduiError`.
    """
    jitter = rng or random.Random()
    retry = 0
    while True:
        if clock() >= deadline:
            raise DeadlineExceededError("no answer from the node before the deadline")
        try:
            return attempt(deadline)
        except RpcFailure as failure:
            retryable = failure.code is grpc.StatusCode.UNAVAILABLE and not is_tls_failure(
                failure.code, failure.details
            )
            pause = policy.backoff(retry) * jitter.uniform(0.5, 1.0)
            if not retryable or retry >= policy.retries or clock() + pause >= deadline:
                error = error_from_status(failure.code, failure.details, context=failure.context)
                if retryable and retry:
                    error.message = f"{error.message} (after {retry + 1} attempts)"
                    error.args = (error.message,)
                raise error from failure
            sleep(pause)
            retry += 1


def chunk_ranges(count: int, max_batch: int) -> list[range]:
    """Split ``range(count)`` into consecutive ranges of at most ``max_batch`` items."""
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    if count < 0:
        raise ValueError("count must be >= 0")
    return [range(start, min(start + max_batch, count)) for start in range(0, count, max_batch)]


def check_request_id(request_id: str | None) -> str:
    """The caller's request id if valid (1-64 printable ASCII characters), else a fresh one."""
    if request_id is None:
        return uuid.uuid4().hex
    if not _REQUEST_ID.fullmatch(request_id):
        raise InvalidRequestError(
            "request_id must be 1 to 64 printable ASCII characters without spaces"
        )
    return request_id


def comparison_key_for(
    resource: _catalog_pb2.Resource, key_name: str, mode: ComparisonMode | None = None
) -> ComparisonKey:
    """The comparator's :class:`ComparisonKey` for ``key_name`` from a catalog entry.

    Raises :class:`InvalidRequestError` when the resource offers no such key or not ``mode``, and
    :class:`ServiceError` when the catalog entry itself is inconsistent (a key naming a field the
    entry does not declare, or a field type this SDK does not know).
    """
    if mode is not None:
        if mode not in _MODES:
            raise InvalidRequestError(f"mode must be 'blinded' or 'hashed', not {mode!r}")
        offered = [_MODE_NAMES[m] for m in resource.modes if m in _MODE_NAMES]
        if resource.modes and _MODES[mode] not in resource.modes:
            raise InvalidRequestError(
                f"resource {resource.id!r} does not offer {mode} mode; it offers: "
                + (", ".join(offered) or "none")
            )
    keys = {k.name: k for k in resource.comparison_keys}
    entry = keys.get(key_name)
    if entry is None:
        offered_keys = ", ".join(repr(name) for name in keys) or "none"
        raise InvalidRequestError(
            f"resource {resource.id!r} has no comparison key {key_name!r}; it offers: "
            f"{offered_keys}"
        )
    field_types = {f.name: f.type for f in resource.fields}
    try:
        return ComparisonKey.from_names(entry.name, list(entry.fields), field_types)
    except (ComparatorError, ValueError, KeyError) as exc:
        raise ServiceError(
            f"the catalog entry of {resource.id!r} defines key {key_name!r} in a way this SDK "
            f"cannot use: {exc}"
        ) from exc


class ComparisonClient:
    """A connection to one provider node, over mTLS.

    ``timeout`` is the time allowed for each request: a catalog call, or one chunk of a
    comparison with its retries. ``max_batch`` is the largest number of records sent in one
    request; larger inputs are split transparently. Use as a context manager, or call
    :meth:`close`.
    """

    def __init__(
        self,
        target: str,
        credentials: Credentials | grpc.ChannelCredentials,
        *,
        timeout: float = 60.0,
        max_batch: int = 10_000,
        retries: int | RetryPolicy = 4,
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
            target, channel_credentials, options=channel_options(max_batch, server_name)
        )
        self._catalog = _catalog_pb2_grpc.CatalogServiceStub(self._channel)
        self._comparison = _comparison_pb2_grpc.ComparisonServiceStub(self._channel)
        self._clock: Callable[[], float] = time.monotonic
        self._sleep: Callable[[float], None] = time.sleep
        # Catalog entries and hashed-mode keys, reused across compare() calls so a one-record
        # comparison costs one or two RPCs, not four; dropped when the node reports a changed
        # key version (FAILED_PRECONDITION) and on close(). Memory only, never written anywhere.
        self._entries: dict[str, _catalog_pb2.Resource] = {}
        self._hashers: dict[tuple[str, str], tuple[KeyedHasher, Domain]] = {}

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
        self._entries.clear()
        self._hashers.clear()
        self._channel.close()

    # -- catalog ------------------------------------------------------------------------------

    def list_resources(self) -> list[_catalog_pb2.Resource]:
        """The catalog entries the node publishes."""
        request = _catalog_pb2.ListResourcesRequest()
        response = self._retrying(
            lambda deadline: self._rpc(
                "ListResources", self._catalog.ListResources, request, deadline
            )
        )
        return list(response.resources)

    def describe(self, resource_id: str) -> _catalog_pb2.Resource:
        """The catalog entry of ``resource_id`` (raises ResourceNotFoundError if unknown)."""
        request = _catalog_pb2.DescribeResourceRequest(resource_id=resource_id)
        return self._retrying(
            lambda deadline: self._rpc(
                f"DescribeResource {resource_id!r}",
                self._catalog.DescribeResource,
                request,
                deadline,
            )
        )

    # -- comparison ---------------------------------------------------------------------------

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
    ) -> ComparisonResult:
        """Compare ``records`` against ``resource`` on comparison key ``key``.

        ``purpose`` states the duty the comparison serves (required, audited at the node).
        Returns one outcome per input record, in input order. Raises a :class:`BiduiError`
        subclass when the comparison as a whole fails; no partial result is returned.
        """
        if mode not in _MODES:
            raise InvalidRequestError(f"mode must be 'blinded' or 'hashed', not {mode!r}")
        if not purpose or not purpose.strip():
            raise InvalidRequestError(
                "a purpose stating the duty the comparison serves is required"
            )
        request_id = check_request_id(request_id)
        items = list(records)
        for attempt in (1, 2):
            entry = self._entries.get(resource) or self.describe(resource)
            self._entries[resource] = entry
            comparison_key = comparison_key_for(entry, key, mode)
            compare = self._compare_hashed if mode == "hashed" else self._compare_blinded
            try:
                return compare(entry, comparison_key, items, purpose, request_id, progress)
            except InvalidRequestError as error:
                # The node's catalog changed (e.g. a key rotation): describe again, once.
                if attempt == 2 or error.code != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                self._entries.pop(resource, None)
                self._hashers.pop((resource, key), None)
        raise AssertionError("unreachable")

    def _compare_hashed(
        self,
        entry: _catalog_pb2.Resource,
        comparison_key: ComparisonKey,
        items: list[Record],
        purpose: str,
        request_id: str,
        progress: ProgressCallback | None,
    ) -> ComparisonResult:
        hasher, domain = self._hashers.get((entry.id, comparison_key.name)) or self._fetch_hasher(
            entry, comparison_key
        )
        self._hashers[(entry.id, comparison_key.name)] = (hasher, domain)

        def send(tags: Sequence[bytes], header: _comparison_pb2.ComparisonHeader) -> Any:
            request = _comparison_pb2.CompareHashedRequest(header=header, tags=tags)
            return self._retrying(
                lambda deadline: self._rpc(
                    "CompareHashed", self._comparison.CompareHashed, request, deadline
                )
            )

        return self._run_chunks(
            entry,
            comparison_key,
            domain,
            items,
            purpose,
            request_id,
            progress,
            "hashed",
            self.max_batch,
            hasher.tags,
            send,
        )

    def _fetch_hasher(
        self, entry: _catalog_pb2.Resource, comparison_key: ComparisonKey
    ) -> tuple[KeyedHasher, Domain]:
        key_request = _catalog_pb2.GetHashKeyRequest(
            resource_id=entry.id, comparison_key=comparison_key.name
        )
        hash_key = self._retrying(
            lambda deadline: self._rpc(
                f"GetHashKey {entry.id!r}", self._catalog.GetHashKey, key_request, deadline
            )
        )
        if hash_key.tag_length and hash_key.tag_length != TAG_LENGTH:
            raise ServiceError(
                f"the node uses {hash_key.tag_length}-byte tags; this SDK makes {TAG_LENGTH}"
            )
        key_version = hash_key.key_version or entry.key_version
        domain = Domain(entry.id, comparison_key.name, key_version)
        try:
            hasher = KeyedHasher(hash_key.hmac_key, domain)
        except ComparatorError as exc:
            raise ServiceError(f"the node sent an unusable hashed-mode key: {exc}") from None
        del hash_key  # the key now lives only inside the hasher
        return hasher, domain

    def _compare_blinded(
        self,
        entry: _catalog_pb2.Resource,
        comparison_key: ComparisonKey,
        items: list[Record],
        purpose: str,
        request_id: str,
        progress: ProgressCallback | None,
    ) -> ComparisonResult:
        if entry.oprf_suite and entry.oprf_suite != SUITE_ID:
            raise ServiceError(
                f"resource {entry.id!r} uses OPRF suite {entry.oprf_suite!r}; "
                f"this SDK supports {SUITE_ID!r}"
            )
        if not entry.oprf_public_key:
            raise ServiceError(f"resource {entry.id!r} publishes no OPRF public key")
        try:
            voprf = VoprfClient(entry.oprf_public_key)
        except ComparatorError:
            raise ServiceError(
                f"resource {entry.id!r} publishes an invalid OPRF public key"
            ) from None
        key_version = entry.key_version
        domain = Domain(entry.id, comparison_key.name, key_version)

        def attempt(
            chunk: Sequence[bytes], header: _comparison_pb2.ComparisonHeader, deadline: float
        ) -> _comparison_pb2.MatchResult:
            blind = voprf.blind(list(chunk))  # fresh blinds on every attempt
            evaluated = self._rpc(
                "BlindEvaluate",
                self._comparison.BlindEvaluate,
                _comparison_pb2.BlindEvaluateRequest(
                    header=header, blinded_elements=list(blind.message)
                ),
                deadline,
            )
            outputs = _finalize(voprf, blind.state, evaluated, len(chunk), key_version)
            result = self._rpc(
                "MatchBlinded",
                self._comparison.MatchBlinded,
                _comparison_pb2.MatchBlindedRequest(
                    comparison_id=evaluated.comparison_id, outputs=outputs
                ),
                deadline,
            )
            if not result.comparison_id:
                result.comparison_id = evaluated.comparison_id
            return result

        def run(
            chunk: Sequence[bytes], header: _comparison_pb2.ComparisonHeader
        ) -> _comparison_pb2.MatchResult:
            return self._retrying(lambda deadline: attempt(chunk, header, deadline))

        return self._run_chunks(
            entry,
            comparison_key,
            domain,
            items,
            purpose,
            request_id,
            progress,
            "blinded",
            min(self.max_batch, MAX_VERIFIABLE_BATCH),  # one DLEQ proof covers one chunk
            list,  # blinding happens per attempt: a retry must use fresh blinds
            run,
        )

    def _run_chunks(
        self,
        entry: _catalog_pb2.Resource,
        comparison_key: ComparisonKey,
        domain: Domain,
        items: list[Record],
        purpose: str,
        request_id: str,
        progress: ProgressCallback | None,
        mode: ComparisonMode,
        max_batch: int,
        prepare: Callable[[Sequence[bytes]], Sequence[bytes]],
        send: Callable[
            [Sequence[bytes], _comparison_pb2.ComparisonHeader], _comparison_pb2.MatchResult
        ],
    ) -> ComparisonResult:
        """Canonicalise, prepare and send the input ``max_batch`` rows at a time.

        Chunk ``k`` is sent from a helper thread while chunk ``k + 1`` is canonicalised and
        prepared here, so the requester's CPU work overlaps the node's; answers are collected in
        order, and any failure ends the comparison with no result.
        """
        header = _comparison_pb2.ComparisonHeader(
            resource_id=entry.id,
            comparison_key=comparison_key.name,
            purpose=purpose,
            request_id=request_id,
            key_version=domain.key_version,
        )
        total = len(items)
        positions: list[npt.NDArray[np.int64]] = []
        answers: list[npt.NDArray[np.bool_]] = []
        errors: list[RecordError] = []
        comparison_ids: list[str] = []
        pending: deque[tuple[Future[_comparison_pb2.MatchResult], int]] = deque()
        done = 0

        def report(rows: int) -> None:
            nonlocal done
            done += rows
            if progress is not None:
                progress(done, total)

        def collect() -> None:
            future, rows = pending.popleft()
            result = future.result()
            answers.append(match_bits(result, len(positions[len(answers)])))
            comparison_ids.append(result.comparison_id)
            report(rows)

        # One chunk has nothing to overlap with: send it from this thread, no thread to start.
        sends = ThreadPoolExecutor if total > max_batch else _InlineExecutor
        with sends(1, thread_name_prefix="bidui-send") as sender:
            for chunk in chunk_ranges(total, max_batch):
                batch = encode_records(domain, comparison_key, items[chunk.start : chunk.stop])
                errors.extend(replace(e, index=e.index + chunk.start) for e in batch.errors)
                if not batch.encoded:  # every row invalid: nothing to send, nothing to audit
                    while pending:
                        collect()
                    report(len(chunk))
                    continue
                positions.append(np.asarray(batch.positions, dtype=np.int64) + chunk.start)
                pending.append((sender.submit(send, prepare(batch.encoded), header), len(chunk)))
                if len(pending) > 1:
                    collect()
            while pending:
                collect()
        if total == 0 and progress is not None:
            progress(0, 0)
        return result_from_arrays(
            total,
            np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64),
            np.concatenate(answers) if answers else np.zeros(0, dtype=bool),
            errors,
            resource_id=entry.id,
            comparison_key=comparison_key.name,
            mode=mode,
            request_id=request_id,
            comparison_ids=comparison_ids,
        )

    # -- plumbing -----------------------------------------------------------------------------

    def _retrying(self, attempt: Callable[[float], _T]) -> _T:
        return call_with_retries(
            attempt,
            deadline=self._clock() + self.timeout,
            policy=self.retry_policy,
            clock=self._clock,
            sleep=self._sleep,
        )

    def _rpc(
        self,
        context: str,
        method: Callable[..., _T],
        request: Any,
        deadline: float,
    ) -> _T:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise DeadlineExceededError(f"{context}: no answer from the node before the deadline")
        try:
            return method(request, timeout=remaining)
        except grpc.RpcError as exc:
            code, details = rpc_status(exc)
            raise RpcFailure(code, details, context) from None


def channel_options(max_batch: int, server_name: str | None = None) -> list[tuple[str, Any]]:
    """gRPC channel options sized for ``max_batch`` items per request."""
    send_limit = max(4 * _MIB, max_batch * _WIRE_BYTES_PER_ITEM + _MIB)
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", send_limit),
        ("grpc.max_receive_message_length", 64 * _MIB),
        ("grpc.primary_user_agent", "bidui-client_sdk"),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


class _InlineExecutor(ThreadPoolExecutor):
    """Runs each submitted call at once, in the caller's thread."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers, thread_name_prefix)

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


def match_bits(result: _comparison_pb2.MatchResult, count: int) -> npt.NDArray[np.bool_]:
    """Unpack and check the node's answer for a chunk of ``count`` items."""
    if result.item_count != count or len(result.match_bits) != (count + 7) // 8:
        raise ServiceError(
            f"the node answered for {result.item_count} item(s) in {len(result.match_bits)} "
            f"byte(s); {count} item(s) were sent"
        )
    bits = np.array(unpack_matches(result.match_bits, count), dtype=bool)
    if int(bits.sum()) != result.match_count:
        raise ServiceError("the node's match count disagrees with its match bits")
    return bits


def _finalize(
    voprf: VoprfClient,
    state: ClientState,
    evaluated: _comparison_pb2.BlindEvaluateResponse,
    count: int,
    key_version: int,
) -> list[bytes]:
    if evaluated.key_version and evaluated.key_version != key_version:
        raise InvalidRequestError(
            f"the node's OPRF key changed (version {evaluated.key_version}, the catalog said "
            f"{key_version}); run the comparison again"
        )
    if len(evaluated.evaluated_elements) != count or len(evaluated.proof) != PROOF_LENGTH:
        raise ProofVerificationError(
            f"the node returned {len(evaluated.evaluated_elements)} evaluated element(s) and a "
            f"{len(evaluated.proof)}-byte proof for {count} blinded element(s)"
        )
    try:
        outputs = voprf.finalize(
            state, Evaluation(list(evaluated.evaluated_elements), evaluated.proof)
        )
    except VerifyError:
        raise ProofVerificationError(
            "the node's proof did not verify against its published OPRF key: the node "
            "misbehaved or its key changed"
        ) from None
    except InvalidInputError:
        raise ProofVerificationError("the node returned malformed evaluated elements") from None
    return list(outputs)
