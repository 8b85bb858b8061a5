"""What each observed grpc status says about the connection, and the sentence the caller gets."""

from __future__ import annotations

import grpc
import pytest

from client_sdk.connection_failures import ConnectionFailure, classify, likely_cause
from tests.client_sdk import observed

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
CANCELLED = grpc.StatusCode.CANCELLED


@pytest.mark.parametrize(
    ("code", "details", "kind"),
    [
        (UNAVAILABLE, observed.WRONG_SERVER_CA, ConnectionFailure.NODE_CERTIFICATE_REFUSED),
        (UNAVAILABLE, observed.WRONG_SERVER_NAME, ConnectionFailure.NODE_CERTIFICATE_REFUSED),
        (UNAVAILABLE, observed.NOT_TLS, ConnectionFailure.NODE_CERTIFICATE_REFUSED),
        (UNAVAILABLE, observed.TLS12_UNKNOWN_CA, ConnectionFailure.CLIENT_CERTIFICATE_REFUSED),
        (UNAVAILABLE, observed.TLS12_NO_CERTIFICATE, ConnectionFailure.CLIENT_CERTIFICATE_REFUSED),
        (UNAVAILABLE, observed.TLS12_EXPIRED, ConnectionFailure.CLIENT_CERTIFICATE_REFUSED),
        (UNAVAILABLE, observed.CLOSED_WHILE_CONNECTING, ConnectionFailure.CLOSED_WHILE_CONNECTING),
        (UNAVAILABLE, observed.TLS13_ALERT, ConnectionFailure.CLOSED_WHILE_CONNECTING),
        (UNAVAILABLE, observed.PROXY_WITHOUT_NODE, ConnectionFailure.CLOSED_WHILE_CONNECTING),
        (UNAVAILABLE, observed.CONNECTION_REFUSED, ConnectionFailure.TRANSIENT),
        (UNAVAILABLE, observed.STREAM_REMOVED, ConnectionFailure.TRANSIENT),
        (UNAVAILABLE, observed.CANCELLING_ALL_CALLS, ConnectionFailure.TRANSIENT),
        (UNAVAILABLE, "audit log unavailable", ConnectionFailure.TRANSIENT),  # the node's own
        (UNAVAILABLE, None, ConnectionFailure.TRANSIENT),
        (CANCELLED, observed.CANCELLING_ALL_CALLS, ConnectionFailure.TRANSIENT),
        (CANCELLED, "Channel closed!", ConnectionFailure.ANSWERED),
        (CANCELLED, "", ConnectionFailure.TRANSIENT),  # a node starting its graceful stop
        (CANCELLED, observed.CANCELLED_BARE, ConnectionFailure.TRANSIENT),
        (
            grpc.StatusCode.CANCELLED,
            "Locally cancelled by application!",
            ConnectionFailure.ANSWERED,
        ),
        (grpc.StatusCode.INTERNAL, "ssl handshake", ConnectionFailure.ANSWERED),
        (grpc.StatusCode.PERMISSION_DENIED, "no grant", ConnectionFailure.ANSWERED),
    ],
)
def test_each_observed_status(
    code: grpc.StatusCode, details: str | None, kind: ConnectionFailure
) -> None:
    assert classify(code, details) is kind


def test_a_reconnect_storm_is_not_taken_for_a_refusal() -> None:
    # What used to count as TLS by the words "ssl" or "handshake" alone: a reset while connecting.
    details = "failed to connect to all addresses; last error: UNAVAILABLE: Handshake read failed"
    assert classify(UNAVAILABLE, details) is ConnectionFailure.CLOSED_WHILE_CONNECTING
    assert classify(UNAVAILABLE, "GOAWAY received") is ConnectionFailure.TRANSIENT


@pytest.mark.parametrize(
    ("details", "words"),
    [
        (observed.WRONG_SERVER_CA, "not signed by the CA certificate in 'pki/ca.pem' (wrong CA"),
        (observed.WRONG_SERVER_NAME, "not issued for 'node.example' (server name mismatch)"),
        (observed.NOT_TLS, "check that the target is the node's port"),
        (observed.TLS12_UNKNOWN_CA, "does not know the CA that issued the client certificate"),
        (observed.TLS12_NO_CERTIFICATE, "requires a client certificate"),
        (observed.TLS12_EXPIRED, "finds the client certificate expired"),
        ("Tls handshake failed: CERTIFICATE_VERIFY_FAILED: certificate has expired", "expired"),
    ],
)
def test_likely_cause_names_the_fix(details: str, words: str) -> None:
    cause = likely_cause(
        classify(UNAVAILABLE, details), details, ca_file="pki/ca.pem", server_name="node.example"
    )
    assert words in cause
