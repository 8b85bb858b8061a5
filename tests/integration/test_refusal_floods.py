"""Floods of refused requests and held calls take nothing from another department (issue 17),
against ``bidui provider serve`` with 1 and 2 workers and the default refusal window.

An enrolled department sends refused requests from 12 threads, then a revoked certificate does,
then 70 calls are held open without their message; meanwhile another department's one-item
comparisons are all answered in their usual time. After a graceful stop, the audit log accounts
for every refusal a flooder received (its refusal records plus the counts of its window records),
and the floods added only a few records, not one write per refusal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from bidui.v1 import catalog_pb2, comparison_pb2, comparison_pb2_grpc
from provider_node.audit.log import AuditLog
from provider_node.config import load_config
from provider_node.identity.enrolment import revoke
from provider_node.identity.names import certificate_fingerprint
from provider_node.identity.pki import issue_client_cert, load_ca
from provider_node.store.engine import make_engine, migrate, session_factory
from tests.faults.accounting import audit_log
from tests.integration.conftest import REQUESTER, build_node_dir
from tests.integration.test_workers import ANY_PORTS, Serve

FLOOD_THREADS = 12
FLOOD_SECONDS = 3.0
HELD_CALLS = 70
USUAL = 2.0  # seconds: a one-item comparison on loopback takes milliseconds


class Pki:
    def __init__(self, directory: Path) -> None:
        self.ca = (directory / "pki" / "ca.pem").read_bytes()
        self.directory = directory

    def channel(self, target: str, cert: Path, key: Path) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(self.ca, key.read_bytes(), cert.read_bytes())
        return grpc.secure_channel(target, creds)


def _header(purpose: str, resource: str = "residents") -> comparison_pb2.ComparisonHeader:
    return comparison_pb2.ComparisonHeader(
        resource_id=resource, comparison_key="id_number", purpose=purpose, key_version=1
    )


@contextmanager
def _flood(channel_of: Callable[[], grpc.Channel]) -> Iterator[list[grpc.StatusCode]]:
    """``FLOOD_THREADS`` threads sending refused requests (an unknown resource) until the block
    ends; yields the status codes they received."""
    received: list[grpc.StatusCode] = []
    stop = threading.Event()

    def send() -> None:
        channel = channel_of()
        stub = comparison_pb2_grpc.ComparisonServiceStub(channel)
        request = comparison_pb2.CompareHashedRequest(
            header=_header("flood", resource="nope"), tags=[bytes(32)]
        )
        while not stop.is_set():
            try:
                stub.CompareHashed(request, timeout=10)
                received.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                received.append(error.code())  # type: ignore[attr-defined]
            time.sleep(0.01)  # at most 100 a second per thread
        channel.close()

    threads = [threading.Thread(target=send) for _ in range(FLOOD_THREADS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        yield received
    finally:
        stop.set()
        for thread in threads:
            thread.join()


@contextmanager
def _held(channel: grpc.Channel, calls: int) -> Iterator[None]:
    release = threading.Event()

    def never() -> Iterator[catalog_pb2.ListResourcesRequest]:
        release.wait(60)
        yield from ()

    method = channel.stream_unary(
        "/bidui.v1.CatalogService/ListResources",
        request_serializer=catalog_pb2.ListResourcesRequest.SerializeToString,
        response_deserializer=catalog_pb2.ListResourcesResponse.FromString,
    )
    for _ in range(calls):
        method.future(never(), timeout=60)
    time.sleep(0.5)
    try:
        yield
    finally:
        release.set()


def _compare_meanwhile(channel: grpc.Channel, seconds: float) -> list[float]:
    """One-item comparisons back to back for ``seconds``: how long each took (all answered)."""
    stub = comparison_pb2_grpc.ComparisonServiceStub(channel)
    took: list[float] = []
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        started = time.monotonic()
        stub.CompareHashed(
            comparison_pb2.CompareHashedRequest(header=_header("meanwhile"), tags=[bytes(32)]),
            timeout=10,
        )
        took.append(time.monotonic() - started)
    return took


@pytest.mark.parametrize("workers", [1, 2])
def test_floods_and_held_calls_leave_another_department_served(
    tmp_path: Path, workers: int
) -> None:
    config_path, _, _ = build_node_dir(tmp_path)
    config = load_config(config_path)
    ca = load_ca(tmp_path / "pki")
    flooder = issue_client_cert(ca, tmp_path / "flooder", "luzhou-flooder")
    revoked = issue_client_cert(ca, tmp_path / "revoked", "luzhou-revoked")
    engine = make_engine(config.audit.database_url)
    migrate(engine)
    revoke(
        AuditLog(session_factory(engine)),
        revoked.certificate,
        "key lost",
        operator="test",
        now=dt.datetime.now(dt.UTC),
    )
    engine.dispose()
    pki = Pki(tmp_path)
    requester = (
        tmp_path / "pki" / "clients" / f"{REQUESTER}.pem",
        tmp_path / "pki" / "clients" / f"{REQUESTER}.key",
    )

    node = Serve(config_path, "--workers", str(workers), *ANY_PORTS, "--grace", "2")
    try:
        port = int(node.wait_for(r"serving on port (\d+) \(mutual TLS\)")[1])
        target = f"127.0.0.1:{port}"
        ours = pki.channel(target, *requester)
        baseline = _compare_meanwhile(ours, 1.0)
        with _flood(lambda: pki.channel(target, flooder.cert_path, flooder.key_path)) as by_dept:
            during_department = _compare_meanwhile(ours, FLOOD_SECONDS)
        with _flood(lambda: pki.channel(target, revoked.cert_path, revoked.key_path)) as by_cert:
            during_revoked = _compare_meanwhile(ours, FLOOD_SECONDS)
        # Held calls spread over several connections, so every worker gets some.
        holders = [pki.channel(target, flooder.cert_path, flooder.key_path) for _ in range(5)]
        with contextlib.ExitStack() as holding:
            for number, channel in enumerate(holders):
                holding.enter_context(_held(channel, HELD_CALLS // 5 + (number < HELD_CALLS % 5)))
            during_held = _compare_meanwhile(ours, FLOOD_SECONDS)
        for channel in (ours, *holders):
            channel.close()
    finally:
        node.process.terminate()
        code = node.finish()
    assert code == 0, node.output

    for phase, took in (
        ("a department's flood", during_department),
        ("a revoked certificate's flood", during_revoked),
        (f"{HELD_CALLS} held calls", during_held),
    ):
        assert took and max(took) < USUAL, (phase, max(took), len(took), max(baseline))
    assert set(by_dept) == {grpc.StatusCode.NOT_FOUND}
    assert set(by_cert) == {grpc.StatusCode.UNAUTHENTICATED}
    assert len(by_dept) > 200 and len(by_cert) > 200, (len(by_dept), len(by_cert))

    records, chain = audit_log(config.audit.database_url)
    assert chain.ok, chain

    def on_record(match: Callable[[dict[str, object]], bool]) -> tuple[int, int]:
        """(refusals accounted for, records holding them)"""
        mine = [r for r in records if match(r) and r["outcome"] == "refused"]
        total = sum(int(str(r["item_count"])) if r["action"] == "refusals" else 1 for r in mine)
        return total, len(mine)

    dept_total, dept_records = on_record(lambda r: r["requester"] == "luzhou-flooder")
    fingerprint = certificate_fingerprint(revoked.certificate)
    cert_total, cert_records = on_record(lambda r: r["cert_fingerprint"] == fingerprint)
    assert dept_total == len(by_dept), (dept_total, len(by_dept))
    assert cert_total == len(by_cert), (cert_total, len(by_cert))
    # One record in full and one count per window (10 s) and worker: a handful, not hundreds.
    assert dept_records <= 4 * workers and cert_records <= 4 * workers, (
        dept_records,
        cert_records,
    )
    answered = [r for r in records if r["purpose"] == "meanwhile"]
    sent = len(baseline) + len(during_department) + len(during_revoked) + len(during_held)
    assert len(answered) == sent and {r["outcome"] for r in answered} == {"answered"}
