"""A refused certificate against a live grpc server with ``require_client_auth=True``: reported
at once as an AuthenticationError naming the likely cause, never retried.

Every client here is given a retry policy whose first pause is 5 s: a refusal that took a retry
would show as a call of more than 5 s. The grpc details of each case are asserted to be the ones
kept in ``observed.py``.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import grpc
import pytest

from client_sdk import (
    AuthenticationError,
    ComparisonClient,
    Credentials,
    RetryPolicy,
    ServiceUnavailableError,
)
from client_sdk.connection.handshake_probe import ProbeVerdict, probe_handshake, target_address
from client_sdk.connection_failures import ConnectionFailure, classify
from tests.client_sdk import observed
from tests.client_sdk.conftest import Pki
from tests.client_sdk.fake_node import RESOURCE, FakeNode
from tests.client_sdk.tls_pki import NODE_NAME, Authority

_NO_QUICK_RETRY = RetryPolicy(retries=3, initial_backoff=5.0, max_backoff=5.0)


def _refusal(
    node: FakeNode,
    credentials: Credentials | grpc.ChannelCredentials,
    *,
    retries: RetryPolicy = _NO_QUICK_RETRY,
    server_name: str | None = None,
) -> tuple[BaseException, str | None, float]:
    """The error ``describe`` raises, the grpc details behind it, and the seconds it took."""
    started = time.monotonic()
    client = ComparisonClient(
        node.target, credentials, timeout=20, retries=retries, server_name=server_name
    )
    with client, pytest.raises(Exception) as caught:
        client.describe(RESOURCE)
    details = getattr(caught.value.__cause__, "details", None)
    return caught.value, details, time.monotonic() - started


def _unchecked(
    ca: bytes, client: Authority, department: str | None = "civil-affairs"
) -> Credentials:
    """Credentials built from bytes, as a caller may: not checked before connecting."""
    issued = client.department(department)
    return Credentials(ca, issued.cert_pem, issued.key_pem)


def test_an_accepted_certificate_is_answered(pki: Pki, fake_node: FakeNode) -> None:
    with ComparisonClient(fake_node.target, pki.credentials()) as client:
        assert client.describe(RESOURCE).id == RESOURCE


def test_client_certificate_from_a_foreign_ca(pki: Pki, fake_node: FakeNode) -> None:
    rogue = Authority("rogue CA")
    error, details, seconds = _refusal(fake_node, _unchecked(pki.ca.cert_pem, rogue))
    assert isinstance(error, AuthenticationError)
    assert "the node refused the client certificate" in str(error)
    assert "(issued by 'CN=rogue CA') does not chain to the CA certificate" in str(error)
    assert seconds < 5
    assert details == observed.CLOSED_WHILE_CONNECTING.replace("44437", str(fake_node.port))
    assert fake_node.calls["DescribeResource"] == 0


def test_node_trusting_another_ca_for_its_clients(pki: Pki, tmp_path: Path) -> None:
    # Our certificate is valid and chains to the CA that signed the node's certificate, but the
    # node trusts another CA for clients: only the node can tell, and it tells by closing.
    node = FakeNode(pki.node.key_pem, pki.node.cert_pem, Authority("clients CA").cert_pem, [])
    node.start()
    try:
        error, details, seconds = _refusal(node, pki.credentials())
    finally:
        node.stop()
    assert isinstance(error, AuthenticationError)
    message = str(error)
    assert "the node refused the client certificate: it closed the connection" in message
    assert f"The client certificate '{pki.cert_file}' is valid here" in message
    assert "department 'civil-affairs', so the node trusts another CA for its clients" in message
    assert (
        classify(grpc.StatusCode.UNAVAILABLE, details) is ConnectionFailure.CLOSED_WHILE_CONNECTING
    )
    assert seconds < 5


def test_a_certificate_expired_since_the_client_opened(pki: Pki, fake_node: FakeNode) -> None:
    # The probe finds the certificate refused; checking it again names the reason.
    ten_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    expired = pki.ca.department(not_before=ten_days_ago, lifetime=dt.timedelta(days=1))
    credentials = Credentials(pki.ca.cert_pem, expired.cert_pem, expired.key_pem)
    error, _, seconds = _refusal(fake_node, credentials)
    assert isinstance(error, AuthenticationError)
    assert "the node refused the client certificate" in str(error)
    assert "expired on" in str(error)
    assert seconds < 5


def test_no_client_certificate(pki: Pki, fake_node: FakeNode) -> None:
    # Raw grpc credentials: the SDK cannot probe as the caller, so it retries, then says what
    # the closed connection may mean.
    raw = grpc.ssl_channel_credentials(pki.ca.cert_pem)
    policy = RetryPolicy(retries=1, initial_backoff=0.1, max_backoff=0.1)
    error, details, _ = _refusal(fake_node, raw, retries=policy, server_name=NODE_NAME)
    assert isinstance(error, ServiceUnavailableError)
    assert "if this persists, it refuses the client certificate" in str(error)
    assert details == observed.CLOSED_WHILE_CONNECTING.replace("44437", str(fake_node.port))


def test_wrong_server_ca(pki: Pki, fake_node: FakeNode, tmp_path: Path) -> None:
    # The department's files are consistent (its certificate is from the CA it was given), but
    # that is not the CA that signed the node's certificate.
    other = Authority("other CA")
    cert, key = other.department().write(tmp_path, "dept")
    credentials = Credentials.from_files(other.write(tmp_path, "other-ca"), cert, key)
    error, details, seconds = _refusal(fake_node, credentials)
    assert isinstance(error, AuthenticationError)
    assert "not signed by the CA certificate in" in str(error)
    assert "other-ca.pem' (wrong CA for the server)" in str(error)
    assert details == observed.WRONG_SERVER_CA.replace("44437", str(fake_node.port))
    assert seconds < 5


def test_wrong_server_name(pki: Pki, fake_node: FakeNode) -> None:
    error, details, seconds = _refusal(fake_node, pki.credentials(), server_name="other.test")
    assert isinstance(error, AuthenticationError)
    assert "not issued for 'other.test' (server name mismatch)" in str(error)
    assert details == observed.WRONG_SERVER_NAME.replace("44437", str(fake_node.port))
    assert seconds < 5


@pytest.mark.parametrize(
    ("client_ca", "verdict"),
    [("node", ProbeVerdict.ACCEPTED), ("other", ProbeVerdict.REFUSED)],
)
def test_probe_verdicts(pki: Pki, client_ca: str, verdict: ProbeVerdict) -> None:
    trusted = pki.ca.cert_pem if client_ca == "node" else Authority("other").cert_pem
    node = FakeNode(pki.node.key_pem, pki.node.cert_pem, trusted, [])
    node.start()
    try:
        result = probe_handshake(("127.0.0.1", node.port), NODE_NAME, pki.credentials(), 3.0)
    finally:
        node.stop()
    assert result.verdict is verdict
    stopped = probe_handshake(("127.0.0.1", node.port), NODE_NAME, pki.credentials(), 3.0)
    assert stopped.verdict is ProbeVerdict.UNREACHABLE


@pytest.mark.parametrize(
    ("target", "address"),
    [
        ("node.example:50051", ("node.example", 50051)),
        ("dns:///node.example:50051", ("node.example", 50051)),
        ("ipv4:127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("[::1]:50051", ("::1", 50051)),
        ("unix:/run/bidui.sock", None),
        ("node.example", None),
        ("ipv4:10.0.0.1:1,10.0.0.2:1", None),
    ],
)
def test_which_targets_can_be_probed(target: str, address: tuple[str, int] | None) -> None:
    assert target_address(target) == address
