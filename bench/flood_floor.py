"""The floor under ``flood.py``: the same flood against a minimal grpcio server, no bidui in it.

    .venv/bin/python bench/flood_floor.py                  # sync and aio servers (~2 minutes)
    .venv/bin/python bench/flood_floor.py --servers aio --stall

A server with grpcio's mutual TLS (the node's certificates, handshake timeout 5 s) and one unary
method that spends about 1 ms of CPU with the GIL held (SHA-256 chained), in its own process, as
``grpc.server`` with a thread pool (what ``bidui provider serve`` is) or as ``grpc.aio.server``
(handlers on the event loop: fewer thread hand-offs per call). One client with its certificate
makes ``--calls`` sequential calls idle, then while ``bench/_flood_attacker.py`` floods the port
exactly as in ``flood.py`` (1,100 cert-less TLS peers + 50 slow handshakes), ``--rounds`` times.

What it tells: how much p99 a handshake flood on the same two cores adds to *any* Python gRPC
server's calls, whichever server model, so the node's own ratio can be read against it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path

import grpc
from _e2e_node import prepare_node
from _e2e_report import machine_info
from _e2e_scenario import REPO
from _flood_probe import AttackerProcess

SERVICE, METHOD = "floor.Floor", "Call"
OPTIONS = [("grpc.server_handshake_timeout_ms", 5000)]


def spend_a_millisecond(request: bytes) -> bytes:
    digest = request
    for _ in range(600):
        digest = hashlib.sha256(digest).digest()
    return digest


def serve(kind: str, port: int, pki: Path) -> None:
    """Run the minimal server until killed (the ``--serve`` subprocess)."""
    credentials = grpc.ssl_server_credentials(
        [((pki / "node.key").read_bytes(), (pki / "node.pem").read_bytes())],
        root_certificates=(pki / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    address = f"127.0.0.1:{port}"

    def handlers(call: object) -> grpc.GenericRpcHandler:
        method = grpc.unary_unary_rpc_method_handler(call)  # type: ignore[arg-type]
        return grpc.method_handlers_generic_handler(SERVICE, {METHOD: method})

    if kind == "sync":
        server = grpc.server(futures.ThreadPoolExecutor(16), options=OPTIONS)
        server.add_generic_rpc_handlers((handlers(lambda req, ctx: spend_a_millisecond(req)),))
        server.add_secure_port(address, credentials)
        server.start()
        server.wait_for_termination()
        return

    async def run() -> None:
        server = grpc.aio.server(options=OPTIONS)

        async def call(request: bytes, context: object) -> bytes:
            return spend_a_millisecond(request)

        server.add_generic_rpc_handlers((handlers(call),))
        server.add_secure_port(address, credentials)
        await server.start()
        await server.wait_for_termination()

    asyncio.run(run())


def start_server(kind: str, port: int, pki: Path) -> subprocess.Popen[bytes]:
    """The ``--serve`` subprocess, listening once this returns."""
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port), "--pki", str(pki)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "GRPC_VERBOSITY": "ERROR"},
    )
    time.sleep(1.5)
    return server


def calls(port: int, pki: Path, count: int, pause: float = 0.0) -> list[float]:
    """``count`` sequential calls on one mTLS channel after 30 to warm up, each after ``pause``
    seconds idle; milliseconds each."""
    credentials = grpc.ssl_channel_credentials(
        (pki / "ca.pem").read_bytes(),
        (pki / "clients" / "luzhou-civil-affairs.key").read_bytes(),
        (pki / "clients" / "luzhou-civil-affairs.pem").read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
        call = channel.unary_unary(f"/{SERVICE}/{METHOD}")
        for _ in range(30):
            call(b"warm", timeout=10)
        taken = []
        for _ in range(count):
            time.sleep(pause)
            started = time.perf_counter()
            call(os.urandom(16), timeout=10)
            taken.append((time.perf_counter() - started) * 1000)
    return taken


def p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def measure(kind: str, args: argparse.Namespace, pki: Path) -> str:
    port = 47000 + os.getpid() % 1000
    server = start_server(kind, port, pki)
    try:
        idle: list[float] = []
        flood: list[float] = []
        for _ in range(args.rounds):
            idle += calls(port, pki, args.calls)
            attacker = AttackerProcess(
                port,
                pki / "ca.pem",
                args.connections,
                args.slow,
                stall=args.stall,
                nice=args.attacker_nice,
            )
            attacker.wait_ramped(60.0)
            flood += calls(port, pki, args.calls)
            attacker.stop()
            time.sleep(1.0)
    finally:
        server.kill()
        server.wait()
    ratio = p(flood, 99) / p(idle, 99)
    return (
        f"| {kind} | {p(idle, 50):.2f} / {p(idle, 99):.2f} ms | {p(flood, 50):.2f} /"
        f" {p(flood, 99):.2f} ms | +{p(flood, 99) - p(idle, 99):.2f} ms | {ratio:.2f} × |"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--servers", default="sync,aio", help="sync, aio or both (sync,aio)")
    parser.add_argument("--calls", type=int, default=600, help="calls per phase and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=1100, help="cert-less TLS peers")
    parser.add_argument("--slow", type=int, default=50, help="slow-handshake peers")
    parser.add_argument("--stall", action="store_true", help="as flood.py --stall")
    parser.add_argument(
        "--attacker-nice", type=int, default=0, help="as flood.py --attacker-nice (diagnostic)"
    )
    parser.add_argument("--serve", choices=("sync", "aio"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pki", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.pki)
        return
    node = prepare_node(REPO / ".bench-cache" / "e2e-20000", 20_000, 2017)  # its certificates
    pki = node.ca_cert.parent
    machine = machine_info()
    print(f"## Flood floor: a minimal grpcio server with a 1 ms handler\n\n"
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {machine['cpu']} ·"
          f" {machine['cores']} cores · Python {machine['python']} · grpcio {grpc.__version__} ·"
          f" {args.rounds} rounds × {args.calls} calls per phase · attacker:"
          f" {args.connections:,} cert-less TLS peers{' (stalled)' if args.stall else ''}"
          f" + {args.slow} slow handshakes, attacker at nice {args.attacker_nice}\n")  # fmt: skip
    print("| server | idle p50 / p99 | flood p50 / p99 | p99 added | flood p99 / idle p99 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind in args.servers.split(","):
        print(measure(kind.strip(), args, pki), flush=True)


if __name__ == "__main__":
    main()
