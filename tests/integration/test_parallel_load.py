"""Ordinary parallel work is answered: a department running many requests at once on the
default SQLite store queues for the store instead of being refused UNAVAILABLE, and another
department flooding the node is served in turn, not ahead of everyone (issue 17)."""

from __future__ import annotations

import threading
import uuid

import grpc

from bidui.v1 import comparison_pb2, comparison_pb2_grpc
from tests.integration.audit_helpers import audit_records
from tests.integration.conftest import NodeUnderTest
from tests.integration.test_refusals import header

PARALLEL = 20


def _compare_in_parallel(node: NodeUnderTest, purpose: str) -> list[grpc.StatusCode]:
    """``PARALLEL`` one-item CompareHashed calls released together, each on its own channel."""
    channels = [node.channel() for _ in range(PARALLEL)]
    start = threading.Barrier(PARALLEL)
    codes: list[grpc.StatusCode] = []

    def call(channel: grpc.Channel) -> None:
        stub = comparison_pb2_grpc.ComparisonServiceStub(channel)
        request = comparison_pb2.CompareHashedRequest(
            header=header(node, purpose=purpose, request_id=uuid.uuid4().hex), tags=[bytes(32)]
        )
        start.wait()
        try:
            stub.CompareHashed(request, timeout=30)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            codes.append(error.code())  # type: ignore[attr-defined]

    threads = [threading.Thread(target=call, args=(channel,)) for channel in channels]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for channel in channels:
        channel.close()
    return codes


def test_twenty_parallel_requests_of_one_department_are_all_answered(
    node: NodeUnderTest,
) -> None:
    purpose = f"parallel load {uuid.uuid4().hex[:8]}"
    codes = _compare_in_parallel(node, purpose) + _compare_in_parallel(node, purpose)
    assert codes == [grpc.StatusCode.OK] * (2 * PARALLEL), codes
    answered = [r for r in audit_records(node) if r["purpose"] == purpose]
    assert len(answered) == 2 * PARALLEL
    assert {r["outcome"] for r in answered} == {"answered"}
