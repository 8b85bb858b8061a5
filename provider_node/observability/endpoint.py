"""The ``/metrics`` HTTP endpoint: the node's registry served on its own port (article 34).

With ``MetricsTls`` only scrapers holding a client certificate from the configured CA are served.
The endpoint runs in a daemon thread until ``MetricsServer.shutdown()``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from provider_node.config import parse_address

__all__ = ["MetricsServer", "MetricsTls", "start_metrics_server"]


class MetricsServer:
    """A running ``/metrics`` HTTP endpoint; ``shutdown()`` stops it and frees the port."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class MetricsTls:
    """Serve /metrics over TLS to scrapers holding a client certificate from ``client_ca``."""

    certfile: Path
    keyfile: Path
    client_ca: Path


def start_metrics_server(
    address: str, registry: CollectorRegistry, *, tls: MetricsTls | None = None
) -> tuple[MetricsServer, int]:
    """Serve ``registry`` at ``http(s)://address/metrics`` from a daemon thread.

    ``address`` is ``host:port`` (``[v6]:port`` for IPv6); port 0 picks a free port, which is
    returned. Raises ``OSError`` when the address cannot be bound, ``ValueError`` when malformed.
    With ``tls``, prometheus_client's own TLS server requires a client certificate.
    """
    host, port = parse_address(address)
    secure: dict[str, Any] = {}
    if tls is not None:
        secure = {
            "certfile": str(tls.certfile),
            "keyfile": str(tls.keyfile),
            "client_cafile": str(tls.client_ca),
            "client_auth_required": True,
        }
    # prometheus_client picks the address family from the host (IPv6 too) and logs no requests.
    server, thread = start_http_server(port, addr=host, registry=registry, **secure)
    handle = MetricsServer(server, thread)
    return handle, handle.port
