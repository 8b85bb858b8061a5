"""Why a call never reached the node: retry it, or tell the caller what to fix.

grpc reports every connection failure as UNAVAILABLE and says why only in the details text. The
strings below were observed with grpcio 1.85 (BoringSSL) against ``grpc.server`` with
``ssl_server_credentials(..., require_client_auth=True)``, and against an OpenSSL TLS front
(tests/client_sdk/connection/test_tls_refusals.py and test_connection_failures.py keep them)::

    we refuse the node's certificate (not retried):
      wrong CA   "... Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:
                  SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local
                  issuer certificate: OK"
      wrong name "... Custom verification check failed with error: UNAUTHENTICATED: Hostname
                  Verification Check failed."
    a TLS 1.2 front refuses ours with an alert (not retried):
                 "... Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: ...:
                  TLSV1_ALERT_UNKNOWN_CA | SSLV3_ALERT_HANDSHAKE_FAILURE (none sent) |
                  SSLV3_ALERT_CERTIFICATE_EXPIRED: OK"
    closed while connecting: a grpc node refusing ours under TLS 1.3 (it closes without an
    alert), but equally a proxy whose node is down (diagnosed by a probe, handshake_probe.py):
                 "failed to connect to all addresses; last error: UNAVAILABLE:
                  ipv4:127.0.0.1:PORT: Socket closed"
                 "... Unwrap failed (TSI_DATA_CORRUPTED)" (a TLS 1.3 OpenSSL front's alert)
    the node is stopping, restarting or unreachable (retried):
                 "... Failed to connect to remote host: Connection refused"
                 "Stream removed (Socket closed)" (the node died under a call)
                 "Cancelling all calls" (grpc.Server.stop() with calls in flight)
                 GOAWAY, "Connection reset", "Broken pipe", DNS failures, and the node's own
                 UNAVAILABLE (its audit log cannot commit)

Matching is on lower-cased substrings, most specific first.
"""

from __future__ import annotations

import enum

import grpc

__all__ = ["ConnectionFailure", "classify", "likely_cause"]


class ConnectionFailure(enum.Enum):
    """What a failed call's status says about the connection to the node."""

    #: Not a connection failure: the node answered with this status itself.
    ANSWERED = "answered"
    #: The node is stopping, restarting or unreachable: retry with backoff.
    TRANSIENT = "transient"
    #: This client refused the node's certificate: wrong CA, wrong name. Not retried.
    NODE_CERTIFICATE_REFUSED = "node certificate refused"
    #: The node (or a TLS front) refused this client's certificate with a TLS alert. Not retried.
    CLIENT_CERTIFICATE_REFUSED = "client certificate refused"
    #: The connection was accepted, then closed while connecting: either a TLS 1.3 refusal of
    #: this client's certificate or a node going away. A probe tells which.
    CLOSED_WHILE_CONNECTING = "closed while connecting"


_NAME_MISMATCH = (
    "hostname verification",
    "hostname mismatch",
    "peer name",
    "no match found for server name",
)
_NODE_CERT_EXPIRED = "certificate has expired"
# The TLS alerts a server sends about the client's certificate, and what each usually means.
_ALERTS: tuple[tuple[str, str], ...] = (
    ("alert_unknown_ca", "the node does not know the CA that issued the client certificate"),
    ("alert_certificate_expired", "the node finds the client certificate expired"),
    ("alert_certificate_revoked", "the node has revoked the client certificate"),
    ("certificate_required", "the node requires a client certificate and none was sent"),
    ("peer_did_not_return_a_certificate", "the node requires a client certificate"),
    ("alert_handshake_failure", "the node requires a client certificate it accepts"),
    ("alert_bad_certificate", "the node rejected the client certificate"),
    ("alert_unsupported_certificate", "the node rejected the client certificate"),
    ("alert_certificate_unknown", "the node rejected the client certificate"),
    ("alert_access_denied", "the node denied access to the client certificate"),
)
_CLOSED = (
    "socket closed",
    "connection reset",
    "unwrap failed",
    "tsi_data_corrupted",
    "ssl_error_syscall",
    "unexpected eof",
    "end of tcp stream",
    "handshake read failed",
)
# CANCELLED is the client's own doing ("Channel closed!", "Locally cancelled by application!")
# unless the server side says it shut down, or says nothing: a node starting its graceful stop
# cancels a call it accepted but had not begun with empty details, or with the bare status name
# "CANCELLED" (both seen in tests/faults).
_SERVER_SHUTDOWN = ("cancelling all calls", "shutdown", "shutting down", "goaway")
_NOTHING_SAID = ("", "cancelled")


def classify(code: grpc.StatusCode, details: str | None) -> ConnectionFailure:
    """What the status of a failed call says about the connection (see the module docstring)."""
    text = (details or "").lower()
    if code is grpc.StatusCode.CANCELLED:
        said = text.strip()
        shutdown = said in _NOTHING_SAID or any(marker in said for marker in _SERVER_SHUTDOWN)
        return ConnectionFailure.TRANSIENT if shutdown else ConnectionFailure.ANSWERED
    if code is not grpc.StatusCode.UNAVAILABLE:
        return ConnectionFailure.ANSWERED
    if any(marker in text for marker in _NAME_MISMATCH) or "certificate_verify_failed" in text:
        return ConnectionFailure.NODE_CERTIFICATE_REFUSED
    if any(alert in text for alert, _ in _ALERTS):
        return ConnectionFailure.CLIENT_CERTIFICATE_REFUSED
    if "handshake failed" in text and "ssl_error_ssl" in text:
        # Any other protocol error (e.g. WRONG_VERSION_NUMBER: not a TLS port) will not go away.
        return ConnectionFailure.NODE_CERTIFICATE_REFUSED
    if "failed to connect" in text and any(marker in text for marker in _CLOSED):
        return ConnectionFailure.CLOSED_WHILE_CONNECTING
    return ConnectionFailure.TRANSIENT


def likely_cause(
    failure: ConnectionFailure,
    details: str | None,
    *,
    ca_file: str | None = None,
    server_name: str | None = None,
) -> str:
    """A sentence for the caller: what was refused, the likely cause, and what to do."""
    text = (details or "").lower()
    ca = f"the CA certificate in {ca_file!r}" if ca_file else "the CA certificate given"
    if failure is ConnectionFailure.NODE_CERTIFICATE_REFUSED:
        if any(marker in text for marker in _NAME_MISMATCH):
            name = f"{server_name!r}" if server_name else "the name in the target address"
            return (
                f"the node's certificate is not issued for {name} (server name mismatch): "
                "connect with a name the node's certificate carries, or pass server_name= "
                "(--server-name) with it"
            )
        if _NODE_CERT_EXPIRED in text:
            return "the node's certificate has expired: ask the node's operator to renew it"
        if "certificate_verify_failed" in text:
            return (
                f"the node's certificate is not signed by {ca} (wrong CA for the server): give "
                "the CA certificate of the node you connect to"
            )
        return "the TLS handshake with the node failed: check that the target is the node's port"
    if failure is ConnectionFailure.CLIENT_CERTIFICATE_REFUSED:
        for alert, cause in _ALERTS:
            if alert in text:
                return f"{cause}: have the node's operator sign your certificate request"
    return "the node refused the connection"
