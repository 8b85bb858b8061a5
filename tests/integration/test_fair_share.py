"""One department cannot make another's blinded comparisons fail (issue 7).

A greedy department, enrolled like any other (its own key and CSR, signed by the operator),
opens blinded comparisons from several threads as fast as the node answers and never finishes
them: it holds its own share of open comparisons and is refused RESOURCE_EXHAUSTED beyond it.
Meanwhile another department's blinded comparisons, through the SDK over mutual TLS, are all
answered, none refused, and the audit log holds no refusal for them.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization

from bidui.v1 import comparison_pb2, comparison_pb2_grpc
from client_sdk import make_key_and_request
from provider_node.identity import enrolment
from provider_node.identity.pki import load_ca
from tests.integration.audit_helpers import audit_records
from tests.integration.conftest import REQUESTER, NodeUnderTest
from tests.integration.test_refusals import header, valid_blinded

GREEDY = "luzhou-greedy-bureau"
GREEDY_THREADS = 3
CALLS = 20


def _greedy_channel(node: NodeUnderTest, directory: Path) -> grpc.Channel:
    key_path, csr_path = make_key_and_request(GREEDY, directory)
    certificate = enrolment.sign(
        load_ca(node.directory / "pki"),
        csr_path.read_bytes(),
        node.started.opened.audit,
        operator="luzhou-psb",
        now=dt.datetime.now(dt.UTC),  # TLS checks real time
    )
    cert_path = directory / f"{GREEDY}.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return node.channel(cert=cert_path, key=key_path)


def test_a_department_holding_open_comparisons_never_fails_another_s(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    cap = node.started.opened.config.node.max_open_sessions_per_department
    request = comparison_pb2.BlindEvaluateRequest(
        header=header(node, purpose="holding comparisons open"),
        blinded_elements=valid_blinded(node, 1),
    )
    channel = _greedy_channel(node, tmp_path / "greedy")
    stub = comparison_pb2_grpc.ComparisonServiceStub(channel)
    opened: list[str] = []
    refused: list[str] = []
    stop = threading.Event()

    def greedy() -> None:
        while not stop.is_set():
            try:
                opened.append(stub.BlindEvaluate(request, timeout=10).comparison_id)
            except grpc.RpcError as error:
                assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
                refused.append(error.details() or "")

    threads = [threading.Thread(target=greedy) for _ in range(GREEDY_THREADS)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(opened) < cap and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(opened) == cap  # its share is full: from here on it is refused
        with node.client() as client:
            results = [
                client.compare(
                    "residents",
                    [{"id_number": node.residents[i][0]}, {"id_number": node.absent[i][0]}],
                    key="id_number",
                    mode="blinded",
                    purpose="another department's work",
                )
                for i in range(CALLS)
            ]
        held_while_we_compared = len(refused)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for comparison_id in opened:  # leave the module's node as it was
            stub.MatchBlinded(
                comparison_pb2.MatchBlindedRequest(comparison_id=comparison_id, outputs=[bytes(64)])
            )
        channel.close()

    assert len(opened) == cap, "the greedy department got more than its share"
    assert held_while_we_compared > 0, "the greedy department was never refused"
    assert all(f"your department has {cap}" in message for message in refused), refused[:3]
    assert [(r.matched_count, r.not_matched_count) for r in results] == [(1, 1)] * CALLS
    request_ids = {r.request_id for r in results}
    ours = [r for r in audit_records(node) if r["request_id"] in request_ids]
    assert ours and {r["requester"] for r in ours} == {REQUESTER}
    assert {r["outcome"] for r in ours} == {"opened", "answered"}, ours
    greedy_refusals = [
        r for r in audit_records(node) if r["requester"] == GREEDY and r["outcome"] == "refused"
    ]
    assert greedy_refusals and all(
        r["status_code"] == "RESOURCE_EXHAUSTED" for r in greedy_refusals
    )
