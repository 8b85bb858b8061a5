"""Start and stop the node's gRPC server: mutual TLS, health, reflection, graceful shutdown.

Transport security is grpcio's own: ``grpc.ssl_server_credentials(..., require_client_auth=True)``.
A peer without a client certificate from the node's CA fails the TLS handshake and never reaches
a handler (the client sees UNAVAILABLE, the convention of gRPC's mutual TLS); grpc's C core holds
such a peer without a thread of its own, and the options below bound what it can hold: the
handshake must finish within ``handshake_timeout_s``, idle and old connections are closed, pings
are policed. ``auth.Authenticator`` then names the department of every RPC that got through.

The server is grpcio's asyncio server (``grpc.aio``) on an event loop of its own, with the
node's handlers, which are synchronous, run on a bounded thread pool (``migration_thread_pool``).
grpcio's synchronous server gives each unary call a thread as soon as its headers arrive, and
that thread waits for the request message: 16 calls that never send one stopped the node for
every department, before any code of ours could see who was calling. The asyncio server reads
the message on the event loop and hands a call to a thread only once it has arrived, so a held
call costs a coroutine, not a thread, and the threads serve only calls with work to do.

``create_server`` binds and starts a server for a ready ``ProviderNode`` (tests bind port 0);
on stop it reports NOT_SERVING on the health service, stops accepting, lets in-flight comparisons
finish within the grace period and only then releases the port.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Coroutine, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health as _health
from grpc_health.v1 import health_pb2 as _health_pb2
from grpc_health.v1 import health_pb2_grpc as _health_pb2_grpc
from grpc_health.v1.health import aio as _health_aio
from grpc_reflection.v1alpha import reflection as _reflection

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import catalog_pb2_grpc as _catalog_pb2_grpc
from bidui.v1 import comparison_pb2 as _comparison_pb2
from bidui.v1 import comparison_pb2_grpc as _comparison_pb2_grpc
from bidui.v1 import discrepancy_pb2 as _discrepancy_pb2
from bidui.v1 import discrepancy_pb2_grpc as _discrepancy_pb2_grpc
from bidui.v1 import sharing_pb2 as _sharing_pb2
from bidui.v1 import sharing_pb2_grpc as _sharing_pb2_grpc
from provider_node.comparison.node import ProviderNode
from provider_node.core.chores import Periodic
from provider_node.governance.discrepancies import DiscrepancyDesk
from provider_node.governance.sharing import SharingDesk
from provider_node.identity.auth import Authenticator
from provider_node.observability.metrics import NodeMetrics
from provider_node.transport.catalog_servicer import CatalogServicer
from provider_node.transport.comparison_servicer import ComparisonServicer
from provider_node.transport.discrepancy_servicer import DiscrepancyServicer
from provider_node.transport.guarded import RpcMetricsInterceptor
from provider_node.transport.sharing_servicer import SharingServicer

SERVICE_NAMES = (
    _catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
    _comparison_pb2.DESCRIPTOR.services_by_name["ComparisonService"].full_name,
    _sharing_pb2.DESCRIPTOR.services_by_name["SharingService"].full_name,
    _discrepancy_pb2.DESCRIPTOR.services_by_name["DiscrepancyService"].full_name,
)


@dataclass(frozen=True)
class TlsMaterial:
    """PEM bytes for the node's side of mutual TLS. ``server_key`` is secret."""

    ca_cert: bytes
    server_cert: bytes
    server_key: bytes

    @classmethod
    def from_files(cls, ca_cert: Path, server_cert: Path, server_key: Path) -> TlsMaterial:
        return cls(ca_cert.read_bytes(), server_cert.read_bytes(), server_key.read_bytes())

    def __repr__(self) -> str:
        return "TlsMaterial(<server key hidden>)"

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.server_key, self.server_cert)],
            root_certificates=self.ca_cert,
            require_client_auth=True,
        )


@dataclass(frozen=True)
class TransportLimits:
    """What any one peer, authenticated or not, can hold of the node."""

    max_message_bytes: int = 64 * 1024 * 1024
    max_workers: int = 16
    #: RPCs admitted at once, those waiting for their message included (a coroutine each, no
    #: thread); beyond it grpc answers RESOURCE_EXHAUSTED at once. Work runs on ``max_workers``.
    max_concurrent_rpcs: int = 1024
    #: A TLS handshake (e.g. a ClientHello sent one byte at a time) must finish within this.
    handshake_timeout_s: float = 5.0
    max_connection_idle_s: float = 300.0
    max_connection_age_s: float = 3600.0
    max_connection_age_grace_s: float = 60.0
    max_concurrent_streams: int = 32
    #: Share the port with this node's other worker processes (``serve --workers``, SO_REUSEPORT).
    reuse_port: bool = False

    def options(self) -> list[tuple[str, Any]]:
        ms = 1000
        return [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_metadata_size", 16 * 1024),
            ("grpc.server_handshake_timeout_ms", int(self.handshake_timeout_s * ms)),
            ("grpc.max_connection_idle_ms", int(self.max_connection_idle_s * ms)),
            ("grpc.max_connection_age_ms", int(self.max_connection_age_s * ms)),
            ("grpc.max_connection_age_grace_ms", int(self.max_connection_age_grace_s * ms)),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            # Keepalive enforcement: a client pinging more often than every 10 s, or without
            # calls, is sent GOAWAY after two strikes.
            ("grpc.http2.min_ping_interval_without_data_ms", 10 * ms),
            ("grpc.http2.max_ping_strikes", 2),
            ("grpc.keepalive_permit_without_calls", 0),
            # grpc shares ports by default: a second node on the same port must fail, not split
            # the traffic. Only the workers of one node share it (see
            # provider_node.transport.workers).
            ("grpc.so_reuseport", int(self.reuse_port)),
        ]


_T = TypeVar("_T")


class EventLoop:
    """The asyncio event loop grpc's server runs on, in a thread of its own, so the rest of the
    node (start-up, signals, chores, the CLI) stays synchronous."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="bidui-grpc-loop", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` on the loop and wait for its result (or its exception)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @property
    def closed(self) -> bool:
        return self._loop.is_closed() or not self._thread.is_alive()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: _health_aio.HealthServicer
    loop: EventLoop

    def stop(self, grace: float | None = 5.0) -> None:
        """NOT_SERVING, stop accepting, finish in-flight RPCs within ``grace``, release the port.
        Stopping a stopped server does nothing."""
        if self.loop.closed:
            return

        async def stop() -> None:
            await self.health.enter_graceful_shutdown()
            await self.server.stop(grace)

        try:
            self.loop.run(stop())
        finally:
            self.loop.close()


def create_server(
    node: ProviderNode,
    metrics: NodeMetrics,
    tls: TlsMaterial,
    authenticator: Authenticator,
    desk: SharingDesk,
    address: str,
    *,
    limits: TransportLimits = TransportLimits(),
    discrepancies: DiscrepancyDesk,
) -> RunningServer:
    """Serve on ``address`` (port 0 picks a free one) with mutual TLS; start."""
    loop = EventLoop()
    try:
        server, port, health = loop.run(
            _start(node, metrics, tls, authenticator, desk, address, limits, discrepancies)
        )
    except BaseException:
        loop.close()
        raise
    return RunningServer(server, port, health, loop)


async def _start(
    node: ProviderNode,
    metrics: NodeMetrics,
    tls: TlsMaterial,
    authenticator: Authenticator,
    desk: SharingDesk,
    address: str,
    limits: TransportLimits,
    discrepancies: DiscrepancyDesk,
) -> tuple[grpc.aio.Server, int, _health_aio.HealthServicer]:
    """Build and start the server on the running loop (grpc.aio binds to the loop it starts on)."""
    server = grpc.aio.server(
        migration_thread_pool=futures.ThreadPoolExecutor(
            max_workers=limits.max_workers, thread_name_prefix="bidui-rpc"
        ),
        interceptors=[RpcMetricsInterceptor(metrics)],
        options=limits.options(),
        maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
    )
    _catalog_pb2_grpc.add_CatalogServiceServicer_to_server(
        CatalogServicer(node, authenticator), server
    )
    _comparison_pb2_grpc.add_ComparisonServiceServicer_to_server(
        ComparisonServicer(node, authenticator), server
    )
    _sharing_pb2_grpc.add_SharingServiceServicer_to_server(
        SharingServicer(node, authenticator, desk), server
    )
    _discrepancy_pb2_grpc.add_DiscrepancyServiceServicer_to_server(
        DiscrepancyServicer(node, authenticator, discrepancies), server
    )
    health = _health_aio.HealthServicer()
    _health_pb2_grpc.add_HealthServicer_to_server(health, server)
    _reflection.enable_server_reflection(
        (*SERVICE_NAMES, _health.SERVICE_NAME, _reflection.SERVICE_NAME), server
    )
    try:
        port = server.add_secure_port(address, tls.server_credentials())
    except RuntimeError as problem:
        raise OSError(f"cannot listen on {address}: {problem}") from None
    if port == 0:
        # grpcio reports a port it could not bind (taken, or a bad address) as 0.
        raise OSError(f"cannot listen on {address}: the address is in use or not valid here")
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health.set(name, _health_pb2.HealthCheckResponse.SERVING)
    return server, port, health


class SessionReaper(Periodic):
    """Every ``interval`` seconds until stopped: closes this process's expired blinded sessions
    as abandoned, settles answers in doubt, and closes any comparison left open in the audit log
    by a process that died."""

    def __init__(self, node: ProviderNode, lifetime: float, interval: float = 5.0) -> None:
        def round_() -> None:
            node.reap_expired_sessions()
            node.resolve_answers_in_doubt()
            node.record_refusals()
            # A little past the lifetime: a live process reaps its own first.
            node.reconcile_open_comparisons(lifetime + 2 * interval)

        super().__init__(
            "bidui-session-reaper", "record abandoned blinded comparisons", round_, interval
        )


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

    def wait(self, timeout: float | None = None) -> int:
        """Block until a signal arrives (or ``timeout`` seconds pass: then 0); its number."""
        # Wake up now and then: the OS may deliver the signal to one of grpc's threads, and
        # then only a main thread that returns to the interpreter runs the Python handler.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 0.25 if deadline is None else min(0.25, max(0.0, deadline - time.monotonic()))
            if self._received.wait(left):
                return self.number
            if deadline is not None and time.monotonic() >= deadline:
                return 0
