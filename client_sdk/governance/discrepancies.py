"""Doubted results, the requester's side (article 26): report them, then read the provider's answer.

::

    result = compare(...)                          result.comparison_ids: one per request (chunk)
    locate_records(result, [3, 17], max_batch)     -> {comparison_id: [positions]} of input rows
    report_discrepancy(comparison_id, positions, description)                    File
      -> DiscrepancyReport PENDING, within 3 Chinese working days of the comparison only;
         answer_deadline 5 Chinese working days after filing
    the provider's operator confirms, corrects (naming the index refresh that did it) or rejects
    with a reason, on the node's own machine, never over this API
    discrepancy(id), discrepancies(comparison_id)                                 Get, List

A position is an item's place within one of the node's comparisons (0 is its first item), not a
row of the caller's input: invalid rows are never sent and a large input is split into several
comparisons; :func:`locate_records` maps input rows to positions. A description says in words
what seems wrong and carries no record values: the SDK refuses one with a run of six or more
digits before anything is sent, and so does the node.

A department reports only on its own comparisons and sees only its own reports (another's id is
reported as missing, :class:`ResourceNotFoundError`). A report after the third working day is
refused :class:`InvalidRequestError` naming the deadline. Like Apply, File is retried only while
no connection to the node is made; when it may have been recorded, the error says to look at
:meth:`DiscrepancyCalls.discrepancies` before reporting again.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from bidui.v1 import discrepancy_pb2 as _discrepancy_pb2
from bidui.v1 import discrepancy_pb2_grpc as _discrepancy_pb2_grpc
from client_sdk.comparison.chunks import chunk_ranges
from client_sdk.comparison.results import ComparisonResult
from client_sdk.connection.retry import NodeCalls
from client_sdk.errors import InvalidRequestError, ServiceError
from client_sdk.governance.received import node_date, node_instant

__all__ = [
    "DiscrepancyCalls",
    "DiscrepancyReport",
    "DiscrepancyStatus",
    "locate_records",
    "report_from_message",
]

_MAX_POSITION = 2**32 - 1  # a uint32 on the wire; the node checks against the comparison
# The node's rule (provider_node.governance.discrepancy_records): six digits in a row are a record
# value.
_RECORD_VALUE = re.compile(r"[0-9０-９]{6,}")


class DiscrepancyStatus(StrEnum):
    """Where a report stands: waiting for the provider, or answered."""

    PENDING = "pending"
    #: The doubted results were wrong; not corrected yet.
    CONFIRMED = "confirmed"
    #: Wrong, and corrected by the index refresh ``correction_id``: compare again.
    CORRECTED = "corrected"
    #: The results stand; ``answer`` says why.
    REJECTED = "rejected"


_STATUSES = {
    _discrepancy_pb2.DISCREPANCY_STATUS_PENDING: DiscrepancyStatus.PENDING,
    _discrepancy_pb2.DISCREPANCY_STATUS_CONFIRMED: DiscrepancyStatus.CONFIRMED,
    _discrepancy_pb2.DISCREPANCY_STATUS_CORRECTED: DiscrepancyStatus.CORRECTED,
    _discrepancy_pb2.DISCREPANCY_STATUS_REJECTED: DiscrepancyStatus.REJECTED,
}


@dataclass(frozen=True)
class DiscrepancyReport:
    """A report on a doubted result, as the node keeps it (article 26).

    ``report_deadline`` was the last day (in China) it could be filed; ``answer_deadline`` is the
    last day for the provider's answer. ``answered_at``, ``answer`` (mandatory for a rejection)
    and, for a correction, ``correction_id`` (the audit record of the index refresh) are set once
    answered.
    """

    id: str
    comparison_id: str
    resource_id: str
    compared_at: _dt.datetime
    positions: tuple[int, ...]
    description: str
    filed_at: _dt.datetime
    report_deadline: _dt.date
    answer_deadline: _dt.date
    status: DiscrepancyStatus
    answered_at: _dt.datetime | None = None
    answer: str = ""
    correction_id: str = ""
    #: A deadline was counted past the node's working-day calendar (weekdays less the fixed-date
    #: holidays): the node recounts it once that year is announced.
    deadlines_provisional: bool = False


class DiscrepancyCalls:
    """The DiscrepancyService calls of a client: :class:`ComparisonClient` has them."""

    def __init__(
        self, stub: _discrepancy_pb2_grpc.DiscrepancyServiceStub, calls: NodeCalls
    ) -> None:
        self._discrepancy_stub = stub
        self._calls = calls

    def report_discrepancy(
        self, comparison_id: str, positions: Iterable[int], description: str
    ) -> DiscrepancyReport:
        """Report that the results at ``positions`` of comparison ``comparison_id`` (one of
        ``ComparisonResult.comparison_ids``) seem wrong, saying why in ``description``; returns
        the PENDING report. Within 3 Chinese working days of the comparison (article 26)."""
        if not comparison_id or not comparison_id.strip():
            raise InvalidRequestError("comparison_id must name one of your comparisons")
        request = _discrepancy_pb2.FileDiscrepancyRequest(
            comparison_id=comparison_id.strip(),
            positions=_positions(positions),
            description=_description(description),
        )
        message = self._calls.recording(
            f"File a discrepancy on comparison {comparison_id!r}",
            self._discrepancy_stub.File,
            request,
            note="the node may have recorded the report before the answer was lost: "
            f"see discrepancies({comparison_id!r}) before reporting again",
        )
        return report_from_message(message)

    def discrepancy(self, report_id: str) -> DiscrepancyReport:
        """One of this department's reports, with the provider's answer once given."""
        if not report_id:
            raise InvalidRequestError("report_id must not be empty")
        message = self._calls.unary(
            f"Get discrepancy {report_id!r}",
            self._discrepancy_stub.Get,
            _discrepancy_pb2.GetDiscrepancyRequest(report_id=report_id),
        )
        return report_from_message(message)

    def discrepancies(self, comparison_id: str | None = None) -> list[DiscrepancyReport]:
        """This department's reports (on ``comparison_id`` only, if given), oldest first."""
        response = self._calls.unary(
            "List discrepancies",
            self._discrepancy_stub.List,
            _discrepancy_pb2.ListDiscrepanciesRequest(comparison_id=comparison_id or ""),
        )
        return [report_from_message(message) for message in response.reports]


def locate_records(
    result: ComparisonResult, indices: Iterable[int], max_batch: int
) -> dict[str, list[int]]:
    """Where the input records ``indices`` of ``result`` stand in the node's comparisons:
    ``{comparison_id: [positions]}``, ready for :meth:`DiscrepancyCalls.report_discrepancy`.

    ``max_batch`` is the client's that made the comparison (``ComparisonClient.max_batch``). A
    record that was invalid was never sent: :class:`InvalidRequestError`.
    """
    wanted = set(indices)
    outside = sorted(i for i in wanted if not 0 <= i < len(result))
    if outside:
        raise InvalidRequestError(f"record {outside[0]} is not in the result")
    located: dict[str, list[int]] = {}
    ids = iter(result.comparison_ids)
    for chunk in chunk_ranges(len(result), max_batch):
        sent = [i for i in chunk if not result[i].is_error]
        if not sent:
            continue  # nothing valid: no request, no comparison id
        comparison_id = next(ids, None)
        if comparison_id is None:
            raise ValueError("the result has fewer comparisons than max_batch implies")
        for position, index in enumerate(sent):
            if index in wanted:
                located.setdefault(comparison_id, []).append(position)
    never_sent = sorted(i for i in wanted if result[i].is_error)
    if never_sent:
        raise InvalidRequestError(
            f"record {never_sent[0]} was invalid and never sent: there is no result to doubt"
        )
    return located


def _positions(positions: Iterable[int]) -> list[int]:
    if isinstance(positions, str | bytes):
        raise InvalidRequestError("positions must be a list of whole numbers")
    places = list(positions)
    if not places:
        raise InvalidRequestError("name the doubted results by their positions in the comparison")
    for place in places:
        whole = isinstance(place, int) and not isinstance(place, bool)
        if not whole or not 0 <= place <= _MAX_POSITION:
            raise InvalidRequestError(f"position {place!r} is not a whole number from 0")
    return places


def _description(description: str) -> str:
    if not isinstance(description, str) or not description.strip():
        raise InvalidRequestError("description must say what seems wrong")
    if _RECORD_VALUE.search(description):
        raise InvalidRequestError(
            "description must not carry record values (an identity number, a phone number, a "
            "code): name the results by position and say what seems wrong in words"
        )
    return description.strip()


def report_from_message(message: _discrepancy_pb2.DiscrepancyReport) -> DiscrepancyReport:
    """The SDK's :class:`DiscrepancyReport` for the node's message; ServiceError if malformed."""
    where = f"discrepancy report {message.id!r}"
    status = _STATUSES.get(message.status)
    if status is None:
        raise ServiceError(f"the node sent {where} without a known status")
    for name in ("compared_at", "filed_at"):
        if not message.HasField(name):
            raise ServiceError(f"the node sent {where} without {name}")
    return DiscrepancyReport(
        id=message.id,
        comparison_id=message.comparison_id,
        resource_id=message.resource_id,
        compared_at=node_instant(message.compared_at),
        positions=tuple(message.positions),
        description=message.description,
        filed_at=node_instant(message.filed_at),
        report_deadline=node_date(message.report_deadline, "report_deadline", where),
        answer_deadline=node_date(message.answer_deadline, "answer_deadline", where),
        deadlines_provisional=message.deadlines_provisional,
        status=status,
        answered_at=node_instant(message.answered_at) if message.HasField("answered_at") else None,
        answer=message.answer,
        correction_id=message.correction_id,
    )
