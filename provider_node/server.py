"""Start and stop the node's gRPC server: mTLS, health, reflection, metrics, graceful shutdown.

``create_server`` binds and starts a server for a ready ``ProviderNode`` (tests bind port 0);
``serve`` builds everything from a configuration file and runs until SIGTERM or SIGINT, when it
reports NOT_SERVING on the health service, lets in-flight comparisons finish, and stops.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health as _health
from grpc_health.v1 import health_pb2 as _health_pb2
from grpc_health.v1 import health_pb2_grpc as _health_pb2_grpc
from grpc_reflection.v1alpha import reflection as _reflection

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import catalog_pb2_grpc as _catalog_pb2_grpc
from bidui.v1 import comparison_pb2 as _comparison_pb2
from bidui.v1 import comparison_pb2_grpc as _comparison_pb2_grpc
from provider_node.metrics import NodeMetrics
from provider_node.node import ProviderNode
from provider_node.servicer import CatalogServicer, ComparisonServicer, RpcMetricsInterceptor
from provider_node.tls_front import PeerRegistry, TlsFront, TlsMaterial, start_tls_front

_log = logging.getLogger(__name__)

SERVICE_NAMES = (
    _catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
    _comparison_pb2.DESCRIPTOR.services_by_name["ComparisonService"].full_name,
)


@dataclass
class RunningServer:
    server: grpc.Server
    front: TlsFront
    health: _health.HealthServicer

    @property
    def port(self) -> int:
        return self.front.port

    def stop(self, grace: float | None = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        # In-flight RPCs finish through the front; then the front closes the connections.
        self.server.stop(grace).wait()
        self.front.stop(grace)


def create_server(
    node: ProviderNode,
    metrics: NodeMetrics,
    tls: TlsMaterial,
    address: str,
    *,
    max_message_bytes: int = 64 * 1024 * 1024,
    max_workers: int = 16,
) -> RunningServer:
    """Serve on ``address`` (port 0 picks a free one) behind the mutual-TLS front; start."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="bidui-rpc"),
        interceptors=[RpcMetricsInterceptor(metrics)],
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # grpc shares ports by default: a second node on the same port must fail, not split
            # the traffic.
            ("grpc.so_reuseport", 0),
        ],
    )
    peers = PeerRegistry()
    _catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(node, peers), server)
    _comparison_pb2_grpc.add_ComparisonServiceServicer_to_server(
        ComparisonServicer(node, peers), server
    )
    health = _health.HealthServicer()
    _health_pb2_grpc.add_HealthServicer_to_server(health, server)
    _reflection.enable_server_reflection(
        (*SERVICE_NAMES, _health.SERVICE_NAME, _reflection.SERVICE_NAME), server
    )
    # Only the TLS front reaches this loopback port; it names each connection's department.
    internal_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        front, _ = start_tls_front(address, f"127.0.0.1:{internal_port}", tls, peers)
    except (OSError, ValueError) as problem:
        server.stop(0)
        reason = problem.strerror if isinstance(problem, OSError) else None
        raise OSError(f"cannot listen on {address}: {reason or problem}") from None
    for name in ("", *SERVICE_NAMES):
        health.set(name, _health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, front, health)


class SessionReaper(threading.Thread):
    """Audits abandoned blinded comparisons every ``interval`` seconds until stopped."""

    def __init__(self, node: ProviderNode, interval: float = 15.0) -> None:
        super().__init__(name="bidui-session-reaper", daemon=True)
        self._node = node
        self._interval = interval
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._node.reap_expired_sessions()
            except Exception:  # the audit store may be down; the next round retries
                _log.warning("could not audit abandoned blinded comparisons; will retry")

    def stop(self) -> None:
        self._stopped.set()


class SignalWaiter:
    """Catches ``signals`` from construction on, so one sent during start-up is not lost."""

    def __init__(self, signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self._received = threading.Event()
        self.number = 0
        for sig in signals:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.number = signum
        self._received.set()

    def wait(self) -> int:
        """Block until a signal arrives; returns its number."""
        # Wake up now and then: the OS may deliver the signal to one of grpc's threads, and
        # then only a main thread that returns to the interpreter runs the Python handler.
        while not self._received.wait(0.25):
            pass
        return self.number
