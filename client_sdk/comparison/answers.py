"""Verification (核验) and count-only answers, the requester's side.

A verification of fields ``f_1 .. f_F`` against a comparison key sends, per record, the key's item
and one item per field under that field's verification key (``comparator.verification``)::

    records -> VerificationPlan.encode: 1 + F encodings per valid record (invalid ones: errors)
      hashed:  one tagger per domain under the resource's key (GetHashKey once) -> VerifyHashed
      blinded: BlindEvaluate (header.answer = ANSWER_VERIFY) -> VerifyBlinded
      -> outcome byte per record + mismatch bits, checked (unpack_verdicts) -> VerificationResult

A count sends what a match-bits comparison sends, to CountHashed or BlindEvaluate + CountBlinded,
and gets back only how many matched. Both go through the chunk pipeline of ``chunks.py``: the same
retries, progress, request id and grant id as ``compare``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import comparison_pb2 as _comparison_pb2
from bidui.v1 import comparison_pb2_grpc as _comparison_pb2_grpc
from client_sdk.comparison.blinded import blinded_batch, blinded_sender
from client_sdk.comparison.catalog import Catalog
from client_sdk.comparison.chunks import Comparison, Record, collect_chunks
from client_sdk.comparison.hashed import hashed_sender
from client_sdk.comparison.results import RecordResult
from client_sdk.comparison.verification_results import CountResult, VerificationResult
from client_sdk.connection.retry import NodeCalls
from client_sdk.errors import InvalidRequestError, ServiceError
from comparator.canonical import Domain, FieldSpec, KeyDefinitionError, encode_records
from comparator.errors import ComparatorError, InvalidInputError
from comparator.fields import FieldType
from comparator.verification import Verdict, VerificationPlan, unpack_verdicts

__all__ = ["check_verification", "count_records", "verification_plan", "verify_records"]

Stub = _comparison_pb2_grpc.ComparisonServiceStub
Prepare = Callable[[Sequence[bytes]], Sequence[bytes]]
_Verdicts = tuple[npt.NDArray[np.uint8], list[tuple[bool, ...]]]


def verification_plan(
    entry: _catalog_pb2.Resource, comparison: Comparison, fields: Sequence[str]
) -> VerificationPlan:
    """What a verification of ``fields`` against the comparison's key encodes, from the catalog
    entry's field types (InvalidRequestError for a field the resource does not have)."""
    types = {f.name: f.type for f in entry.fields}
    unknown = [name for name in fields if name not in types]
    if unknown:
        raise InvalidRequestError(
            f"resource {entry.id!r} has no field {unknown[0]!r} (fields: {', '.join(types)})"
        )
    try:
        specs = tuple(FieldSpec(name, FieldType(types[name])) for name in fields)
        return VerificationPlan(entry.id, comparison.comparison_key, specs, entry.key_version)
    except KeyDefinitionError as exc:
        raise InvalidRequestError(str(exc)) from None
    except (ComparatorError, ValueError) as exc:
        raise ServiceError(f"the catalog entry of {entry.id!r} is unusable: {exc}") from None


def verify_records(
    calls: NodeCalls,
    stub: Stub,
    catalog: Catalog,
    entry: _catalog_pb2.Resource,
    comparison: Comparison,
    plan: VerificationPlan,
    items: list[Record],
    *,
    max_batch: int,
) -> VerificationResult:
    """Verify ``plan.fields`` of ``items`` against its key; ``max_batch`` items per request."""
    width = plan.width
    prepare: Prepare = list  # blinded mode blinds per attempt, as compare does
    if comparison.mode == "hashed":
        names = tuple(domain.key_name for domain in plan.domains)
        hashers = catalog.hashers(entry, plan.key.name, names)

        def prepare(encoded: Sequence[bytes]) -> Sequence[bytes]:
            return [hashers[i % width].tag(item) for i, item in enumerate(encoded)]

        send, limit = hashed_sender(calls, stub.VerifyHashed, "VerifyHashed"), max_batch
    else:
        send = blinded_sender(
            calls,
            stub,
            entry,
            stub.VerifyBlinded,
            "VerifyBlinded",
            verifiable=comparison.verifiable,
        )
        limit = blinded_batch(max_batch, comparison.verifiable)
    fields = tuple(spec.name for spec in plan.fields)

    def check(result: _comparison_pb2.VerificationResult, records: int) -> _Verdicts:
        return check_verification(result, records, len(fields))

    collected = collect_chunks(
        comparison,
        plan.key_version,
        items,
        max_batch=max(1, limit // width),
        encode=plan.encode,
        prepare=prepare,
        send=send,
        check=check,
    )
    codes = np.full(len(items), 3, dtype=np.uint8)
    mismatched: dict[int, tuple[str, ...]] = {}
    for positions, (verdicts, rows) in zip(collected.positions, collected.answers, strict=True):
        codes[positions] = verdicts
        for position, verdict, row in zip(positions.tolist(), verdicts, rows, strict=True):
            if verdict == Verdict.INCONSISTENT:
                differ = zip(fields, row, strict=True)
                mismatched[position] = tuple(name for name, differs in differ if differs)
    return VerificationResult(
        codes,
        mismatched,
        collected.errors,
        resource_id=comparison.resource_id,
        comparison_key=plan.key.name,
        fields=fields,
        mode=comparison.mode,
        request_id=comparison.request_id,
        comparison_ids=collected.comparison_ids,
    )


def check_verification(
    result: _comparison_pb2.VerificationResult, records: int, fields: int
) -> _Verdicts:
    """The node's answer for a chunk of ``records`` records, refused unless self-consistent."""
    if result.record_count != records:
        raise ServiceError(
            f"the node answered for {result.record_count} record(s); {records} were sent"
        )
    try:
        verdicts, rows = unpack_verdicts(result.outcomes, result.mismatch_bits, records, fields)
    except InvalidInputError as exc:
        raise ServiceError(
            f"the node's verification answer is not for this request: {exc}"
        ) from None
    codes = np.array(verdicts, dtype=np.uint8)
    counted = [int(np.count_nonzero(codes == v)) for v in Verdict]
    stated = [result.not_found_count, result.consistent_count, result.inconsistent_count]
    if counted != stated:
        raise ServiceError("the node's counts per outcome disagree with its outcomes")
    return codes, rows


def count_records(
    calls: NodeCalls,
    stub: Stub,
    catalog: Catalog,
    entry: _catalog_pb2.Resource,
    comparison: Comparison,
    items: list[Record],
    *,
    max_batch: int,
) -> CountResult:
    """How many of ``items`` match, and nothing per record; ``max_batch`` records per request."""
    key = comparison.comparison_key
    domain = Domain(entry.id, key.name, entry.key_version)
    prepare: Prepare = list
    if comparison.mode == "hashed":
        hasher, domain = catalog.hasher(entry, key)
        prepare, send = hasher.tags, hashed_sender(calls, stub.CountHashed, "CountHashed")
    else:
        send = blinded_sender(
            calls, stub, entry, stub.CountBlinded, "CountBlinded", verifiable=comparison.verifiable
        )
        max_batch = blinded_batch(max_batch, comparison.verifiable)

    def check(result: _comparison_pb2.CountResult, records: int) -> int:
        if result.item_count != records or result.match_count > records:
            raise ServiceError(
                f"the node counted {result.match_count} of {result.item_count} item(s); "
                f"{records} were sent"
            )
        return int(result.match_count)

    collected = collect_chunks(
        comparison,
        domain.key_version,
        items,
        max_batch=max_batch,
        encode=lambda rows: encode_records(domain, key, rows),
        prepare=prepare,
        send=send,
        check=check,
    )
    errors = sorted(collected.errors, key=lambda e: e.index)
    return CountResult(
        records=len(items),
        compared=sum(len(p) for p in collected.positions),
        matched_count=sum(collected.answers),
        errors=tuple(RecordResult(e.index, "error", e.field or None, e.reason) for e in errors),
        resource_id=comparison.resource_id,
        comparison_key=key.name,
        mode=comparison.mode,
        request_id=comparison.request_id,
        comparison_ids=tuple(collected.comparison_ids),
    )
