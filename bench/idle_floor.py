"""The floor under ``e2e.py``'s sporadic calls: a minimal grpcio server, called back to back and
with a pause before each call.

    .venv/bin/python bench/idle_floor.py                   # about a minute

The server of ``flood_floor.py`` (grpcio's mutual TLS with the node's certificates, one unary
method hashing 600 chained SHA-256 with the GIL held, no bidui in it) in its own process; one
client with its certificate calls it ``--calls`` times back to back, then with each pause of
``--pauses`` before every call. What it tells: how much a call costs more when both processes'
threads have been asleep, on this machine, whatever the server does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

import grpc
from _e2e_node import prepare_node
from _e2e_report import machine_info
from _e2e_scenario import REPO
from flood_floor import METHOD, SERVICE, p


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per pause")
    parser.add_argument("--pauses", default="0,0.01,0.2,1", help="seconds before each call")
    args = parser.parse_args(argv)
    pauses = [float(x) for x in args.pauses.split(",")]
    node = prepare_node(REPO / ".bench-cache" / "e2e-20000", 20_000, 2017)  # its certificates
    pki = node.ca_cert.parent
    port = 46000 + os.getpid() % 1000
    server = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "flood_floor.py"), "--serve", "sync",
         "--port", str(port), "--pki", str(pki)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    machine = machine_info()
    print(f"## Idle floor: a minimal grpcio server, called after a pause\n\n"
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {machine['cpu']} ·"
          f" {machine['cores']} cores · grpcio {grpc.__version__} · {args.calls} calls per"
          f" pause\n")  # fmt: skip
    print("| pause before each call | p50 ms | p99 ms |")
    print("| ---: | ---: | ---: |")
    credentials = grpc.ssl_channel_credentials(
        (pki / "ca.pem").read_bytes(),
        (pki / "clients" / "luzhou-civil-affairs.key").read_bytes(),
        (pki / "clients" / "luzhou-civil-affairs.pem").read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", "localhost")]
    try:
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
            call = channel.unary_unary(f"/{SERVICE}/{METHOD}")
            call(b"warm", timeout=30, wait_for_ready=True)
            for _ in range(30):
                call(b"warm", timeout=10)
            for pause in pauses:
                taken = []
                for _ in range(args.calls):
                    time.sleep(pause)
                    started = time.perf_counter()
                    call(os.urandom(16), timeout=10)
                    taken.append((time.perf_counter() - started) * 1000)
                print(f"| {pause:g} s | {statistics.median(taken):.2f} | {p(taken, 99):.2f} |")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
