"""Two nodes on one PostgreSQL database (as two `serve` processes would be): a revocation made
through one is refused by the other within a second, on a connection already open, and one
department's allowance is one allowance, whichever node it asks."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bidui.v1 import catalog_pb2
from client_sdk import ComparisonClient, QuotaExceededError
from provider_node.config import load_config
from provider_node.identity.enrolment import revoke
from provider_node.identity.pki import issue_client_cert, load_ca
from provider_node.setup.runtime import StartedNode, open_node, start_node
from tests.integration.conftest import NodeUnderTest, start
from tests.postgres import fresh_schema_url


@pytest.fixture
def two_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[NodeUnderTest, StartedNode]]:
    # A small hashed allowance, so that two nodes' shares would show.
    monkeypatch.setenv("BIDUI_NODE_MAX_HASHED_ITEMS_PER_MINUTE", "8")
    with fresh_schema_url() as url:
        first = start(tmp_path, audit_url=url)
        second = start_node(
            open_node(load_config(first.config_path)),
            listen="127.0.0.1:0",
            metrics_listen="127.0.0.1:0",
        )
        try:
            yield first, second
        finally:
            second.stop(grace=0.5)
            first.started.stop(grace=0.5)


def test_revocation_and_allowances_are_shared_through_the_database(
    two_nodes: tuple[NodeUnderTest, StartedNode], tmp_path: Path
) -> None:
    first, second = two_nodes
    ca = load_ca(first.directory / "pki")
    issued = issue_client_cert(ca, tmp_path / "clients", "luzhou-tax-bureau")
    credentials = grpc.ssl_channel_credentials(
        first.ca_cert.read_bytes(), issued.key_path.read_bytes(), issued.cert_path.read_bytes()
    )
    other = grpc.secure_channel(f"localhost:{second.port}", credentials)
    catalog = first.stubs(other)[0]
    catalog.ListResources(catalog_pb2.ListResourcesRequest(), timeout=10)  # open, accepted
    revoke(
        first.started.opened.audit, issued.certificate, "key lost", operator="luzhou-psb",
        now=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    revoked_at = time.monotonic()
    while True:  # through the FIRST node's store, refused by the SECOND on its open connection
        try:
            catalog.ListResources(catalog_pb2.ListResourcesRequest(), timeout=10)
        except grpc.RpcError as refused:
            assert refused.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
            break
        assert time.monotonic() - revoked_at < 1.5, "revocation not seen by the other node"
        time.sleep(0.05)
    other.close()

    rows = [{"id_number": r[0]} for r in first.residents[:5]]
    while dt.datetime.now(dt.UTC).second >= 55:  # both compares in one minute's window
        time.sleep(0.2)
    with first.client() as client:
        client.compare("residents", rows, key="id_number", mode="hashed", purpose="shared")
    # 5 of the department's 8 hashed items this minute were used through the first node.
    with (
        ComparisonClient(f"localhost:{second.port}", first.credentials()) as client,
        pytest.raises(QuotaExceededError, match="3 remain"),
    ):
        client.compare("residents", rows, key="id_number", mode="hashed", purpose="shared")
