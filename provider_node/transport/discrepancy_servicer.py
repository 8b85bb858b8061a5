"""The DiscrepancyService servicer (article 26): protobuf in, ``DiscrepancyDesk`` calls, protobuf
out. Nothing else; refusals reach ``status.abort_with`` through ``servicer.guarded``."""

from __future__ import annotations

import grpc

from bidui.v1 import discrepancy_pb2 as _discrepancy_pb2
from bidui.v1 import discrepancy_pb2_grpc as _discrepancy_pb2_grpc
from provider_node.comparison.node import ProviderNode
from provider_node.core.vocabulary import Action
from provider_node.governance.discrepancies import DiscrepancyDesk, ReportStatus
from provider_node.identity.auth import Authenticator
from provider_node.store.models import DiscrepancyReport
from provider_node.transport.guarded import ServicerBase, guarded, timestamp

__all__ = ["DiscrepancyServicer"]

_STATUSES = {
    ReportStatus.PENDING: _discrepancy_pb2.DISCREPANCY_STATUS_PENDING,
    ReportStatus.CONFIRMED: _discrepancy_pb2.DISCREPANCY_STATUS_CONFIRMED,
    ReportStatus.CORRECTED: _discrepancy_pb2.DISCREPANCY_STATUS_CORRECTED,
    ReportStatus.REJECTED: _discrepancy_pb2.DISCREPANCY_STATUS_REJECTED,
}


class DiscrepancyServicer(ServicerBase, _discrepancy_pb2_grpc.DiscrepancyServiceServicer):
    """Reports on doubted results; the answers are the operator's."""

    def __init__(
        self, node: ProviderNode, authenticator: Authenticator, desk: DiscrepancyDesk
    ) -> None:
        super().__init__(node, authenticator)
        self._desk = desk

    def File(
        self, request: _discrepancy_pb2.FileDiscrepancyRequest, context: grpc.ServicerContext
    ) -> _discrepancy_pb2.DiscrepancyReport:
        def call() -> _discrepancy_pb2.DiscrepancyReport:
            caller = self._caller(context, Action.DISCREPANCY_REPORT)
            report = self._desk.file(
                caller, request.comparison_id, list(request.positions), request.description
            )
            return _report_message(report)

        return guarded(context, call)

    def Get(
        self, request: _discrepancy_pb2.GetDiscrepancyRequest, context: grpc.ServicerContext
    ) -> _discrepancy_pb2.DiscrepancyReport:
        def call() -> _discrepancy_pb2.DiscrepancyReport:
            caller = self._caller(context, Action.DISCREPANCY_READ)
            return _report_message(self._desk.report(caller, request.report_id))

        return guarded(context, call)

    def List(
        self, request: _discrepancy_pb2.ListDiscrepanciesRequest, context: grpc.ServicerContext
    ) -> _discrepancy_pb2.ListDiscrepanciesResponse:
        def call() -> _discrepancy_pb2.ListDiscrepanciesResponse:
            caller = self._caller(context, Action.DISCREPANCY_READ)
            found = self._desk.reports(caller, request.comparison_id)
            return _discrepancy_pb2.ListDiscrepanciesResponse(
                reports=[_report_message(r) for r in found]
            )

        return guarded(context, call)


def _report_message(report: DiscrepancyReport) -> _discrepancy_pb2.DiscrepancyReport:
    return _discrepancy_pb2.DiscrepancyReport(
        id=report.id,
        comparison_id=report.comparison_id,
        resource_id=report.resource_id,
        compared_at=timestamp(report.compared_at),
        positions=report.positions,
        description=report.description,
        filed_at=timestamp(report.filed_at),
        report_deadline=report.report_deadline.isoformat(),
        answer_deadline=report.answer_deadline.isoformat(),
        deadlines_provisional=report.deadlines_provisional,
        status=_STATUSES[ReportStatus(report.status)],
        answered_at=timestamp(report.answered_at),
        answer=report.answer or "",
        correction_id=report.correction_id or "",
    )
