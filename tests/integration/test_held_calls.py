"""Calls that send their headers and never their message hold nothing another department needs
(issue 17): the node reads a request on its event loop and gives a call a thread only once the
message has arrived, so a department's comparisons go on while another, or a revoked
certificate, holds calls open."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bidui.v1 import catalog_pb2, comparison_pb2, comparison_pb2_grpc
from provider_node.identity.enrolment import revoke
from provider_node.identity.pki import issue_client_cert, load_ca
from tests.integration.conftest import NodeUnderTest
from tests.integration.test_refusals import header

# grpc allows 32 streams on one connection: more held calls take more connections.
STREAMS_PER_CHANNEL = 30


def _never(release: threading.Event) -> Iterator[catalog_pb2.ListResourcesRequest]:
    release.wait(60)
    yield from ()


@contextmanager
def _held(node: NodeUnderTest, calls: int, cert: Path, key: Path) -> Iterator[None]:
    """``calls`` unary calls whose request message never comes, held while the block runs."""
    release = threading.Event()
    channels = [node.channel(cert=cert, key=key) for _ in range(-(-calls // STREAMS_PER_CHANNEL))]
    try:
        for number in range(calls):
            method = channels[number // STREAMS_PER_CHANNEL].stream_unary(
                "/bidui.v1.CatalogService/ListResources",
                request_serializer=catalog_pb2.ListResourcesRequest.SerializeToString,
                response_deserializer=catalog_pb2.ListResourcesResponse.FromString,
            )
            method.future(_never(release), timeout=60)
        time.sleep(0.5)  # every held call has reached the node
        yield
    finally:
        release.set()
        for channel in channels:
            channel.close()


def _answered_meanwhile(node: NodeUnderTest, calls: int = 10) -> list[float]:
    """Seconds each of ``calls`` one-item comparisons of the requester took."""
    channel = node.channel()
    stub = comparison_pb2_grpc.ComparisonServiceStub(channel)
    seconds = []
    for _ in range(calls):
        started = time.monotonic()
        stub.CompareHashed(
            comparison_pb2.CompareHashedRequest(
                header=header(node, purpose="while others hold calls"), tags=[bytes(32)]
            ),
            timeout=5,
        )
        seconds.append(time.monotonic() - started)
    channel.close()
    return seconds


@pytest.mark.parametrize("calls", [16, 70])
def test_held_calls_of_another_department_take_nothing_from_the_requester(
    node: NodeUnderTest, tmp_path: Path, calls: int
) -> None:
    holder = issue_client_cert(load_ca(node.directory / "pki"), tmp_path, "luzhou-holder")
    with _held(node, calls, holder.cert_path, holder.key_path):
        seconds = _answered_meanwhile(node)
    assert len(seconds) == 10 and max(seconds) < 2.0, seconds


def test_held_calls_of_a_revoked_certificate_take_nothing_either(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    ca = load_ca(node.directory / "pki")
    revoked = issue_client_cert(ca, tmp_path, "luzhou-revoked")
    revoke(
        node.started.opened.audit,
        revoked.certificate,
        "key lost",
        operator="test",
        now=dt.datetime.now(dt.UTC),
    )
    time.sleep(1.0)  # the revocation list is refreshed every half second
    with _held(node, 20, revoked.cert_path, revoked.key_path):
        seconds = _answered_meanwhile(node)
    assert max(seconds) < 2.0, seconds
