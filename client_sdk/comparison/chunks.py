"""One comparison as a pipeline of chunks: canonicalise, prepare, send, check the answer.

A comparison of many records is sent as chunks of at most ``max_batch`` records, each one request
and one audit record at the node, all sharing the comparison's ``request_id``. Both modes and every
answer use the same pipeline (``collect_chunks``); they differ only in how a chunk's records are
encoded (one item per record, or a verification's ``1 + F``), prepared (HMAC tags, or nothing:
blinded mode blinds inside each attempt), sent (the answer's RPC) and how the node's answer for it
is checked (``match_bits``, or the verification's and count's checks).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import comparison_pb2 as _comparison_pb2
from client_sdk.comparison.catalog import ComparisonMode
from client_sdk.comparison.results import ComparisonResult, result_from_arrays
from client_sdk.errors import ServiceError
from comparator.canonical import ComparisonKey, Domain, EncodedBatch, RecordError, encode_records
from comparator.errors import InvalidInputError
from comparator.index import unpack_match_array

__all__ = [
    "ChunkSender",
    "Collected",
    "Comparison",
    "ProgressCallback",
    "Record",
    "chunk_ranges",
    "collect_chunks",
    "match_bits",
    "run_chunks",
]

#: Called after each chunk with (records done, records in total).
ProgressCallback = Callable[[int, int], None]
#: A record: a mapping by field name, or a sequence positional in the key's field order.
Record = Mapping[str, Any] | Sequence[Any]
#: Sends one prepared chunk under a header and returns the node's answer for it (a MatchResult,
#: VerificationResult or CountResult: the answer's RPC's).
ChunkSender = Callable[[Sequence[bytes], _comparison_pb2.ComparisonHeader], Any]

_T = TypeVar("_T")
_A = TypeVar("_A")


@dataclass(frozen=True)
class Comparison:
    """What one ``compare`` call asks, whatever its mode: the same for each of its chunks."""

    resource_id: str
    comparison_key: ComparisonKey
    mode: ComparisonMode
    purpose: str
    request_id: str
    progress: ProgressCallback | None = None
    #: The grant the comparison relies on (conditional resources); "" lets the node find it.
    grant_id: str = ""
    #: What the node answers (unspecified: match bits) and, for a verification, the fields
    #: verified against the key.
    answer: _catalog_pb2.Answer.ValueType = _catalog_pb2.ANSWER_UNSPECIFIED
    verify_fields: tuple[str, ...] = ()
    #: Blinded mode: RFC 9497 modeVOPRF (the node proves its key) rather than modeOPRF.
    verifiable: bool = False

    def header(self, key_version: int) -> _comparison_pb2.ComparisonHeader:
        """The header every request of this comparison carries."""
        return _comparison_pb2.ComparisonHeader(
            resource_id=self.resource_id,
            comparison_key=self.comparison_key.name,
            purpose=self.purpose,
            request_id=self.request_id,
            key_version=key_version,
            grant_id=self.grant_id,
            answer=self.answer,
            verify_fields=self.verify_fields,
            verifiable=self.verifiable,
        )


def chunk_ranges(count: int, max_batch: int) -> list[range]:
    """Split ``range(count)`` into consecutive ranges of at most ``max_batch`` items."""
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    if count < 0:
        raise ValueError("count must be >= 0")
    return [range(start, min(start + max_batch, count)) for start in range(0, count, max_batch)]


def match_bits(result: _comparison_pb2.MatchResult, count: int) -> npt.NDArray[np.bool_]:
    """Unpack and check the node's answer for a chunk of ``count`` items."""
    if result.item_count != count or len(result.match_bits) != (count + 7) // 8:
        raise ServiceError(
            f"the node answered for {result.item_count} item(s) in {len(result.match_bits)} "
            f"byte(s); {count} item(s) were sent"
        )
    try:
        bits = unpack_match_array(result.match_bits, count)
    except InvalidInputError:  # the length was checked above: padding bits are set
        raise ServiceError("the node set padding bits after the last match bit") from None
    if int(np.count_nonzero(bits)) != result.match_count:
        raise ServiceError("the node's match count disagrees with its match bits")
    return bits


@dataclass
class Collected(Generic[_A]):
    """What the chunks of one comparison brought back, in input order.

    ``answers[k]`` is the checked answer for the records at ``positions[k]`` (input indexes);
    ``errors`` are the records that were invalid and never sent.
    """

    positions: list[npt.NDArray[np.int64]] = field(default_factory=list)
    answers: list[_A] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    comparison_ids: list[str] = field(default_factory=list)

    def all_positions(self) -> npt.NDArray[np.int64]:
        return np.concatenate(self.positions) if self.positions else np.zeros(0, dtype=np.int64)


def collect_chunks(
    comparison: Comparison,
    key_version: int,
    items: list[Record],
    *,
    max_batch: int,
    encode: Callable[[Sequence[Record]], EncodedBatch],
    prepare: Callable[[Sequence[bytes]], Sequence[bytes]],
    send: ChunkSender,
    check: Callable[[Any, int], _A],
) -> Collected[_A]:
    """Encode, prepare and send the input ``max_batch`` records at a time; ``check`` each answer
    against the number of records its chunk sent.

    Chunk ``k`` is sent from a helper thread while chunk ``k + 1`` is encoded and prepared here,
    so the requester's CPU work overlaps the node's; answers are collected in order, and any
    failure ends the comparison with no result.
    """
    progress = comparison.progress
    header = comparison.header(key_version)
    total = len(items)
    collected: Collected[_A] = Collected()
    pending: deque[tuple[Future[Any], int]] = deque()
    done = 0

    def report(rows: int) -> None:
        nonlocal done
        done += rows
        if progress is not None:
            progress(done, total)

    def collect() -> None:
        future, rows = pending.popleft()
        result = future.result()
        sent = len(collected.positions[len(collected.answers)])
        collected.answers.append(check(result, sent))
        collected.comparison_ids.append(result.comparison_id)
        report(rows)

    # One chunk has nothing to overlap with: send it from this thread, no thread to start.
    sends = ThreadPoolExecutor if total > max_batch else _InlineExecutor
    with sends(1, thread_name_prefix="bidui-send") as sender:
        for chunk in chunk_ranges(total, max_batch):
            batch = encode(items[chunk.start : chunk.stop])
            collected.errors.extend(replace(e, index=e.index + chunk.start) for e in batch.errors)
            if not batch.encoded:  # every row invalid: nothing to send, nothing to audit
                while pending:
                    collect()
                report(len(chunk))
                continue
            if len(batch.positions) == len(chunk):  # every record valid: no list to convert
                positions = np.arange(chunk.start, chunk.stop, dtype=np.int64)
            else:
                positions = np.asarray(batch.positions, dtype=np.int64) + chunk.start
            collected.positions.append(positions)
            pending.append((sender.submit(send, prepare(batch.encoded), header), len(chunk)))
            if len(pending) > 1:
                collect()
        while pending:
            collect()
    if total == 0 and progress is not None:
        progress(0, 0)
    return collected


def run_chunks(
    comparison: Comparison,
    domain: Domain,
    items: list[Record],
    *,
    max_batch: int,
    prepare: Callable[[Sequence[bytes]], Sequence[bytes]],
    send: ChunkSender,
) -> ComparisonResult:
    """Match bits for ``items``: ``collect_chunks`` with one item per record."""
    key = comparison.comparison_key
    collected = collect_chunks(
        comparison,
        domain.key_version,
        items,
        max_batch=max_batch,
        encode=lambda rows: encode_records(domain, key, rows),
        prepare=prepare,
        send=send,
        check=match_bits,
    )
    return result_from_arrays(
        len(items),
        collected.all_positions(),
        np.concatenate(collected.answers) if collected.answers else np.zeros(0, dtype=bool),
        collected.errors,
        resource_id=comparison.resource_id,
        comparison_key=key.name,
        mode=comparison.mode,
        request_id=comparison.request_id,
        comparison_ids=collected.comparison_ids,
    )


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
