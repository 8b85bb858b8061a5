"""The result of one comparison, aligned with the caller's input records.

Record ``i`` of the input is ``result[i]``: matched, not matched, or an error (the record could not
be canonicalised for the comparison key and was never sent). One comparison may have taken several
requests (chunks); each is one audit record at the node, listed in ``comparison_ids``, and all share
``request_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "ComparisonResult",
    "MatchStatus",
    "RecordResult",
    "build_result",
    "result_from_arrays",
]

MatchStatus = Literal["matched", "not_matched", "error"]


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The outcome for the input record at ``index``.

    ``field`` and ``reason`` are set only when ``status == "error"``: the field that failed and
    why, in words a clerk can act on (never the value itself).
    """

    index: int
    status: MatchStatus
    field: str | None = None
    reason: str | None = None

    @property
    def is_match(self) -> bool:
        return self.status == "matched"

    @property
    def is_error(self) -> bool:
        return self.status == "error"

    @property
    def message(self) -> str:
        """``"field: reason"`` for an error, the empty string otherwise."""
        if self.status != "error":
            return ""
        if self.field:
            return f"{self.field}: {self.reason or 'invalid'}"
        return self.reason or "invalid"


_NONE, _MATCHED, _NOT_MATCHED, _ERROR = 0, 1, 2, 3
_CODES: dict[str, int] = {"matched": _MATCHED, "not_matched": _NOT_MATCHED, "error": _ERROR}
_STATUSES: tuple[MatchStatus, ...] = ("matched", "matched", "not_matched", "error")


class ComparisonResult(Sequence[RecordResult]):
    """Per-record outcomes, in input order, with the ids that tie them to the node's audit log.

    Outcomes are kept as one byte per record (a million records cost a megabyte, not a million
    objects); ``RecordResult`` objects are made when read.
    """

    __slots__ = (
        "_codes",
        "_errors",
        "comparison_ids",
        "comparison_key",
        "mode",
        "request_id",
        "resource_id",
    )

    def __init__(
        self,
        records: Iterable[RecordResult],
        *,
        resource_id: str,
        comparison_key: str,
        mode: str,
        request_id: str,
        comparison_ids: Iterable[str] = (),
    ) -> None:
        records = tuple(records)
        for position, record in enumerate(records):
            if record.index != position:
                raise ValueError(f"record at position {position} has index {record.index}")
        codes = np.array([_CODES[r.status] for r in records], dtype=np.uint8)
        errors = {r.index: (r.field, r.reason) for r in records if r.status == "error"}
        self._init(codes, errors, resource_id, comparison_key, mode, request_id, comparison_ids)

    @classmethod
    def _from_codes(
        cls,
        codes: npt.NDArray[np.uint8],
        errors: dict[int, tuple[str | None, str | None]],
        *,
        resource_id: str,
        comparison_key: str,
        mode: str,
        request_id: str,
        comparison_ids: Iterable[str],
    ) -> ComparisonResult:
        result = cls.__new__(cls)
        result._init(codes, errors, resource_id, comparison_key, mode, request_id, comparison_ids)
        return result

    def _init(
        self,
        codes: npt.NDArray[np.uint8],
        errors: dict[int, tuple[str | None, str | None]],
        resource_id: str,
        comparison_key: str,
        mode: str,
        request_id: str,
        comparison_ids: Iterable[str],
    ) -> None:
        self._codes = codes
        self._errors = errors
        self.resource_id = resource_id
        self.comparison_key = comparison_key
        self.mode = mode
        self.request_id = request_id
        #: One audit record id per request chunk, in order.
        self.comparison_ids: tuple[str, ...] = tuple(comparison_ids)

    def _record(self, index: int) -> RecordResult:
        code = int(self._codes[index])
        if code == _ERROR:
            field, reason = self._errors[index]
            return RecordResult(index, "error", field, reason)
        return RecordResult(index, _STATUSES[code])

    @overload
    def __getitem__(self, index: int) -> RecordResult: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[RecordResult]: ...

    def __getitem__(self, index: int | slice) -> RecordResult | Sequence[RecordResult]:
        if isinstance(index, slice):
            return tuple(self._record(i) for i in range(len(self))[index])
        if not -len(self) <= index < len(self):
            raise IndexError("comparison result index out of range")
        return self._record(index % len(self))

    def __len__(self) -> int:
        return len(self._codes)

    def __iter__(self) -> Iterator[RecordResult]:
        return (self._record(i) for i in range(len(self)))

    def __repr__(self) -> str:
        return (
            f"ComparisonResult(resource_id={self.resource_id!r}, "
            f"comparison_key={self.comparison_key!r}, mode={self.mode!r}, records={len(self)}, "
            f"matched={self.matched_count}, not_matched={self.not_matched_count}, "
            f"errors={self.error_count}, request_id={self.request_id!r})"
        )

    @property
    def matched_count(self) -> int:
        return int(np.count_nonzero(self._codes == _MATCHED))

    @property
    def error_count(self) -> int:
        return len(self._errors)

    @property
    def not_matched_count(self) -> int:
        return int(np.count_nonzero(self._codes == _NOT_MATCHED))

    @property
    def matched(self) -> list[int]:
        """Indexes of the input records that matched."""
        return [int(i) for i in np.flatnonzero(self._codes == _MATCHED)]

    @property
    def not_matched(self) -> list[int]:
        """Indexes of the input records that were compared and did not match."""
        return [int(i) for i in np.flatnonzero(self._codes == _NOT_MATCHED)]

    @property
    def errors(self) -> list[RecordResult]:
        """The records that could not be compared, with field and reason."""
        return [self._record(i) for i in sorted(self._errors)]


class RecordErrorLike(Protocol):
    """What :func:`build_result` needs of a per-record error (comparator's ``RecordError``)."""

    @property
    def index(self) -> int: ...

    @property
    def field(self) -> str | None: ...

    @property
    def reason(self) -> str: ...


def build_result(
    count: int,
    matches: Iterable[tuple[int, bool]],
    errors: Iterable[RecordErrorLike],
    *,
    resource_id: str,
    comparison_key: str,
    mode: str,
    request_id: str,
    comparison_ids: Iterable[str] = (),
) -> ComparisonResult:
    """Assemble a result for ``count`` input records.

    ``matches`` gives ``(input index, matched)`` for every record that was compared; ``errors``
    every record that was not. Each index in ``range(count)`` must be covered exactly once.
    """
    pairs = list(matches)
    return result_from_arrays(
        count,
        np.array([index for index, _ in pairs], dtype=np.int64),
        np.array([matched for _, matched in pairs], dtype=bool),
        errors,
        resource_id=resource_id,
        comparison_key=comparison_key,
        mode=mode,
        request_id=request_id,
        comparison_ids=comparison_ids,
    )


def result_from_arrays(
    count: int,
    positions: npt.NDArray[np.int64],
    matched: npt.NDArray[np.bool_],
    errors: Iterable[RecordErrorLike],
    *,
    resource_id: str,
    comparison_key: str,
    mode: str,
    request_id: str,
    comparison_ids: Iterable[str] = (),
) -> ComparisonResult:
    """``build_result`` for a whole batch at once: ``matched[i]`` is the answer for input record
    ``positions[i]``. Checks that every record has exactly one outcome."""
    if len(positions) != len(matched):
        raise ValueError("positions and match bits differ in length")
    if len(positions) and (positions.min() < 0 or positions.max() >= count):
        raise ValueError(f"record index out of range for {count} records")
    codes = np.zeros(count, dtype=np.uint8)
    codes[positions] = np.where(matched, _MATCHED, _NOT_MATCHED)
    if np.count_nonzero(codes) != len(positions):
        raise ValueError("a record index has two outcomes")
    error_map: dict[int, tuple[str | None, str | None]] = {}
    for error in errors:
        index = error.index
        if not 0 <= index < count:
            raise ValueError(f"record index {index} out of range for {count} records")
        if codes[index] != _NONE:
            raise ValueError(f"record index {index} has two outcomes")
        codes[index] = _ERROR
        error_map[index] = (error.field or None, error.reason)
    missing = np.flatnonzero(codes == _NONE)
    if len(missing):
        raise ValueError(
            f"no outcome for {len(missing)} record(s), first at index {int(missing[0])}"
        )
    return ComparisonResult._from_codes(
        codes,
        error_map,
        resource_id=resource_id,
        comparison_key=comparison_key,
        mode=mode,
        request_id=request_id,
        comparison_ids=comparison_ids,
    )
