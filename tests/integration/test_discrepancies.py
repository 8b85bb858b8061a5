"""Discrepancy reports over real gRPC and mutual TLS (article 26): compare, report doubted results
within 3 working days, read the operator's answer; another department's comparison or report is
missing; a late report is refused naming its deadline.

The node's own clock runs from Monday 2026-03-02 09:00 China time (plus ``SKIP`` when a test moves
it on), so deadlines are known dates; TLS checks real time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bidui.v1 import discrepancy_pb2, discrepancy_pb2_grpc
from client_sdk import DiscrepancyStatus, InvalidRequestError, ResourceNotFoundError, locate_records
from client_sdk.comparison.results import ComparisonResult
from provider_node.audit.operator import record_governance
from provider_node.config import load_config
from provider_node.governance import discrepancies
from provider_node.identity.pki import issue_client_cert, load_ca
from tests.integration.audit_helpers import audit_records
from tests.integration.conftest import NodeUnderTest, start

RESOURCE = "residents"
T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # Monday, 09:00 in China
SKIP = [dt.timedelta(0)]
OPERATOR = "luzhou-psb duty officer"
DOUBT = "answered not matched, yet both hold residence permits issued by your bureau"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    began = time.monotonic()
    running = start(
        tmp_path_factory.mktemp("discrepancies"),
        clock=lambda: T0 + SKIP[0] + dt.timedelta(seconds=time.monotonic() - began),
    )
    yield running
    running.started.stop(grace=1.0)


@pytest.fixture
def later() -> Iterator[list[dt.timedelta]]:
    """Move the node's clock on within a test; put back afterwards."""
    yield SKIP
    SKIP[0] = dt.timedelta(0)


def _compare(node: NodeUnderTest, ids: list[str]) -> ComparisonResult:
    with node.client() as client:
        return client.compare(
            RESOURCE,
            [{"id_number": i} for i in ids],
            key="id_number",
            mode="hashed",
            purpose="housing subsidy check",
        )


def _stub(node: NodeUnderTest, cert: Path | None = None, key: Path | None = None):  # type: ignore[no-untyped-def]
    channel = node.channel(cert=cert, key=key)
    return channel, discrepancy_pb2_grpc.DiscrepancyServiceStub(channel)


def test_report_then_the_operators_correction(node: NodeUnderTest) -> None:
    ids = [r[0] for r in node.residents[:2]] + [node.absent[0][0]]
    result = _compare(node, ids)
    [comparison_id] = result.comparison_ids
    with node.client() as client:
        report = client.report_discrepancy(comparison_id, [2, 0, 2], DOUBT)
    assert report.status is DiscrepancyStatus.PENDING
    assert (report.comparison_id, report.resource_id, report.positions) == (
        comparison_id,
        RESOURCE,
        (0, 2),
    )
    # Monday 2026-03-02: reportable until Thursday 03-05; the answer is due Monday 03-09.
    assert (report.report_deadline, report.answer_deadline) == (
        dt.date(2026, 3, 5),
        dt.date(2026, 3, 9),
    )

    registry = node.started.opened.registry  # read from the database at scrape time
    assert (registry.get_sample_value("bidui_discrepancies_pending") or 0) >= 1
    assert registry.get_sample_value("bidui_discrepancies_overdue") == 0

    audit = node.started.opened.audit
    config = load_config(node.config_path)
    record_governance(audit, config, "index_load", "key version 1", resource_id=RESOURCE)
    load_id = audit_records(node)[-1]["comparison_id"]
    discrepancies.correct(
        audit, report.id, load_id, operator=OPERATOR, now=T0 + dt.timedelta(days=1)
    )
    with node.client() as client:
        answered = client.discrepancy(report.id)
        assert [r.id for r in client.discrepancies(comparison_id)] == [report.id]
        assert report.id in {r.id for r in client.discrepancies()}
    assert answered.status is DiscrepancyStatus.CORRECTED
    assert answered.correction_id == load_id and answered.answered_at is not None

    filing, answer = (r for r in audit_records(node) if r["action"].startswith("discrepancy_"))
    assert (filing["comparison_id"], filing["related_id"]) == (report.id, comparison_id)
    assert filing["requester"] == node.client_cert.stem and filing["cert_serial"]
    assert (answer["related_id"], answer["requester"]) == (report.id, filing["requester"])
    assert DOUBT not in filing["reason"] + answer["reason"]


def test_another_departments_comparison_and_reports_are_missing(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    mine = _compare(node, [node.residents[3][0]]).comparison_ids[0]
    with node.client() as client:
        report = client.report_discrepancy(mine, [0], DOUBT)
    other = issue_client_cert(load_ca(node.directory / "pki"), tmp_path, "luzhou-tax-bureau")
    channel, theirs = _stub(node, other.cert_path, other.key_path)
    for call, request in (
        (theirs.File, discrepancy_pb2.FileDiscrepancyRequest(
            comparison_id=mine, positions=[0], description=DOUBT
        )),
        (theirs.Get, discrepancy_pb2.GetDiscrepancyRequest(report_id=report.id)),
    ):  # fmt: skip
        with pytest.raises(grpc.RpcError) as hidden:
            call(request, timeout=10)
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    listed = theirs.List(discrepancy_pb2.ListDiscrepanciesRequest(), timeout=10)
    channel.close()
    assert list(listed.reports) == []
    with node.client() as client, pytest.raises(ResourceNotFoundError):
        client.report_discrepancy("5f0c8f0e-8f3b-4b8e-9d7e-0a8c1b2d3e4f", [0], DOUBT)


def test_after_three_working_days_a_report_is_refused_naming_the_deadline(
    node: NodeUnderTest, later: list[dt.timedelta]
) -> None:
    comparison_id = _compare(node, [node.residents[4][0]]).comparison_ids[0]
    later[0] = dt.timedelta(days=4)  # Friday 03-06: the fourth working day after Monday
    channel, desk = _stub(node)
    with pytest.raises(grpc.RpcError) as refused:
        desk.File(
            discrepancy_pb2.FileDiscrepancyRequest(
                comparison_id=comparison_id, positions=[0], description=DOUBT
            ),
            timeout=10,
        )
    channel.close()
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    assert "until 2026-03-05" in refused.value.details()  # type: ignore[attr-defined]
    refusal = audit_records(node)[-1]
    assert (refusal["action"], refusal["outcome"]) == ("comparison", "answered")  # none written


def test_positions_outside_the_comparison_and_values_in_the_description(
    node: NodeUnderTest,
) -> None:
    comparison_id = _compare(node, [node.residents[5][0]]).comparison_ids[0]
    channel, desk = _stub(node)
    for positions, description, words in (
        ([1], DOUBT, "position 1 is not in comparison"),
        ([0], "row 0 is 11010519491231002X", "record values"),
    ):
        with pytest.raises(grpc.RpcError) as bad:
            desk.File(
                discrepancy_pb2.FileDiscrepancyRequest(
                    comparison_id=comparison_id, positions=positions, description=description
                ),
                timeout=10,
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert words in bad.value.details()  # type: ignore[attr-defined]
    channel.close()
    with node.client() as client, pytest.raises(InvalidRequestError, match="record values"):
        client.report_discrepancy(comparison_id, [0], "phone 13800138000 should match")


def test_input_rows_are_located_in_the_comparisons_they_went_in(node: NodeUnderTest) -> None:
    rows = [{"id_number": node.residents[6][0]}, {"id_number": "not an id"}]
    rows.append({"id_number": node.residents[7][0]})
    with node.client() as client:
        result = client.compare(
            RESOURCE, rows, key="id_number", mode="blinded", purpose="housing subsidy check"
        )
        located = locate_records(result, [2], client.max_batch)
        assert located == {result.comparison_ids[0]: [1]}  # the invalid row was never sent
        [(comparison_id, positions)] = located.items()
        report = client.report_discrepancy(comparison_id, positions, DOUBT)
    assert report.positions == (1,)
    with pytest.raises(InvalidRequestError, match="never sent"):
        locate_records(result, [1], 500)
