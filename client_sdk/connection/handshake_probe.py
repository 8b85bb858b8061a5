"""Does the node refuse our certificate, or is it going away? A TLS handshake of our own tells.

A grpc node with ``require_client_auth=True`` refuses a client certificate by closing the
connection, without a TLS alert. Under TLS 1.3 the client's side of the handshake is already
complete by then, so grpc reports only "failed to connect to all addresses; ... Socket closed" —
the same words as for a proxy whose node is restarting. Retrying the first wastes the caller's
deadline on a certificate that will never be accepted; not retrying the second fails a
comparison for a routine restart. So when grpc says that, the client makes one TLS connection of
its own with the same CA, certificate and key (Python's ``ssl``), sends the HTTP/2 preface, and
reads::

    connect fails, or the peer closes before our handshake completes   -> UNREACHABLE: retry
    handshake completes, the peer answers (its HTTP/2 SETTINGS)         -> ACCEPTED: retry
    handshake completes, the peer closes (or alerts) without a byte     -> REFUSED: the node
                                                                           refuses this certificate
    we refuse the peer's certificate                                    -> NODE_CERTIFICATE_REFUSED

The probe sends nothing but the HTTP/2 preface and an empty SETTINGS frame. The key goes to
OpenSSL through an anonymous in-memory file (``memfd_create``), never to disk; where that is not
available (not Linux) there is no probe and such a failure is retried like any other.
"""

from __future__ import annotations

import contextlib
import enum
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

from client_sdk.connection.credentials import Credentials

__all__ = ["ProbeResult", "ProbeVerdict", "can_probe", "probe_handshake", "target_address"]

# RFC 9113 section 3.4: the client connection preface, then an empty SETTINGS frame.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


class ProbeVerdict(enum.Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    NODE_CERTIFICATE_REFUSED = "node certificate refused"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class ProbeResult:
    """The verdict, and what the TLS layer said (an alert name, a verification message)."""

    verdict: ProbeVerdict
    reason: str = ""


def can_probe() -> bool:
    """Whether this platform can hand a key to ``ssl`` without writing it to disk."""
    return hasattr(os, "memfd_create")


def target_address(target: str) -> tuple[str, int] | None:
    """(host, port) of a grpc target such as ``node:50051``, ``[::1]:50051``,
    ``dns:///node:50051`` or ``ipv4:127.0.0.1:50051``; None for anything else (unix sockets,
    several addresses, no port)."""
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if target.startswith(scheme):
            target = target[len(scheme) :]
            break
    if "," in target or "/" in target:
        return None
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return None
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return (host, int(port)) if host else None


def probe_handshake(
    address: tuple[str, int], server_name: str, credentials: Credentials, timeout: float
) -> ProbeResult:
    """One TLS connection to ``address`` as ``credentials``; see the module docstring."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=credentials.root_certificates.decode("ascii", "replace"))
    with (
        _in_memory(credentials.certificate_chain) as cert_path,
        _in_memory(credentials.private_key) as key_path,
    ):
        context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols(["h2"])
    try:
        raw = socket.create_connection(address, timeout=timeout)
    except OSError as exc:
        return ProbeResult(ProbeVerdict.UNREACHABLE, exc.strerror or type(exc).__name__)
    with raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=server_name)
        except ssl.SSLCertVerificationError as exc:
            return ProbeResult(ProbeVerdict.NODE_CERTIFICATE_REFUSED, exc.verify_message or "")
        except ssl.SSLError as exc:
            if "ALERT" in (exc.reason or ""):  # a TLS 1.2 peer refusing with an alert
                return ProbeResult(ProbeVerdict.REFUSED, exc.reason or "")
            return ProbeResult(ProbeVerdict.UNREACHABLE, exc.reason or type(exc).__name__)
        except OSError as exc:  # closed or reset before the handshake completed
            return ProbeResult(ProbeVerdict.UNREACHABLE, exc.strerror or type(exc).__name__)
        with tls:
            return _after_handshake(tls)


def _after_handshake(tls: ssl.SSLSocket) -> ProbeResult:
    try:
        tls.sendall(_HTTP2_PREFACE)
        answer = tls.recv(9)
    except TimeoutError:
        # Silent but open: not how a refusal looks (it is immediate); let the caller retry.
        return ProbeResult(ProbeVerdict.UNREACHABLE, "no answer")
    except ssl.SSLError as exc:
        if "ALERT" in (exc.reason or "") or isinstance(exc, ssl.SSLEOFError):
            return ProbeResult(ProbeVerdict.REFUSED, exc.reason or "")
        return ProbeResult(ProbeVerdict.UNREACHABLE, exc.reason or type(exc).__name__)
    except (ConnectionResetError, BrokenPipeError):
        return ProbeResult(ProbeVerdict.REFUSED, "")
    except OSError as exc:
        return ProbeResult(ProbeVerdict.UNREACHABLE, exc.strerror or type(exc).__name__)
    return ProbeResult(ProbeVerdict.ACCEPTED if answer else ProbeVerdict.REFUSED)


@contextlib.contextmanager
def _in_memory(data: bytes) -> Iterator[str]:
    """A path that reads as ``data``, backed by memory only, gone when the block ends."""
    fd = os.memfd_create("bidui-probe", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
