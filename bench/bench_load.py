"""Issue 10's index-build benchmark: `bidui provider load` of N synthetic residents, per mode.

Target (issue 10, N = 10,000,000): blinded index build >= 35,000 records/s, peak RSS <= 2 GB.

```
.bench-cache/load-<N>/  (built once: `bidui provider init`, a CSV of N rows, 0.1 % invalid)
  for each mode (hashed, blinded = modeOPRF):
     node-<mode>.toml: the resource offers only that mode, key id_number
     `bidui provider load --config node-<mode>.toml`  (subprocess, defaults: every local core)
        psutil: RSS of its process tree every 0.1 s; os.wait4: its ru_maxrss and CPU time
     check: the index holds N - invalid entries; `bidui audit verify` exits 0; one index_load record
```

The source is a CSV file: the loader reads it about twice as fast as the same rows from a SQLite
table through SQLAlchemy (1.5 against 2.9 µs per row here; `--source sqlite` for the other). Each
run has a fresh SQLite audit log and the index file is deleted first. ``BIDUI_OPRF_WORKERS`` is
removed from the load's environment, so the default (every local core) is what is measured.

Peak RSS is measured twice: the sum over the load's process tree polled every 0.1 s (misses
spikes shorter than that), and the kernel's ``ru_maxrss`` of the load process from ``os.wait4``
(exact, its own high-water mark; ``getrusage(RUSAGE_CHILDREN)`` would give the largest of every
child so far, so a second run could only repeat the first's). CPU time is the load process's
user + system time (``wait4``); with ``--local-cluster`` the workers' CPU time is added.

``--scheduler ADDRESS`` adds a row per mode with the per-chunk work on that Dask cluster (its
workers' CPU and memory are not seen from here); ``--local-cluster`` starts a
``distributed.LocalCluster(n_workers=2, threads_per_worker=1)`` (workers with
``BIDUI_OPRF_WORKERS=1``, as the README's `dask worker` line) for a comparison row per mode.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from _e2e_report import machine_info, verdict  # bench/_e2e_report.py, beside this script
from _e2e_scenario import REPO
from _load_data import invalid_rows, write_csv, write_sqlite

from comparator.index import MatchIndex

CACHE_FORMAT = 1
RESOURCE = "residents"
KEY = "id_number"
MODES = ("hashed", "blinded")
TARGET_BLINDED_RECORDS_S = 35_000
TARGET_PEAK_RSS_MIB = 2048
MIB = 1 << 20

# Lines of `bidui provider init`'s node.toml that each run's configuration replaces.
KEYS_LINE = 'keys = { "id_number" = ["id_number"], "id_number+name" = ["id_number", "name"] }'
MODES_LINE = 'modes = ["hashed", "blinded"]'
OPRF_MODES_LINE = 'oprf_modes = ["oprf"]'
FIELDS_LINE = 'fields = { id_number = "cn_resident_id", name = "person_name", birth_date = "date" }'
SOURCE_LINES = (
    'url = "sqlite:///source.db"\nquery = "SELECT id_number, name, birth_date FROM residents"'
)
SOURCES = {
    "csv": ("source.csv", 'csv = "source.csv"', write_csv),
    "sqlite": (
        "bench-source.db",
        'url = "sqlite:///bench-source.db"\nquery = "SELECT id_number, name FROM residents"',
        write_sqlite,
    ),
}


def log(text: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def bidui_command() -> list[str]:
    script = Path(sys.executable).with_name("bidui")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from bidui_cli.main import main; sys.exit(main())"]


# ---- the node folder -------------------------------------------------------------------------


def prepare(directory: Path, n: int, seed: int, source: str) -> dict[str, Any]:
    """The node folder with the source: reused when a complete one for (n, seed, source) is there.

    Returns what the cache says (how long generating the source took)."""
    meta_path = directory / "bench-load.json"
    file_name, _, write = SOURCES[source]
    wanted = {"format": CACHE_FORMAT, "n": n, "seed": seed, "source": source}
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if all(meta.get(k) == v for k, v in wanted.items()) and (directory / file_name).exists():
            log(f"reusing the node and the {source} source in {directory} ({meta['created_at']})")
            return dict(meta)
    if directory.exists():
        if not (meta_path.exists() or (directory / "node.toml").exists()):
            sys.exit(
                f"{directory} exists and is not a bench_load.py node; choose another --workdir"
            )
        if (directory / "node.toml").exists() and (directory / "keys").is_dir():
            log(f"keeping the node in {directory}, writing a new source")
        else:
            shutil.rmtree(directory)
    if not (directory / "node.toml").exists():
        log(f"creating the node in {directory} (bidui provider init)")
        subprocess.run(
            [*bidui_command(), "provider", "init", "--dir", str(directory)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    meta_path.unlink(missing_ok=True)
    log(f"generating {n:,} synthetic residents ({invalid_rows(n):,} invalid) as {source}")
    started = time.perf_counter()
    write(directory / file_name, n, seed)
    seconds = time.perf_counter() - started
    log(f"  {seconds:.1f} s, {(directory / file_name).stat().st_size / MIB:,.0f} MiB")
    meta = {
        **wanted,
        "generate_seconds": round(seconds, 2),
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta


def write_config(directory: Path, mode: str, source: str) -> Path:
    """``node-<mode>.toml``: init's node.toml with one resource offering only ``mode``, key
    ``id_number``, source the benchmark's."""
    text = (directory / "node.toml").read_text(encoding="utf-8")
    replacements = {
        KEYS_LINE: 'keys = { "id_number" = ["id_number"] }',
        MODES_LINE: f'modes = ["{mode}"]',
        FIELDS_LINE: 'fields = { id_number = "cn_resident_id", name = "person_name" }',
        SOURCE_LINES: SOURCES[source][1],
    }
    if mode == "blinded":
        replacements[OPRF_MODES_LINE] = 'oprf_modes = ["oprf"]'  # modeOPRF, the default
    for old, new in replacements.items():
        if old not in text:
            sys.exit(f"the node.toml template changed: update bench_load.py ({old!r} is gone)")
        text = text.replace(old, new)
    path = directory / f"node-{mode}.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ---- one load --------------------------------------------------------------------------------


class TreeSampler:
    """Polls the summed RSS of a process tree (and of other processes) every ``interval`` s."""

    def __init__(self, pid: int, others: list[psutil.Process], interval: float = 0.1) -> None:
        self.root = psutil.Process(pid)
        self.others = others
        self.interval = interval
        self.peak = 0
        self.others_peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _rss(processes: list[psutil.Process]) -> int:
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                tree = []
            self.peak = max(self.peak, self._rss(tree))
            self.others_peak = max(self.others_peak, self._rss(self.others))
            self.samples += 1
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def run_load(
    directory: Path,
    config: Path,
    mode: str,
    n: int,
    via: str,
    scheduler: str | None,
    cluster_workers: list[psutil.Process],
) -> dict[str, Any]:
    """One `bidui provider load` run, measured and checked; exits on a wrong result."""
    label = f"{mode}-{re.sub(r'[^a-z0-9]+', '-', via.lower()).strip('-')}"
    audit_db = directory / f"audit-{label}.db"
    audit_db.unlink(missing_ok=True)
    index = directory / "data" / "indexes" / RESOURCE / f"{KEY}.{mode}.idx"
    index.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "BIDUI_OPRF_WORKERS"}
    env["BIDUI_AUDIT_DATABASE_URL"] = f"sqlite:///{audit_db}"
    command = [*bidui_command(), "provider", "load", "--config", str(config)]
    if scheduler is not None:
        command += ["--scheduler", scheduler]
    log_path = directory / f"load-{label}.log"
    log(f"{mode} via {via}: {' '.join(command[1:])}")
    workers_cpu = _cpu(cluster_workers)
    with log_path.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeSampler(process.pid, cluster_workers)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            wall = time.perf_counter() - started
            sampler.stop()
        process.returncode = os.waitstatus_to_exitcode(status)
    workers_cpu = _cpu(cluster_workers) - workers_cpu
    output = log_path.read_text(encoding="utf-8", errors="replace")
    if process.returncode != 0:
        sys.exit(f"{mode}: load exited with code {process.returncode}; its output:\n{output}")
    built = re.search(r" in ([0-9.]+) s\n", output)
    check = check_result(directory, config, env, index, n, mode)
    cpu = usage.ru_utime + usage.ru_stime + workers_cpu
    result = {
        "mode": mode,
        "via": via,
        "n": n,
        "wall_seconds": round(wall, 3),
        "loader_seconds": float(built.group(1)) if built else None,
        "records_per_second": round(n / wall),
        "peak_rss_polled_mib": round(sampler.peak / MIB, 1),
        "ru_maxrss_mib": round(usage.ru_maxrss * 1024 / MIB, 1),  # ru_maxrss is in KiB
        "cluster_workers_peak_rss_mib": (
            round(sampler.others_peak / MIB, 1) if cluster_workers else None
        ),
        "rss_samples": sampler.samples,
        "cpu_seconds": round(cpu, 3),
        "load_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "cluster_workers_cpu_seconds": round(workers_cpu, 3) if cluster_workers else None,
        "cpu_us_per_record": round(cpu / n * 1e6, 2),
        "cores_busy": round(cpu / wall, 2),
        **check,
    }
    log(
        f"  {wall:.1f} s, {n / wall:,.0f} records/s, peak RSS {result['peak_rss_polled_mib']:,.0f}"
        f" MiB (ru_maxrss {result['ru_maxrss_mib']:,.0f}), {result['cpu_us_per_record']} µs CPU "
        f"per record, {result['cores_busy']} cores busy"
    )
    return result


def check_result(
    directory: Path, config: Path, env: dict[str, str], index_path: Path, n: int, mode: str
) -> dict[str, Any]:
    """The index holds every valid row, the audit log verifies and has the load's record."""
    expected = n - invalid_rows(n)
    if not index_path.exists():
        sys.exit(f"{mode}: load exited 0 but wrote no {index_path}")
    index = MatchIndex.load(index_path, mmap=True)
    meta = index.metadata
    entries = len(index)
    del index
    got = (entries, meta.get("source_rows"), meta.get("invalid_rows"), meta.get("mode"))
    if got != (expected, str(n), str(invalid_rows(n)), mode):
        sys.exit(
            f"{mode}: index {index_path} has (entries, source rows, invalid rows, mode) {got}, "
            f"expected {(expected, str(n), str(invalid_rows(n)), mode)}"
        )
    bidui = bidui_command()
    verify = subprocess.run(
        [*bidui, "audit", "verify", "--config", str(config)],
        env=env, capture_output=True, text=True, cwd=directory,
    )  # fmt: skip
    if verify.returncode != 0:
        sys.exit(f"{mode}: audit verify exited {verify.returncode}: {verify.stdout}{verify.stderr}")
    export = subprocess.run(
        [*bidui, "audit", "export", "--config", str(config)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    records = [json.loads(line) for line in export.stdout.splitlines() if line.strip()]
    loads = [r for r in records if r.get("action") == "index_load"]
    if [(r.get("resource_id"), r.get("item_count")) for r in loads] != [(RESOURCE, n)]:
        actions = sorted({str(r.get("action")) for r in records})
        sys.exit(f"{mode}: expected one index_load record of {n} rows: {loads or actions}")
    return {
        "index_entries": entries,
        "index_bytes": index_path.stat().st_size,
        "audit_verify": verify.stdout.strip().splitlines()[0],  # "audit chain OK: 1 records"
        "audit_index_load": loads[0].get("reason", ""),
    }


# ---- report ----------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    mc, p = results["machine"], results["parameters"]
    n = p["n"]
    lines = [
        "## bidui index build (`bidui provider load`, issue 10)",
        "",
        f"- machine: {mc['cpu']}, {mc['cores']} cores, {results['ram_gib']} GiB RAM, {mc['os']}",
        f"- Python {mc['python']}, libsodium {mc['libsodium']}; bidui {mc['bidui_revision']}",
        f"- date: {mc['date']}; load average at start {mc['load_average_at_start']}, "
        f"at end {results['load_average_at_end']}",
        f"- N = {n:,} source rows ({invalid_rows(n):,} invalid: wrong check character or "
        f"impossible birth date), one key (`id_number`); source: {p['source_description']}",
        "- each row: `bidui provider load --config node-<mode>.toml` as a subprocess (the resource "
        "offers only that mode; blinded = modeOPRF), default settings unless `via` says otherwise;"
        " wall time from start to exit (Python start-up, row count, build, index write, audit)",
        "- peak RSS: the load's process tree polled every 0.1 s / its `ru_maxrss` (`wait4`); "
        "CPU: user + system of the load (and of the cluster's workers where started here)",
        f"- targets (issue 10, at N = 10,000,000): blinded >= {TARGET_BLINDED_RECORDS_S:,} "
        f"records/s, peak RSS <= {TARGET_PEAK_RSS_MIB:,} MiB"
        + ("" if n == 10_000_000 else f"; **this run's N is {n:,}**, not the target's"),
        "",
        "| mode | via | N | wall s | records/s | target | | peak RSS MiB (polled / ru_maxrss) "
        "| target | | CPU µs/record | cores busy |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in results["runs"]:
        rate_target, rate_ok = "—", ""
        if r["mode"] == "blinded":
            rate_target = f">= {TARGET_BLINDED_RECORDS_S:,}"
            rate_ok = verdict(r["records_per_second"] >= TARGET_BLINDED_RECORDS_S)
        peak = max(r["peak_rss_polled_mib"], r["ru_maxrss_mib"])
        memory = f"{r['peak_rss_polled_mib']:,.0f} / {r['ru_maxrss_mib']:,.0f}"
        if r["cluster_workers_peak_rss_mib"] is not None:
            memory += f" (+ workers {r['cluster_workers_peak_rss_mib']:,.0f})"
        lines.append(
            f"| {r['mode']} | {r['via']} | {r['n']:,} | {r['wall_seconds']:.1f} | "
            f"{r['records_per_second']:,} | {rate_target} | {rate_ok} | {memory} | "
            f"<= {TARGET_PEAK_RSS_MIB:,} | {verdict(peak <= TARGET_PEAK_RSS_MIB)} | "
            f"{r['cpu_us_per_record']:.1f} | {r['cores_busy']:.2f} |"
        )
    lines += [
        "",
        "| mode | via | loader's own seconds | start-up, count, audit s | index entries | "
        "index MiB | audit verify |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results["runs"]:
        own = r["loader_seconds"]
        rest = f"{r['wall_seconds'] - own:.1f}" if own is not None else "?"
        lines.append(
            f"| {r['mode']} | {r['via']} | {own if own is not None else '?'} | {rest} | "
            f"{r['index_entries']:,} | {r['index_bytes'] / MIB:,.1f} | {r['audit_verify']} |"
        )
    return "\n".join(lines) + "\n"


# ---- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="source rows (default 10M)")
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated, of hashed, blinded"
    )
    parser.add_argument("--workdir", type=Path, help="default .bench-cache/load-<N>")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--source", choices=tuple(SOURCES), default="csv")
    parser.add_argument("--scheduler", help="also load through this Dask scheduler")
    parser.add_argument(
        "--local-cluster",
        action="store_true",
        help="also load through a LocalCluster(n_workers=2, threads_per_worker=1) started here",
    )
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: a comma-separated list of {', '.join(MODES)}")
    if args.n < 1:
        parser.error("--n must be positive")
    directory = (args.workdir or REPO / ".bench-cache" / f"load-{args.n}").resolve()

    machine = machine_info()
    meta = prepare(directory, args.n, args.seed, args.source)
    configs = {mode: write_config(directory, mode, args.source) for mode in modes}
    file_name = SOURCES[args.source][0]
    size = (directory / file_name).stat().st_size / MIB
    source_description = (
        f"{'CSV file' if args.source == 'csv' else 'SQLite table'} `{file_name}` "
        f"({size:,.0f} MiB, `id_number,name`; generated in {meta['generate_seconds']} s)"
    )

    runs = []
    cores = os.cpu_count() or 1
    for mode in modes:
        via = f"local ({cores} cores)"
        runs.append(run_load(directory, configs[mode], mode, args.n, via, None, []))
    if args.scheduler:
        for mode in modes:
            via = f"scheduler {args.scheduler}"
            runs.append(run_load(directory, configs[mode], mode, args.n, via, args.scheduler, []))
    if args.local_cluster:
        runs += run_local_cluster(directory, configs, modes, args.n)

    results = {
        "machine": machine,
        "ram_gib": round(psutil.virtual_memory().total / (1 << 30), 1),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "parameters": {
            "n": args.n,
            "invalid_rows": invalid_rows(args.n),
            "modes": modes,
            "seed": args.seed,
            "source": args.source,
            "source_description": source_description,
            "workdir": str(directory),
        },
        "runs": runs,
    }
    report = render(results)
    print(report)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


def run_local_cluster(
    directory: Path, configs: dict[str, Path], modes: list[str], n: int
) -> list[dict[str, Any]]:
    try:
        from distributed import LocalCluster
    except ImportError:
        sys.exit('--local-cluster needs the distributed package: pip install ".[cluster]"')
    os.environ["BIDUI_OPRF_WORKERS"] = "1"  # the workers' environment: one thread each
    log("starting a LocalCluster(n_workers=2, threads_per_worker=1)")
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    runs = []
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        workers = [p for p in me.children(recursive=True) if p.pid not in before]
        for mode in modes:
            via = "LocalCluster 2 workers x 1 thread"
            runs.append(
                run_load(directory, configs[mode], mode, n, via, cluster.scheduler_address, workers)
            )
    del os.environ["BIDUI_OPRF_WORKERS"]
    return runs


if __name__ == "__main__":
    main()
