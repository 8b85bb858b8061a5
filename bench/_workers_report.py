"""The workers benchmark's report: the machine, the sizes, the date, and three tables."""

from __future__ import annotations

from typing import Any

from _e2e_scenario import SDK_MODES

MIB = 1 << 20


def _header(results: dict[str, Any]) -> list[str]:
    mc, args = results["machine"], results["parameters"]
    return [
        "## bidui node capacity with worker processes (`serve --workers`)",
        "",
        f"- machine: {mc['cpu']}, {mc['cores']} cores, {mc['os']}",
        f"- Python {mc['python']}, libsodium {mc['libsodium']}, grpcio {mc['grpcio']}; "
        f"bidui {mc['bidui_revision']}",
        f"- date: {mc['date']}; load average at start {mc['load_average_at_start']}, "
        f"at end {results['load_average_at_end']}",
        f"- N = {args['n']:,} provider records; each requester process makes {args['calls']} "
        f"calls of M = {args['m_hashed']:,} (hashed) or {args['m_blinded']:,} (blinded) "
        "records, half present, a new connection per call; median of "
        f"{args['runs']} runs",
        "- node: `bidui provider serve --workers W`, SQLite audit log (one chain for all "
        "workers), per-minute limits lifted; requesters: `client_sdk` in spawned processes",
        "",
    ]


def _throughput(results: dict[str, Any]) -> list[str]:
    lines = [
        "| mode | requesters | workers | items/s | vs 1 worker | node CPU µs/item | "
        "requester CPU µs/item | node cores busy | items per worker |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    nodes, workers_counts = results["nodes"], results["parameters"]["workers"]
    for mode in SDK_MODES:
        for requesters in results["parameters"]["requesters"]:
            alone = nodes[str(workers_counts[0])][f"{mode}/{requesters}"]["items_per_second"]
            for workers in workers_counts:
                cell = nodes[str(workers)][f"{mode}/{requesters}"]
                share = " / ".join(f"{100 * s:.0f}%" for s in cell["worker_share"])
                lines.append(
                    f"| {mode} | {requesters} | {workers} | {cell['items_per_second']:,.0f} | "
                    f"{cell['items_per_second'] / alone:.2f}x | "
                    f"{cell['node_cpu_us_per_item']:.1f} | "
                    f"{cell['requester_cpu_us_per_item']:.1f} | "
                    f"{cell['node_cores_busy']:.2f} | {share} |"
                )
    return lines


def _memory(results: dict[str, Any]) -> list[str]:
    n = results["parameters"]["n"]
    lines = [
        "",
        f"Node memory after the runs (2 indexes of N = {n:,} records, hashed and blinded "
        "`id_number`, memory-mapped):",
        "",
        "| workers | worker | RSS MiB | USS MiB | PSS MiB |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for workers in results["parameters"]["workers"]:
        node = results["nodes"][str(workers)]
        for index, m in enumerate(node["memory"]):
            lines.append(
                f"| {workers} | {index} | {m['rss'] / MIB:.1f} | {m['uss'] / MIB:.1f} | "
                f"{m['pss'] / MIB:.1f} |"
            )
        total = sum(m["pss"] for m in node["memory"]) / MIB
        lines.append(f"| {workers} | all (PSS sum: the node's share of RAM) | | | {total:.1f} |")
    return lines


def _index_memory(results: dict[str, Any]) -> list[str]:
    memory = results["index_memory"]
    k = memory["processes"]
    lines = [
        "",
        f"One index of N = {results['parameters']['n']:,} records loaded by {k} fresh processes "
        "at once: bytes per record in each process (growth of psutil's `memory_full_info`):",
        "",
        "| load | RSS | USS (own) | PSS (shared split) | expected PSS |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, label, expected in (
        ("read_in", "`MatchIndex.load(path)`", 36.0),
        ("mapped", "`MatchIndex.load(path, mmap=True)`", 32 / k + 4),
    ):
        m = memory[key]
        lines.append(
            f"| {label} | {m['rss']:.1f} | {m['uss']:.1f} | {m['pss']:.1f} | {expected:.1f} |"
        )
    return lines


def render(results: dict[str, Any]) -> str:
    audits = [
        f"- {w} worker(s): " + "; ".join(results["nodes"][str(w)]["audit"].splitlines())
        for w in results["parameters"]["workers"]
    ]
    lines = [
        *_header(results),
        *_throughput(results),
        *_memory(results),
        *_index_memory(results),
        "",
        "Audit chains (`bidui audit verify` after each node stopped with exit code 0):",
        "",
        *audits,
    ]
    return "\n".join(lines) + "\n"
