"""The attacker of ``bench/flood.py``, run as its own process: cert-less TLS and slow handshakes.

    .venv/bin/python bench/_flood_attacker.py --port 50051 --ca node/pki/ca.pem \\
        --connections 1100 --slow 50

Two kinds of peers, each reconnecting as soon as the node closes it, all in one asyncio loop:

- **cert-less TLS** (``--connections``): TCP, then a full TLS handshake with Python's ``ssl`` (ALPN
  h2, trusting the node's CA, so it is the node that refuses) *without* a client certificate,
  then a read until the node closes. With TLS 1.3 the client's side of the handshake completes
  before the node has checked the (absent) certificate, so a peer is "held" until the node's
  alert or close arrives. Any application data from the node would mean a cert-less peer got in:
  it is counted (``tls_got_data``; must stay 0).
- with ``--stall``, the cert-less peers instead **hold their connection open**: raw TCP sending
  the whole ClientHello at once, then nothing more (never the client's second flight, which would
  carry the absent certificate), reading what the node sends until it closes the connection at its
  handshake timeout, then reconnecting. Such a peer costs the node one server handshake flight per
  handshake timeout instead of a full refused handshake each time it reconnects.
- **slow handshakes** (``--slow``): raw TCP sending a real ClientHello (its bytes taken from an
  ``ssl.MemoryBIO`` handshake) one byte every ``--slow-interval`` seconds, until the node closes.

Every ``--report-every`` seconds one JSON line of counts goes to stdout: how many peers are
open or in flight right now (counted, not assumed) and the running totals. SIGTERM or SIGINT
stops it after a last line with ``"final": true``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import signal
import socket
import ssl
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Stats:
    tls_in_flight: int = 0  # TCP connecting, TLS handshaking, or held until the node closes
    tls_held: int = 0  # of those: client side of the handshake done, waiting for the node
    slow_open: int = 0  # slow peers with a TCP connection (connecting included)
    totals: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    slow_hold_seconds: list[float] = field(default_factory=list)

    def line(self, started: float, *, final: bool = False) -> str:
        holds = self.slow_hold_seconds
        return json.dumps(
            {
                "t": round(time.monotonic() - started, 3),
                "tls_in_flight": self.tls_in_flight,
                "tls_held": self.tls_held,
                "slow_open": self.slow_open,
                "totals": dict(self.totals),
                "errors": dict(self.errors.most_common(8)),
                "slow_closed": len(holds),
                "slow_hold_mean_s": sum(holds) / len(holds) if holds else None,
                "slow_hold_max_s": max(holds) if holds else None,
                "final": final,
            }
        )


def raise_fd_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit; returns (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def tls_context(ca: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca)  # verifies the node: it is the one refusing
    context.set_alpn_protocols(["h2"])
    return context


def client_hello(context: ssl.SSLContext, server_name: str) -> bytes:
    """The first flight of a real handshake (a ClientHello record), from a memory BIO."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    if not hello or hello[0] != 0x16:  # a TLS handshake record
        raise RuntimeError("could not produce a ClientHello")
    return hello


def _error_name(problem: BaseException) -> str:
    if isinstance(problem, ssl.SSLError):
        return f"ssl:{problem.reason or type(problem).__name__}"
    if isinstance(problem, OSError) and problem.errno is not None:
        return f"os:{problem.errno}"
    return type(problem).__name__


class Attacker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stats = Stats()
        self.context = tls_context(args.ca)
        self.hello = client_hello(self.context, args.server_name)
        self.stopping = asyncio.Event()

    async def _pause_after_error(self) -> None:
        # A refused or failed connect is retried after a short pause, not in a hot loop.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), self.args.error_pause)

    async def certless(self) -> None:
        await self._reconnecting(self._stalled_once if self.args.stall else self._refused_once)

    async def _reconnecting(self, connection: Callable[[], Awaitable[None]]) -> None:
        """One cert-less peer: ``connection`` again and again until stopped, each attempt
        counted; a failed connect or handshake is retried after a pause."""
        stats = self.stats
        while not self.stopping.is_set():
            stats.tls_in_flight += 1
            stats.totals["tls_attempts"] += 1
            failed = False
            try:
                await connection()
            except (OSError, TimeoutError, EOFError) as problem:
                stats.totals["tls_failed"] += 1
                stats.errors[_error_name(problem)] += 1
                failed = not isinstance(problem, ConnectionResetError)
            finally:
                stats.tls_in_flight -= 1
            if failed:
                await self._pause_after_error()

    async def _refused_once(self) -> None:
        """A full TLS handshake without a certificate, then a read until the node closes."""
        stats, args = self.stats, self.args
        writer: asyncio.StreamWriter | None = None
        held = False
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    args.host, args.port, ssl=self.context,
                    server_hostname=args.server_name, ssl_handshake_timeout=args.timeout,
                ),
                args.timeout,
            )  # fmt: skip
            stats.totals["tls_client_handshakes_done"] += 1
            stats.tls_held += 1
            held = True
            data = await asyncio.wait_for(reader.read(4096), args.timeout)
            if data:
                stats.totals["tls_got_data"] += 1  # the node spoke to a cert-less peer
            else:
                stats.totals["tls_closed_by_node"] += 1
        except ssl.SSLError as problem:
            # The node's alert (certificate required) during or right after the handshake.
            stats.totals["tls_refused_by_node"] += 1
            stats.errors[_error_name(problem)] += 1
        finally:
            if held:
                stats.tls_held -= 1
            if writer is not None:
                writer.transport.abort()

    async def _stalled_once(self) -> None:
        """A cert-less peer that sends its ClientHello and then holds the connection open."""
        stats, args = self.stats, self.args
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(args.host, args.port), args.timeout
            )
            writer.write(self.hello)
            await writer.drain()
            stats.tls_held += 1
            try:
                while await asyncio.wait_for(reader.read(65536), args.timeout):
                    pass  # the node's handshake flight: never answered
            finally:
                stats.tls_held -= 1
            stats.totals["tls_closed_by_node"] += 1
        finally:
            if writer is not None:
                writer.transport.abort()

    async def slow(self) -> None:
        stats, args = self.stats, self.args
        while not self.stopping.is_set():
            stats.slow_open += 1
            stats.totals["slow_attempts"] += 1
            writer: asyncio.StreamWriter | None = None
            opened = 0.0
            failed = False
            try:
                reader, stream = await asyncio.wait_for(
                    asyncio.open_connection(args.host, args.port), args.timeout
                )
                writer = stream
                opened = time.monotonic()
                for i in range(len(self.hello)):
                    stream.write(self.hello[i : i + 1])
                    await stream.drain()
                    with contextlib.suppress(TimeoutError):
                        # the node's close (or anything it sends) ends the wait early
                        if await asyncio.wait_for(reader.read(4096), args.slow_interval) == b"":
                            break
                    if self.stopping.is_set():
                        break
                else:
                    stats.totals["slow_hello_completed"] += 1  # never closed within the hello
                if not self.stopping.is_set():
                    stats.totals["slow_closed_by_node"] += 1
                    stats.slow_hold_seconds.append(time.monotonic() - opened)
            except (OSError, TimeoutError) as problem:
                if opened and not self.stopping.is_set():
                    stats.totals["slow_closed_by_node"] += 1
                    stats.slow_hold_seconds.append(time.monotonic() - opened)
                else:
                    stats.errors[f"slow {_error_name(problem)}"] += 1
                    failed = True
            finally:
                if writer is not None:
                    writer.transport.abort()
                stats.slow_open -= 1
            if failed:
                await self._pause_after_error()

    async def report(self, started: float) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.args.report_every)
            print(self.stats.line(started), flush=True)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        started = time.monotonic()
        tasks = [asyncio.create_task(self.report(started))]
        # Ramp up over about a second, so the first burst is not one accept-queue spike.
        for i in range(max(self.args.connections, self.args.slow)):
            if i < self.args.connections:
                tasks.append(asyncio.create_task(self.certless()))
            if i < self.args.slow:
                tasks.append(asyncio.create_task(self.slow()))
            if i % 100 == 99:
                await asyncio.sleep(0.1)
        await self.stopping.wait()
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        print(self.stats.line(started, final=True), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True, help="the node's CA certificate (PEM)")
    parser.add_argument("--server-name", default="localhost", help="SNI and name checked")
    parser.add_argument("--connections", type=int, default=1100, help="cert-less TLS peers")
    parser.add_argument("--slow", type=int, default=50, help="slow-handshake peers")
    parser.add_argument(
        "--stall", action="store_true", help="cert-less peers hold the connection after the hello"
    )
    parser.add_argument("--slow-interval", type=float, default=1.0, help="seconds per byte")
    parser.add_argument("--timeout", type=float, default=30.0, help="per connect/handshake/read")
    parser.add_argument("--error-pause", type=float, default=0.05, help="seconds after an error")
    parser.add_argument("--report-every", type=float, default=0.5, help="seconds between lines")
    args = parser.parse_args(argv)
    soft, hard = raise_fd_limit()
    needed = args.connections + args.slow + 64
    print(json.dumps({"fd_limit": [soft, hard], "fds_needed": needed}), flush=True)
    if soft < needed:
        sys.exit(f"RLIMIT_NOFILE {soft} (hard {hard}) is below the {needed} descriptors needed")
    socket.setdefaulttimeout(None)
    asyncio.run(Attacker(args).run())


if __name__ == "__main__":
    main()
