"""Status details grpcio 1.85 (BoringSSL) gave in each case, as seen by tests/client_sdk/
test_tls_refusals.py against a live ``grpc.server`` (``require_client_auth=True``) on loopback,
and by hand against an OpenSSL TLS front. Ports vary from run to run; the rest does not.

Kept verbatim so that the classifier's tests run without a server, and so that a grpcio upgrade
that changes the words shows up as a failing live test next to these.
"""

from __future__ import annotations

_PREFIX = "failed to connect to all addresses; last error: "

# -- this client refuses the node's certificate ---------------------------------------------
WRONG_SERVER_CA = (
    _PREFIX + "UNKNOWN: ipv4:127.0.0.1:44437: Tls handshake failed (TSI_PROTOCOL_FAILURE): "
    "SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: "
    "unable to get local issuer certificate: OK"
)
WRONG_SERVER_NAME = (
    _PREFIX + "UNKNOWN: ipv4:127.0.0.1:44437: Custom verification check failed with error: "
    "UNAUTHENTICATED: Hostname Verification Check failed."
)
NOT_TLS = (  # a plaintext port
    _PREFIX + "UNKNOWN: ipv4:127.0.0.1:46639: Tls handshake failed (TSI_PROTOCOL_FAILURE): "
    "SSL_ERROR_SSL: error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER: Invalid "
    "certificate verification context: OK"
)

# -- a grpc node refuses this client's certificate (TLS 1.3: closed, no alert) ---------------
# The same words for: a client certificate from another CA, no client certificate, an expired
# one, one without the clientAuth usage.
CLOSED_WHILE_CONNECTING = _PREFIX + "UNAVAILABLE: ipv4:127.0.0.1:44437: Socket closed"

# -- an OpenSSL TLS front refuses this client's certificate ----------------------------------
TLS12_UNKNOWN_CA = (
    _PREFIX + "UNKNOWN: ipv4:127.0.0.1:42535: Tls handshake failed (TSI_PROTOCOL_FAILURE): "
    "SSL_ERROR_SSL: error:10000418:SSL routines:OPENSSL_internal:TLSV1_ALERT_UNKNOWN_CA: OK"
)
TLS12_NO_CERTIFICATE = (
    _PREFIX + "UNKNOWN: ipv4:127.0.0.1:42535: Tls handshake failed (TSI_PROTOCOL_FAILURE): "
    "SSL_ERROR_SSL: error:10000410:SSL routines:OPENSSL_internal:SSLV3_ALERT_HANDSHAKE_FAILURE: OK"
)
TLS12_EXPIRED = (
    _PREFIX + "UNKNOWN: ipv4:127.0.0.1:42535: Tls handshake failed (TSI_PROTOCOL_FAILURE): "
    "SSL_ERROR_SSL: error:10000415:SSL routines:OPENSSL_internal:"
    "SSLV3_ALERT_CERTIFICATE_EXPIRED: OK"
)
TLS13_ALERT = _PREFIX + "UNAVAILABLE: ipv4:127.0.0.1:39457: Unwrap failed (TSI_DATA_CORRUPTED)"

# -- the node is stopping, restarting or away ------------------------------------------------
CONNECTION_REFUSED = (
    _PREFIX + "UNKNOWN: ipv4:127.0.0.1:44445: Failed to connect to remote host: Connection refused"
)
# Something accepts TCP and closes at once (a proxy whose node is down): before any TLS.
PROXY_WITHOUT_NODE = (
    _PREFIX + "UNAVAILABLE: ipv4:127.0.0.1:35975: Handshake read failed (recvmsg:Connection "
    "reset by peer (104))"
)
STREAM_REMOVED = "Stream removed (Socket closed)"  # the node's process died under a call
CANCELLING_ALL_CALLS = "Cancelling all calls"  # grpc.Server.stop() with calls in flight
# A node starting its graceful stop cancels a call it accepted but had not begun: the status
# name as details (seen in CI, tests/faults/test_rolling_restart.py, MatchBlinded) or none.
CANCELLED_BARE = "CANCELLED"
