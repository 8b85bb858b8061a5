"""The results of a verification (核验) and of a count-only comparison, aligned with the input.

A verification says, per input record: ``not_found`` (库无: the provider's register has no record
with this key), ``consistent`` (一致: found, and every requested field agrees), ``inconsistent``
(不一致: found, and ``mismatched_fields`` disagree), or ``error`` (the record could not be
canonicalised for the key and the fields and was never sent; ``field`` and ``reason`` say why).

A count says only how many of the records sent matched; invalid records are still reported one by
one (they were never sent).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from client_sdk.comparison.results import RecordErrorLike, RecordResult

__all__ = [
    "LABELS",
    "CountResult",
    "RecordVerification",
    "VerificationResult",
    "VerifyStatus",
]

VerifyStatus = Literal["not_found", "consistent", "inconsistent", "error"]
#: The Chinese labels clerks know the outcomes by.
LABELS: dict[VerifyStatus, str] = {
    "not_found": "库无",
    "consistent": "一致",
    "inconsistent": "不一致",
    "error": "无效",
}
# Codes as the wire's outcome bytes, plus one for records never sent.
_STATUSES: tuple[VerifyStatus, ...] = ("not_found", "consistent", "inconsistent", "error")
_ERROR = 3


@dataclass(frozen=True, slots=True)
class RecordVerification:
    """The outcome for the input record at ``index``."""

    index: int
    status: VerifyStatus
    #: ``inconsistent`` only: the requested fields that disagree, in the order they were asked.
    mismatched_fields: tuple[str, ...] = ()
    field: str | None = None
    reason: str | None = None

    @property
    def label(self) -> str:
        """库无, 一致, 不一致, or 无效 for an invalid record."""
        return LABELS[self.status]

    @property
    def message(self) -> str:
        """``"field: reason"`` for an error, the empty string otherwise."""
        if self.status != "error":
            return ""
        return RecordResult(self.index, "error", self.field, self.reason).message


class VerificationResult(Sequence[RecordVerification]):
    """Per-record verification outcomes, in input order, with the node's audit record ids.

    Kept as one byte per record and the mismatches of the inconsistent ones only.
    """

    __slots__ = (
        "_codes",
        "_errors",
        "_mismatched",
        "comparison_ids",
        "comparison_key",
        "fields",
        "mode",
        "request_id",
        "resource_id",
    )

    def __init__(
        self,
        codes: npt.NDArray[np.uint8],
        mismatched: dict[int, tuple[str, ...]],
        errors: Iterable[RecordErrorLike],
        *,
        resource_id: str,
        comparison_key: str,
        fields: Sequence[str],
        mode: str,
        request_id: str,
        comparison_ids: Iterable[str] = (),
    ) -> None:
        """``codes`` holds 0 / 1 / 2 (the wire's outcomes) per record and 3 where ``errors``
        has the record; ``mismatched`` the fields of each inconsistent record."""
        self._codes = codes
        self._mismatched = mismatched
        self._errors = {e.index: (e.field or None, e.reason) for e in errors}
        if set(np.flatnonzero(codes == _ERROR).tolist()) != set(self._errors):
            raise ValueError("every invalid record, and only those, must have its error")
        self.resource_id = resource_id
        self.comparison_key = comparison_key
        self.fields = tuple(fields)
        self.mode = mode
        self.request_id = request_id
        #: One audit record id per request chunk, in order.
        self.comparison_ids: tuple[str, ...] = tuple(comparison_ids)

    def _record(self, index: int) -> RecordVerification:
        status = _STATUSES[int(self._codes[index])]
        if status == "error":
            field, reason = self._errors[index]
            return RecordVerification(index, "error", (), field, reason)
        return RecordVerification(index, status, self._mismatched.get(index, ()))

    @overload
    def __getitem__(self, index: int) -> RecordVerification: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[RecordVerification]: ...

    def __getitem__(self, index: int | slice) -> RecordVerification | Sequence[RecordVerification]:
        if isinstance(index, slice):
            return tuple(self._record(i) for i in range(len(self))[index])
        if not -len(self) <= index < len(self):
            raise IndexError("verification result index out of range")
        return self._record(index % len(self))

    def __len__(self) -> int:
        return len(self._codes)

    def __iter__(self) -> Iterator[RecordVerification]:
        return (self._record(i) for i in range(len(self)))

    def __repr__(self) -> str:
        return (
            f"VerificationResult(resource_id={self.resource_id!r}, "
            f"comparison_key={self.comparison_key!r}, fields={self.fields!r}, mode={self.mode!r}, "
            f"records={len(self)}, not_found={self.not_found_count}, "
            f"consistent={self.consistent_count}, inconsistent={self.inconsistent_count}, "
            f"errors={self.error_count}, request_id={self.request_id!r})"
        )

    def _count(self, code: int) -> int:
        return int(np.count_nonzero(self._codes == code))

    @property
    def not_found_count(self) -> int:
        return self._count(0)

    @property
    def consistent_count(self) -> int:
        return self._count(1)

    @property
    def inconsistent_count(self) -> int:
        return self._count(2)

    @property
    def error_count(self) -> int:
        return len(self._errors)

    def indexes(self, status: VerifyStatus) -> list[int]:
        """Indexes of the input records with ``status``."""
        return [int(i) for i in np.flatnonzero(self._codes == _STATUSES.index(status))]

    @property
    def errors(self) -> list[RecordVerification]:
        """The records that could not be verified, with field and reason."""
        return [self._record(i) for i in sorted(self._errors)]


@dataclass(frozen=True)
class CountResult:
    """A count-only comparison: how many records matched, never which.

    ``records`` were given, ``compared`` of them sent (the others are ``errors``, each with its
    field and reason), and ``matched_count`` of those matched.
    """

    records: int
    compared: int
    matched_count: int
    errors: tuple[RecordResult, ...]
    resource_id: str
    comparison_key: str
    mode: str
    request_id: str
    comparison_ids: tuple[str, ...] = ()

    @property
    def error_count(self) -> int:
        return len(self.errors)

    @property
    def not_matched_count(self) -> int:
        return self.compared - self.matched_count
