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

__all__ = [
    "ComparisonResult",
    "MatchStatus",
    "RecordResult",
    "build_result",
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


class ComparisonResult(Sequence[RecordResult]):
    """Per-record outcomes, in input order, with the ids that tie them to the node's audit log."""

    __slots__ = (
        "_error_count",
        "_matched_count",
        "_records",
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
        self._records: tuple[RecordResult, ...] = tuple(records)
        for position, record in enumerate(self._records):
            if record.index != position:
                raise ValueError(f"record at position {position} has index {record.index}")
        self._matched_count = sum(1 for r in self._records if r.status == "matched")
        self._error_count = sum(1 for r in self._records if r.status == "error")
        self.resource_id = resource_id
        self.comparison_key = comparison_key
        self.mode = mode
        self.request_id = request_id
        #: One audit record id per request chunk, in order.
        self.comparison_ids: tuple[str, ...] = tuple(comparison_ids)

    @overload
    def __getitem__(self, index: int) -> RecordResult: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[RecordResult]: ...

    def __getitem__(self, index: int | slice) -> RecordResult | Sequence[RecordResult]:
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[RecordResult]:
        return iter(self._records)

    def __repr__(self) -> str:
        return (
            f"ComparisonResult(resource_id={self.resource_id!r}, "
            f"comparison_key={self.comparison_key!r}, mode={self.mode!r}, records={len(self)}, "
            f"matched={self.matched_count}, not_matched={self.not_matched_count}, "
            f"errors={self.error_count}, request_id={self.request_id!r})"
        )

    @property
    def matched_count(self) -> int:
        return self._matched_count

    @property
    def error_count(self) -> int:
        return self._error_count

    @property
    def not_matched_count(self) -> int:
        return len(self._records) - self._matched_count - self._error_count

    @property
    def matched(self) -> list[int]:
        """Indexes of the input records that matched."""
        return [r.index for r in self._records if r.status == "matched"]

    @property
    def not_matched(self) -> list[int]:
        """Indexes of the input records that were compared and did not match."""
        return [r.index for r in self._records if r.status == "not_matched"]

    @property
    def errors(self) -> list[RecordResult]:
        """The records that could not be compared, with field and reason."""
        return [r for r in self._records if r.status == "error"]


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
    slots: list[RecordResult | None] = [None] * count
    for index, field, reason in ((e.index, e.field, e.reason) for e in errors):
        _check_free(slots, index)
        slots[index] = RecordResult(index, "error", field or None, reason)
    for index, matched in matches:
        _check_free(slots, index)
        slots[index] = RecordResult(index, "matched" if matched else "not_matched")
    missing = [i for i, slot in enumerate(slots) if slot is None]
    if missing:
        raise ValueError(f"no outcome for {len(missing)} record(s), first at index {missing[0]}")
    return ComparisonResult(
        (slot for slot in slots if slot is not None),
        resource_id=resource_id,
        comparison_key=comparison_key,
        mode=mode,
        request_id=request_id,
        comparison_ids=comparison_ids,
    )


def _check_free(slots: Sequence[RecordResult | None], index: int) -> None:
    if not 0 <= index < len(slots):
        raise ValueError(f"record index {index} out of range for {len(slots)} records")
    if slots[index] is not None:
        raise ValueError(f"record index {index} has two outcomes")
