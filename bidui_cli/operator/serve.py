"""``bidui provider serve``: run the node in the foreground until SIGTERM or SIGINT.

Refused TLS handshakes happen in grpc's core, before any RPC: ``HandshakeFailureLog`` reads
them from file descriptor 2 from before the server exists until it has stopped, and summarises
them to the operations log (``bidui.operations``) once an interval, never one line per attempt.

With ``--workers N`` (or ``[transport] workers``) above 1 this process only supervises N forked
worker processes sharing the port (``provider_node.transport.workers``); each runs what one process
runs
alone: its handshake log, its node, its metrics endpoint.
"""

from __future__ import annotations

import gc
import logging
import signal
from collections import Counter
from pathlib import Path

import click

from bidui_cli.errors import UserError
from bidui_cli.options import config_option
from provider_node.config import ConfigError, NodeConfig, load_config
from provider_node.config.models import metrics_listen_problem
from provider_node.observability.oplog import HandshakeFailureLog
from provider_node.resources.keys import KeyStoreError
from provider_node.resources.source import LoaderError
from provider_node.setup.runtime import StartedNode, open_node, start_node
from provider_node.transport.descriptors import LOW_OPEN_FILES, raise_open_files_limit
from provider_node.transport.server import SignalWaiter
from provider_node.transport.workers import WorkerError, WorkerPool, WorkerSlot

_log = logging.getLogger(__name__)
_operations = logging.getLogger("bidui.operations")

MAX_WORKERS = 256  # as [transport] workers
# A worker's stop: in-flight RPCs within the grace, then the reaper, the open blinded comparisons
# recorded (retried up to 30 s while the store is down), a last checkpoint.
_STOP_MARGIN_S = 90.0


@click.command()
@config_option()
@click.option("--listen", help="Override [node] listen, e.g. 0.0.0.0:50051.")
@click.option("--metrics-listen", help="Override [node] metrics_listen, e.g. 127.0.0.1:9464.")
@click.option(
    "--grace", default=10.0, show_default=True, help="Seconds in-flight comparisons get on stop."
)
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    help="Worker processes sharing the port, one core each (default: [transport] workers, 1). "
    "Worker i serves its metrics on the metrics port + i.",
)
def serve(
    config_path: Path,
    listen: str | None,
    metrics_listen: str | None,
    grace: float,
    workers: int | None,
) -> None:
    """Serve comparisons over gRPC with mutual TLS, and Prometheus metrics over HTTP.

    Only departments with a client certificate from the node's CA are served. Every comparison is
    written to the audit log before it is answered. SIGTERM or Ctrl-C stops the node gracefully:
    the health service reports NOT_SERVING, in-flight comparisons finish, then it exits.

    \b
    Example:
      bidui provider serve --config node/node.toml
      bidui provider serve --config node/node.toml --workers 4
    """
    signals = SignalWaiter()  # before start-up: a SIGTERM during it must not be lost
    config = _load(config_path)
    if metrics_listen is not None:
        refused = metrics_listen_problem(metrics_listen, config.node.metrics_expose)
        if refused is not None:
            raise UserError(f"--metrics-listen {metrics_listen} {refused}")
    _raise_open_files_limit()  # before workers are forked: they inherit it
    count = workers if workers is not None else config.transport.workers
    if count == 1:
        _serve_alone(config, listen, metrics_listen, grace, signals)
    else:
        _serve_workers(config, count, listen, metrics_listen, grace, signals)


class _NodeProcess:
    """One process's node: grpc's handshake log in front of fd 2, the started node."""

    def __init__(
        self,
        config: NodeConfig,
        listen: str | None,
        metrics_listen: str | None,
        grace: float,
        worker: int | None = None,
    ) -> None:
        self.grace = grace
        refused: Counter[str] = Counter()  # exported once the node's metrics exist
        self.handshakes = HandshakeFailureLog(_operations, lambda reason: refused.update((reason,)))
        self.handshakes.start()  # before grpc makes the server: its core reads the log level then
        try:
            self.started = _start(config, listen, metrics_listen, worker)
        except BaseException:
            self.handshakes.stop()
            raise
        self.started.opened.metrics.track_handshake_failures(lambda: dict(refused))
        # Everything made while starting (configuration, SQLAlchemy's metadata, grpc, the
        # indexes' metadata) lives as long as the process: out of the collector's sight, a
        # collection of the older generations walks only what requests made since, and stops
        # costing a request a millisecond now and then.
        gc.freeze()

    @property
    def port(self) -> int:
        return self.started.port

    @property
    def metrics_port(self) -> int:
        return self.started.metrics_port

    def describe_resources(self) -> None:
        for resource_id, served in self.started.opened.node.resources.items():
            sizes = ", ".join(f"{k}/{m}: {len(i):,}" for (k, m), i in served.indexes.items())
            click.echo(f"  resource {resource_id}: {sizes or 'no index (not shared)'}", err=True)

    def stop(self) -> None:
        try:
            self.started.stop(self.grace)
        finally:
            self.handshakes.stop()


def _serve_alone(
    config: NodeConfig,
    listen: str | None,
    metrics_listen: str | None,
    grace: float,
    signals: SignalWaiter,
) -> None:
    node = _NodeProcess(config, listen, metrics_listen, grace)
    try:
        click.echo(
            f"bidui node {config.node.name!r} serving on port {node.port} (mutual TLS); metrics "
            f"on http://{_host(metrics_listen or config.node.metrics_listen)}:{node.metrics_port}"
            f"/metrics; audit log {_safe_url(config.audit.database_url)}",
            err=True,
        )
        node.describe_resources()
        number = signals.wait()
        click.echo(f"received {signal.Signals(number).name}; stopping gracefully", err=True)
    finally:
        node.stop()
    click.echo("stopped", err=True)


def _serve_workers(
    config: NodeConfig,
    count: int,
    listen: str | None,
    metrics_listen: str | None,
    grace: float,
    signals: SignalWaiter,
) -> None:
    """Supervise ``count`` workers; this process makes no grpc object (they are forked)."""
    metrics_address = metrics_listen or config.node.metrics_listen

    def start(slot: WorkerSlot) -> _NodeProcess:
        node = _NodeProcess(config, slot.listen, slot.metrics_listen, grace, worker=slot.index)
        if slot.index == 0:
            node.describe_resources()
        return node

    def serving(pool: WorkerPool) -> None:
        ports = ", ".join(str(p) for p in pool.metrics_ports)
        click.echo(
            f"bidui node {config.node.name!r} serving on port {pool.port} (mutual TLS) with "
            f"{count} workers; metrics on http://{_host(metrics_address)}:<port>/metrics, ports "
            f"{ports} (label worker); audit log {_safe_url(config.audit.database_url)}",
            err=True,
        )

    try:
        pool = WorkerPool(
            count,
            listen or config.node.listen,
            metrics_address,
            start,
            signals,
            report=lambda line: click.echo(line, err=True),
            stop_timeout=grace + _STOP_MARGIN_S,
        )
        pool.run(on_serving=serving)
    except ValueError as problem:
        raise UserError(f"cannot start {count} workers: {problem}") from None
    except OSError as problem:
        raise UserError(f"cannot start the node: {problem}") from None
    except WorkerError as problem:
        raise UserError(str(problem)) from None
    click.echo("stopped", err=True)


def _raise_open_files_limit() -> None:
    limit = raise_open_files_limit()
    if limit.raised:
        click.echo(
            f"open files: soft limit raised from {limit.before:,} to {limit.now:,}", err=True
        )
    if limit.low:
        _log.warning(
            "open files are limited to %s: a peer without a certificate holds one until its TLS "
            "handshake times out, so that many such peers can keep departments' new connections "
            "waiting; raise the hard limit to at least %s (systemd: LimitNOFILE=65536; a root "
            "shell: ulimit -n 65536)",
            f"{limit.now:,}",
            f"{LOW_OPEN_FILES:,}",
        )


def _load(config_path: Path) -> NodeConfig:
    try:
        config = load_config(config_path)
        config.tls.check_files(config.path)
    except ConfigError as problem:
        raise UserError(str(problem)) from None
    return config


def _start(
    config: NodeConfig, listen: str | None, metrics_listen: str | None, worker: int | None
) -> StartedNode:
    try:
        opened = open_node(config)
        return start_node(opened, listen=listen, metrics_listen=metrics_listen, worker=worker)
    except (ConfigError, KeyStoreError, LoaderError) as problem:
        raise UserError(str(problem)) from None
    except OSError as problem:
        raise UserError(f"cannot start the node: {problem}") from None
    except Exception as problem:  # the audit store, most often: say which part, not a traceback
        raise UserError(
            f"cannot start the node ({type(problem).__name__}): {str(problem).splitlines()[0]}"
        ) from None


def _host(address: str) -> str:
    return address.rsplit(":", 1)[0] or "127.0.0.1"


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database>"
