"""``bidui provider serve``: run the node in the foreground until SIGTERM or SIGINT.

Refused TLS handshakes happen in grpc's core, before any RPC: ``HandshakeFailureLog`` reads
them from file descriptor 2 from before the server exists until it has stopped, and summarises
them to the operations log (``bidui.operations``) once an interval, never one line per attempt.
"""

from __future__ import annotations

import logging
import signal
from collections import Counter
from pathlib import Path

import click

from bidui_cli.errors import UserError
from bidui_cli.options import config_option
from provider_node.config import ConfigError, load_config
from provider_node.keys import KeyStoreError
from provider_node.loader import LoaderError
from provider_node.oplog import HandshakeFailureLog
from provider_node.runtime import StartedNode, open_node, start_node
from provider_node.server import SignalWaiter

_log = logging.getLogger(__name__)
_operations = logging.getLogger("bidui.operations")



@click.command()
@config_option()
@click.option("--listen", help="Override [node] listen, e.g. 0.0.0.0:50051.")
@click.option("--metrics-listen", help="Override [node] metrics_listen, e.g. 127.0.0.1:9464.")
@click.option(
    "--grace", default=10.0, show_default=True, help="Seconds in-flight comparisons get on stop."
)
def serve(config_path: Path, listen: str | None, metrics_listen: str | None, grace: float) -> None:
    """Serve comparisons over gRPC with mutual TLS, and Prometheus metrics over HTTP.

    Only departments with a client certificate from the node's CA are served. Every comparison is
    written to the audit log before it is answered. SIGTERM or Ctrl-C stops the node gracefully:
    the health service reports NOT_SERVING, in-flight comparisons finish, then it exits.

    \b
    Example:
      bidui provider serve --config node/node.toml
    """
    signals = SignalWaiter()  # before start-up: a SIGTERM during it must not be lost
    refused: Counter[str] = Counter()  # exported once the node's metrics exist
    handshakes = HandshakeFailureLog(_operations, lambda reason: refused.update((reason,)))
    handshakes.start()  # before grpc makes the server: its core reads the log level then
    try:
        _serve(config_path, listen, metrics_listen, grace, signals, refused)
    finally:
        handshakes.stop()


def _serve(
    config_path: Path,
    listen: str | None,
    metrics_listen: str | None,
    grace: float,
    signals: SignalWaiter,
    refused: Counter[str],
) -> None:
    started = _start(config_path, listen, metrics_listen)
    started.opened.metrics.track_handshake_failures(lambda: dict(refused))
    config = started.opened.config
    click.echo(
        f"bidui node {config.node.name!r} serving on port {started.port} "
        f"(mutual TLS); metrics on http://{_host(metrics_listen or config.node.metrics_listen)}:"
        f"{started.metrics_port}/metrics; audit log {_safe_url(config.audit.database_url)}",
        err=True,
    )
    for resource_id, served in started.opened.node.resources.items():
        sizes = ", ".join(f"{k}/{m}: {len(i):,}" for (k, m), i in served.indexes.items())
        click.echo(f"  resource {resource_id}: {sizes or 'no index (not shared)'}", err=True)
    number = signals.wait()
    click.echo(f"received {signal.Signals(number).name}; stopping gracefully", err=True)
    started.stop(grace)
    click.echo("stopped", err=True)


def _start(config_path: Path, listen: str | None, metrics_listen: str | None) -> StartedNode:
    try:
        config = load_config(config_path)
        config.tls.check_files(config.path)
        opened = open_node(config)
        return start_node(opened, listen=listen, metrics_listen=metrics_listen)
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
