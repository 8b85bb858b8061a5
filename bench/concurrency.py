"""Issue 17: parallel legitimate load on one node, one transaction per audit record against group
commit, on SQLite and PostgreSQL, in one run.

    .venv/bin/python bench/concurrency.py                   # the reference run (about 8 minutes)
    .venv/bin/python bench/concurrency.py --seconds 5 --long-seconds 10   # a smoke run
    .venv/bin/python bench/concurrency.py --json concurrency.json > concurrency.md

What runs, for each store (the default SQLite file, a fresh PostgreSQL database on 127.0.0.1:5432
when it answers) and each way of committing: before (``[audit] store_slots = 8`` and
``group_commit_max_records = 1``: one transaction per record, as before issue 17) and after (the
defaults: 32 slots, group commit):

0. **the store alone**: 32 threads of 8 departments appending comparison records through the
   store gate, as the request path does, without gRPC, for ``--seconds``: records per second.
1. ``bidui provider serve`` on a node of 8 enrolled departments (the per-minute item limits lifted:
   a benchmark is not a department), a fresh audit log.
2. **burst**: 20 one-item ``CompareHashed`` calls of one department released together, each on its
   own connection: how many were refused ``UNAVAILABLE`` (target 0).
3. **32 clients**: 4 departments × 8 client threads, each on its own connection, one-item calls
   back to back for ``--seconds``: answered per second (each one audit record), p50/p99, failures.
4. **8 × 8**: 8 departments × 8 client threads for ``--long-seconds`` (60): the same measures
   (target: 0 failures).
5. The node stopped with SIGTERM (exit 0 required) and ``bidui audit verify`` on its log; the
   records in the log must equal the answers the clients received plus what the node writes of its
   own (start, stop).

Clients run in one process per department (``spawn``), so the requesters are not held by one
interpreter's lock; they share the machine's cores with the node, as requesters on the node's
host would. Prints markdown tables with the machine, the sizes and the date.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from _e2e_report import machine_info
from _workers_node import WorkersNode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEPARTMENTS = [f"luzhou-bench-{n}" for n in range(1, 9)]
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the node ---------------------------------------------------------------------------------


def prepare(directory: Path) -> Path:
    """A node directory with the sample residents indexed and a certificate per department."""
    from provider_node.config import load_config
    from provider_node.resources.catalog import build_catalog
    from provider_node.resources.keys import NodeKeys
    from provider_node.resources.loader import load_resource
    from provider_node.setup.bootstrap import init_node

    init = init_node(directory, clients=DEPARTMENTS)
    config = load_config(init.config_path)
    keys = NodeKeys.load(config.keys.dir)
    for resource in build_catalog(config).values():
        load_resource(resource, config, keys)
    return init.config_path


def records_in(audit_url: str) -> int:
    """Records in the audit log at ``audit_url``."""
    from sqlalchemy import create_engine, text

    engine = create_engine(audit_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM audit_record")).scalar())
    finally:
        engine.dispose()


#: The store path as it was before issue 17: 8 slots, one transaction per audit record.
BEFORE = {"BIDUI_AUDIT_GROUP_COMMIT_MAX_RECORDS": "1", "BIDUI_AUDIT_STORE_SLOTS": "8"}


# -- the clients ------------------------------------------------------------------------------


def _department(
    target: str,
    pki: str,
    department: str,
    threads: int,
    seconds: float,
    ready: Any,
    go: Event,
    results: Any,
) -> None:
    """One department's process: ``threads`` clients, each on its own connection, one-item
    calls back to back for ``seconds`` after ``go`` (0: one call each)."""
    import grpc

    from bidui.v1 import comparison_pb2, comparison_pb2_grpc

    folder = Path(pki)
    credentials = grpc.ssl_channel_credentials(
        (folder / "ca.pem").read_bytes(),
        (folder / "clients" / f"{department}.key").read_bytes(),
        (folder / "clients" / f"{department}.pem").read_bytes(),
    )
    latencies: list[float] = []
    codes: dict[str, int] = {}
    lock = threading.Lock()

    def client() -> None:
        channel = grpc.secure_channel(target, credentials)
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = comparison_pb2_grpc.ComparisonServiceStub(channel)
        header = comparison_pb2.ComparisonHeader(
            resource_id="residents", comparison_key="id_number", purpose="concurrency bench",
            key_version=1,
        )  # fmt: skip
        mine: list[float] = []
        counted: dict[str, int] = {}
        ready.put(1)
        go.wait()
        ends = time.monotonic() + seconds
        while True:
            request = comparison_pb2.CompareHashedRequest(
                header=header, tags=[secrets.token_bytes(32)]
            )
            started = time.perf_counter()
            try:
                stub.CompareHashed(request, timeout=30)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name  # type: ignore[attr-defined]
            mine.append(time.perf_counter() - started)
            counted[code] = counted.get(code, 0) + 1
            if time.monotonic() >= ends:
                break
        channel.close()
        with lock:
            latencies.extend(mine)
            for code, count in counted.items():
                codes[code] = codes.get(code, 0) + count

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put({"latencies": latencies, "codes": codes})


def load(port: int, pki: Path, departments: int, threads: int, seconds: float) -> dict[str, Any]:
    """``departments`` processes × ``threads`` clients; answers per second, p50/p99, codes."""
    spawn = multiprocessing.get_context("spawn")
    ready, results, go = spawn.Queue(), spawn.Queue(), spawn.Event()
    target = f"127.0.0.1:{port}"
    processes = [
        spawn.Process(
            target=_department,
            args=(target, str(pki), DEPARTMENTS[n], threads, seconds, ready, go, results),
        )
        for n in range(departments)
    ]
    for process in processes:
        process.start()
    for _ in range(departments * threads):
        ready.get(timeout=120)
    started = time.monotonic()
    go.set()
    gathered = [results.get(timeout=seconds + 300) for _ in processes]
    wall = time.monotonic() - started
    for process in processes:
        process.join()
    latencies = sorted(x for g in gathered for x in g["latencies"])
    codes: dict[str, int] = {}
    for g in gathered:
        for code, count in g["codes"].items():
            codes[code] = codes.get(code, 0) + count
    answered = codes.get("OK", 0)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "clients": departments * threads,
        "seconds": round(wall, 1),
        "answered": answered,
        "failed": sum(codes.values()) - answered,
        "codes": codes,
        "answered_per_s": round(answered / wall, 1),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
    }


# -- one run ----------------------------------------------------------------------------------


def _measured(node: WorkersNode, pki: Path, departments: int, threads: int, seconds: float) -> dict:
    """``load``, with the node's CPU time per answer."""
    cpu = node.cpu_seconds()
    phase = load(node.port, pki, departments, threads, seconds)
    spent = node.cpu_seconds() - cpu
    phase["node_cpu_ms_per_answer"] = round(spent * 1000 / max(phase["answered"], 1), 2)
    return phase


def store_alone(url: str, before: bool, threads: int, seconds: float) -> dict[str, Any]:
    """The audit store without gRPC: ``threads`` threads of 8 departments appending comparison
    records through the store gate as the request path does, for ``seconds``."""
    from provider_node.audit.log import AuditLog
    from provider_node.audit.records import AuditEntry
    from provider_node.store.engine import make_engine, migrate, session_factory
    from provider_node.store.gate import StoreGate

    slots = 8 if before else 32
    engine = make_engine(url, pool_size=slots)
    migrate(engine)
    audit = AuditLog(session_factory(engine), group_commit_max_records=1 if before else 64)
    gate = StoreGate(workers=slots)
    counts: list[int] = []
    ends = time.monotonic() + seconds

    def writer(number: int) -> None:
        department = DEPARTMENTS[number % len(DEPARTMENTS)]
        written = 0
        while time.monotonic() < ends:
            entry = AuditEntry.answered(
                "comparison", requester=department, resource_id="residents", item_count=1
            )
            record = functools.partial(audit.append_grouped, lambda _, entry=entry: entry)
            gate.run(record, owner=department)
            written += 1
        counts.append(written)

    started = time.monotonic()
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    wall = time.monotonic() - started
    report = audit.verify()
    gate.shutdown()
    engine.dispose()
    if not report.ok or report.records_checked != sum(counts):
        sys.exit(f"the audit store bench left a bad chain: {report}")
    return {"records_per_s": round(sum(counts) / wall, 1), "records": sum(counts)}


def run_cell(
    config: Path, audit_url: str, before: bool, args: argparse.Namespace, scratch: Path
) -> dict[str, Any]:
    pki = config.parent / "pki"
    node = WorkersNode(config, 1, scratch, audit_url=audit_url, env=BEFORE if before else None)
    try:
        node.wait_serving(timeout=60)
        at_start = records_in(audit_url)
        burst = load(node.port, pki, 1, 20, 0.0)
        log(f"  burst: {burst['codes']}")
        thirty_two = _measured(node, pki, 4, 8, args.seconds)
        log(f"  32 clients: {thirty_two['answered_per_s']}/s, {thirty_two['codes']}")
        sixty_four = _measured(node, pki, 8, 8, args.long_seconds)
        log(f"  8 x 8: {sixty_four['answered_per_s']}/s, {sixty_four['codes']}")
        added = records_in(audit_url) - at_start
    finally:
        node.stop()
    verified = node.verify_audit().splitlines()[0]
    received = burst["answered"] + thirty_two["answered"] + sixty_four["answered"]
    if added != received:
        sys.exit(f"the audit log holds {added} records for {received} answers received")
    return {
        "burst_unavailable": burst["codes"].get("UNAVAILABLE", 0),
        "burst_failed": burst["failed"],
        "c32": thirty_two,
        "c64": sixty_four,
        "verify": verified,
    }


def _store_url(store: str, scratch: Path, name: str) -> str | None:
    if store == "sqlite":
        return f"sqlite:///{scratch / f'audit-{name}.db'}"
    return _postgres_url()


def _postgres_url() -> str | None:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    name = f"bidui_bench_{os.getpid()}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError:
        return None
    finally:
        admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def _drop_postgres(url: str) -> None:
    from sqlalchemy import create_engine

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"')
    admin.dispose()


def render(machine: dict[str, Any], rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    out = [
        "## Parallel load: one transaction per audit record vs group commit (issue 17)",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['os']}, Python "
        f"{machine['python']}, grpcio {machine['grpcio']}; bidui {machine['bidui_revision']}; "
        f"{machine['date']}. One node process, one-item `CompareHashed` calls on loopback with "
        f"mutual TLS, every client on its own connection; 32 clients for {args.seconds:.0f} s, "
        f"8 departments × 8 clients for {args.long_seconds:.0f} s.",
        "",
        "| store | audit commits | store alone, 32 writers: records/s "
        "| 20-call burst: UNAVAILABLE | 32 clients: records/s "
        "| p50 / p99 ms | failed | node CPU ms/answer | 8 × 8: records/s | p50 / p99 ms "
        "| failed | node CPU ms/answer |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        c32, c64 = row["c32"], row["c64"]
        out.append(
            f"| {row['store']} | {row['commits']} | {row['alone']['records_per_s']:,.0f} "
            f"| {row['burst_unavailable']} "
            + "".join(
                f"| {c['answered_per_s']:,.0f} | {c['p50_ms']} / {c['p99_ms']} | {c['failed']} "
                f"| {c['node_cpu_ms_per_answer']} "
                for c in (c32, c64)
            )
            + "|"
        )
    for store in dict.fromkeys(r["store"] for r in rows):
        pair = [r for r in rows if r["store"] == store]
        if len(pair) == 2:
            alone = pair[1]["alone"]["records_per_s"] / pair[0]["alone"]["records_per_s"]
            ratio = pair[1]["c32"]["answered_per_s"] / max(pair[0]["c32"]["answered_per_s"], 1e-9)
            out.append("")
            out.append(
                f"{store}: audit records per second at 32 concurrent writers, after / before: "
                f"the store alone **{alone:.1f}×**, through the node **{ratio:.1f}×** (target "
                "≥ 3×)."
            )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="the 32-client phase")
    parser.add_argument("--long-seconds", type=float, default=60.0, help="the 8 × 8 phase")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    machine = machine_info()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bidui-concurrency-") as scratch_name:
        scratch = Path(scratch_name)
        config = prepare(scratch / "node")
        for store in args.stores.split(","):
            for commits, before in (("8 slots, one per record", True), ("group commit", False)):
                log(f"{store}, {commits}")
                cell: dict[str, Any] = {"store": store, "commits": commits}
                for part in ("alone", "node"):
                    url = _store_url(store, scratch, f"{part}-{before}")
                    if url is None:
                        log("PostgreSQL not reachable at 127.0.0.1:5432: its rows are skipped")
                        break
                    try:
                        if part == "alone":
                            cell["alone"] = store_alone(url, before, 32, args.seconds)
                            log(f"  store alone: {cell['alone']['records_per_s']}/s")
                        else:
                            cell.update(run_cell(config, url, before, args, scratch))
                    finally:
                        if store != "sqlite":
                            _drop_postgres(url)
                else:
                    rows.append(cell)
    print(render(machine, rows, args))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
