"""Refused TLS handshakes reach the operations log at a bounded rate, and are all counted."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from provider_node.observability.oplog import HandshakeFailureLog, handshake_failure_reason

# As grpcio 1.85's core writes them (GRPC_VERBOSITY=INFO).
NO_CERT = (
    b"I1129 15:24:26.348294   10690 ssl_transport_security.cc:2563] Handshake failed with error "
    b"SSL_ERROR_SSL: error:100000c0:SSL routines:OPENSSL_internal:"
    b"PEER_DID_NOT_RETURN_A_CERTIFICATE: Invalid certificate verification context\n"
)
UNKNOWN_CA = NO_CERT.replace(b"PEER_DID_NOT_RETURN_A_CERTIFICATE", b"TLSV1_ALERT_UNKNOWN_CA")
ROOT = Path(__file__).resolve().parents[3]


def test_reasons_are_a_bounded_set() -> None:
    assert handshake_failure_reason(NO_CERT) == "no_certificate"
    assert handshake_failure_reason(UNKNOWN_CA) == "certificate_not_trusted"
    assert handshake_failure_reason(b"Handshake failed with error SSL_ERROR_SYSCALL\n") == "other"
    assert handshake_failure_reason(b"I1129 server.cc:123] Server listening\n") is None


def test_a_flood_becomes_one_summary_per_interval(caplog) -> None:  # type: ignore[no-untyped-def]
    clock = [0.0]
    counted: Counter[str] = Counter()
    log = HandshakeFailureLog(
        logging.getLogger("bidui.test.ops"),
        lambda reason: counted.update([reason]),
        interval=10.0,
        monotonic=lambda: clock[0],
    )
    with caplog.at_level(logging.WARNING, logger="bidui.test.ops"):
        for second in range(25):
            clock[0] = float(second)
            for _ in range(100):
                log.feed(NO_CERT)
            log.feed(UNKNOWN_CA)
    assert counted == {"no_certificate": 2500, "certificate_not_trusted": 25}
    summaries = [r.getMessage() for r in caplog.records]
    assert len(summaries) == 2  # at seconds 10 and 20; the rest waits for the next interval
    assert summaries[0].startswith("1,011 TLS handshakes refused in the last 10 s")
    assert "no_certificate: 1,001" in summaries[0]


SCRIPT = textwrap.dedent(
    """
    import json, logging, sys, tempfile
    from collections import Counter
    from concurrent import futures
    from pathlib import Path
    import grpc
    from provider_node.observability.oplog import HandshakeFailureLog
    from provider_node.identity.pki import create_ca, issue_server_cert

    logging.basicConfig(filename=sys.argv[1], level=logging.INFO)
    counted = Counter()
    capture = HandshakeFailureLog(
        logging.getLogger("ops"), lambda r: counted.update([r]), interval=60.0)
    capture.start()
    d = Path(tempfile.mkdtemp())
    ca = create_ca(d, "test CA")
    node = issue_server_cert(ca, d)
    server = grpc.server(futures.ThreadPoolExecutor(2))
    creds = grpc.ssl_server_credentials(
        [(node.key_path.read_bytes(), node.cert_path.read_bytes())],
        root_certificates=ca.cert_path.read_bytes(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    for _ in range(10):
        channel = grpc.secure_channel(
            f"localhost:{port}", grpc.ssl_channel_credentials(ca.cert_path.read_bytes()))
        try:
            grpc.channel_ready_future(channel).result(timeout=0.2)
        except grpc.FutureTimeoutError:
            pass
        channel.close()
    print("a line of our own on stderr", file=sys.stderr, flush=True)
    server.stop(0)
    capture.stop()
    print(json.dumps(counted))
    """
)


def test_grpc_core_refusals_are_counted_and_kept_off_stderr(tmp_path: Path) -> None:
    log_file = tmp_path / "ops.log"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log_file)],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    counted = json.loads(done.stdout.decode().splitlines()[-1])
    assert counted.get("no_certificate", 0) >= 10, counted
    stderr = done.stderr.decode()
    assert "Handshake failed" not in stderr
    assert "a line of our own on stderr" in stderr  # everything else passes through
    summaries = [line for line in log_file.read_text().splitlines() if "refused" in line]
    assert len(summaries) == 1, summaries  # one summary at stop, not one line per attempt
