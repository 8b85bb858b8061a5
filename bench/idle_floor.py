"""The floor under ``e2e.py``'s sporadic calls: a minimal grpcio server, called back to back and
with a pause before each call.

    .venv/bin/python bench/idle_floor.py                   # about a minute

The server of ``flood_floor.py`` (grpcio's mutual TLS with the node's certificates, one unary
method hashing 600 chained SHA-256 with the GIL held, no bidui in it) in its own process; for each
pause of ``--pauses`` (0: back to back), a client with its certificate opens a channel, warms it
up with 30 calls, then calls ``--calls`` times with that pause before every call
(``flood_floor.calls``). What it tells: how much a call costs more when both processes'
threads have been asleep, on this machine, whatever the server does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence

import grpc
from _e2e_node import prepare_node
from _e2e_report import machine_info
from _e2e_scenario import REPO
from flood_floor import calls, p, start_server


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per pause")
    parser.add_argument("--pauses", default="0,0.01,0.2,1", help="seconds before each call")
    args = parser.parse_args(argv)
    pauses = [float(x) for x in args.pauses.split(",")]
    node = prepare_node(REPO / ".bench-cache" / "e2e-20000", 20_000, 2017)  # its certificates
    pki = node.ca_cert.parent
    port = 46000 + os.getpid() % 1000
    server = start_server("sync", port, pki)
    machine = machine_info()
    print(f"## Idle floor: a minimal grpcio server, called after a pause\n\n"
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {machine['cpu']} ·"
          f" {machine['cores']} cores · grpcio {grpc.__version__} · {args.calls} calls per"
          f" pause\n")  # fmt: skip
    print("| pause before each call | p50 ms | p99 ms |")
    print("| ---: | ---: | ---: |")
    try:
        for pause in pauses:
            taken = calls(port, pki, args.calls, pause)
            print(f"| {pause:g} s | {statistics.median(taken):.2f} | {p(taken, 99):.2f} |")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
