"""The end-to-end benchmark's report: the machine, the targets of issue 10, the markdown tables."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import subprocess
from importlib import metadata
from typing import Any

from _e2e_scenario import REPO
from _machine import cpu_model  # bench/_machine.py, beside this script

from comparator import group

# Targets of issue 10, on this machine: blinded is modeOPRF (the default), VOPRF on request.
TARGET_HASHED_ITEMS_S = 600_000
TARGET_P99_HASHED_MS = 5.0
TARGET_P99_BLINDED_MS = 8.0
TARGET_BLINDED_OVER_PSI = 2.0
TARGET_VOPRF_OVER_PSI = 1.0


def _git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libsodium": group.libsodium_version(),
        "grpcio": metadata.version("grpcio"),
        "protobuf": metadata.version("protobuf"),
        "bidui_revision": _git_revision(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def verdict(ok: bool) -> str:
    """A target's cell in the tables of every bench script: met, or MISSED in bold."""
    return "met" if ok else "**MISSED**"


def render(results: dict[str, Any]) -> str:
    mc, args = results["machine"], results["parameters"]
    n = args["n"]
    lines = [
        "## bidui end-to-end benchmark (SDK -> node over mutual TLS gRPC, audit on)",
        "",
        f"- machine: {mc['cpu']}, {mc['cores']} cores, {mc['os']}",
        f"- Python {mc['python']}, libsodium {mc['libsodium']}, grpcio {mc['grpcio']}, "
        f"protobuf {mc['protobuf']}; bidui {mc['bidui_revision']}",
        f"- date: {mc['date']}; load average at start {mc['load_average_at_start']}, "
        f"at end {results['load_average_at_end']}",
        f"- N = {n:,} provider records; M = {args['m_blinded']:,} (blinded), "
        f"{args['m_hashed']:,} (hashed), half present; {args['latency_calls']:,} single-record "
        f"calls per mode; median of {args['runs']} runs",
        "- node: `bidui provider serve` in its own process; client: `ComparisonClient.compare` "
        f"(max_batch {args['max_batch']:,}); audit log: a fresh SQLite file",
        "",
        "| measurement | result | target | |",
        "| --- | ---: | ---: | --- |",
    ]
    for mode in ("hashed", "blinded", "blinded-voprf"):
        b = results["build"].get(mode)
        if b:
            cached = " (cached build)" if results["build_cached"] else ""
            lines.append(
                f"| index build, {mode}, N = {n:,} (load_resource){cached} | "
                f"{b['seconds']:.1f} s = {n / b['seconds']:,.0f} records/s | | |"
            )
    hashed, blinded = results["hashed"], results["blinded"]
    ok = hashed["items_per_second"] >= TARGET_HASHED_ITEMS_S
    lines.append(
        f"| hashed, M = {hashed['m']:,}, end to end | **{hashed['items_per_second']:,.0f} "
        f"items/s** | >= {TARGET_HASHED_ITEMS_S:,} | {verdict(ok)} |"
    )
    voprf = results["blinded_voprf"]
    psi = results.get("psi")
    rows = (
        ("blinded (modeOPRF)", blinded, TARGET_BLINDED_OVER_PSI),
        ("blinded (modeVOPRF)", voprf, TARGET_VOPRF_OVER_PSI),
    )
    for label, r, factor in rows:
        target = f">= {factor * psi['items_per_second']:,.0f} ({factor}x PSI)" if psi else ""
        met = verdict(r["items_per_second"] >= factor * psi["items_per_second"]) if psi else ""
        lines.append(
            f"| {label}, M = {r['m']:,}, end to end | **{r['items_per_second']:,.0f} "
            f"items/s** | {target} | {met} |"
        )
    if psi:
        lines.append(
            f"| OpenMined PSI {psi['library'].split()[-1]}, N = {psi['n']:,}, M = {psi['m']:,}: "
            f"request + response + intersection | {psi['items_per_second']:,.0f} items/s | | |"
        )
        for label, r, factor in rows:
            ratio = r["items_per_second"] / psi["items_per_second"]
            lines.append(
                f"| ratio bidui {label} / PSI | **{ratio:.2f}x** | >= {factor}x | "
                f"{verdict(ratio >= factor)} |"
            )
    for label, r in (("hashed", hashed), ("blinded", blinded), ("blinded VOPRF", voprf)):
        lines.append(
            f"| {label}: CPU per item, client + node (cores busy) | "
            f"{r['client_cpu_us_per_item']:.1f} + {r['node_cpu_us_per_item']:.1f} us "
            f"({r['cores_busy']:.2f} of {mc['cores']}) | | |"
        )
    if psi:
        cpu = statistics.median(psi["cpu_seconds"])
        wall = statistics.median(psi["seconds"])
        lines.append(
            f"| PSI: CPU per item, client + server in one process (cores busy) | "
            f"{cpu / psi['m'] * 1e6:.1f} us ({cpu / wall:.2f} of {mc['cores']}) | | |"
        )
    for mode, limit in (("hashed", TARGET_P99_HASHED_MS), ("blinded", TARGET_P99_BLINDED_MS)):
        lat = results[f"latency_{mode}"]
        lines.append(
            f"| single record, {mode}: p50 / p99 | {lat['p50_ms']:.2f} / **{lat['p99_ms']:.2f} "
            f"ms** | p99 <= {limit:g} ms | {verdict(lat['p99_ms'] <= limit)} |"
        )
    for mode in ("hashed", "blinded"):
        if f"sporadic_{mode}" in results:  # not in the JSON of runs before it was measured
            lat = results[f"sporadic_{mode}"]
            lines.append(
                f"| single record, {mode}, each after {lat['pause_s']:g} s idle"
                f" ({lat['calls']} calls): p50 / p99 | {lat['p50_ms']:.2f} / {lat['p99_ms']:.2f} ms"
                " | | |"
            )
    if psi:
        lines.append(
            f"| PSI setup message the client must download (prebuilt, untimed) | "
            f"{psi['setup_bytes'] / 1e6:.2f} MB ({psi['setup_seconds']:.1f} s to build) | | |"
        )
        lines.append(
            f"| PSI request / response bytes for M = {psi['m']:,} | "
            f"{psi['request_bytes'] / 1e3:,.0f} kB / {psi['response_bytes'] / 1e3:,.0f} kB | | |"
        )
    lines += [
        "",
        "Where the time of one `compare()` goes: RPCs it made (from the node's "
        "`bidui_rpc_duration_seconds`) and the node's time inside the gRPC handlers, against the "
        "time the client saw. The rest is the client (canonicalise, HMAC or blind / verify / "
        "finalize), gRPC, TLS and the loopback network.",
        "",
        "| `compare()` of | client-observed | RPCs (node handler mean) | node handlers, total |",
        "| --- | ---: | --- | ---: |",
    ]
    phases = [
        (f"{hashed['m']:,} records, hashed", hashed["ms_per_compare"], hashed["rpcs"]),
        (f"{blinded['m']:,} records, blinded", blinded["ms_per_compare"], blinded["rpcs"]),
        (f"{voprf['m']:,} records, blinded VOPRF", voprf["ms_per_compare"], voprf["rpcs"]),
    ]
    for key, after in (("latency", ""), ("sporadic", ", after {:g} s idle")):
        for mode in ("hashed", "blinded"):
            if f"{key}_{mode}" in results:
                lat = results[f"{key}_{mode}"]
                label = f"1 record, {mode}{after.format(lat.get('pause_s', 0))} (mean)"
                phases.append((label, lat["mean_ms"], lat["rpcs"]))
    for label, client_ms, rpcs in phases:
        methods = ", ".join(
            f"{name} x{m['per_compare']:.3g} ({m['mean_ms']:.2f} ms)"
            for name, m in sorted(rpcs["methods"].items())
        )
        lines.append(
            f"| {label} | {client_ms:.2f} ms | {methods} | "
            f"{rpcs['node_handler_ms_per_compare']:.2f} ms |"
        )
    lines += [
        "",
        f"Every answer was checked (exact match count and per-record result). Audit: "
        f"{results['audit']}.",
    ]
    if psi:
        lines.append(
            f"PSI: {psi['library']}, {psi['data_structure']}, fpr {psi['fpr']:g}, "
            "reveal_intersection=True, one process (no network; the request and the response are "
            "serialized and parsed as on the wire)."
        )
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> dict[str, bool | None]:
    psi = results.get("psi")
    return {
        "hashed_items_per_second": results["hashed"]["items_per_second"] >= TARGET_HASHED_ITEMS_S,
        "hashed_p99": results["latency_hashed"]["p99_ms"] <= TARGET_P99_HASHED_MS,
        "blinded_p99": results["latency_blinded"]["p99_ms"] <= TARGET_P99_BLINDED_MS,
        "blinded_over_psi": (
            results["blinded"]["items_per_second"]
            >= TARGET_BLINDED_OVER_PSI * psi["items_per_second"]
            if psi
            else None
        ),
        "voprf_over_psi": (
            results["blinded_voprf"]["items_per_second"]
            >= TARGET_VOPRF_OVER_PSI * psi["items_per_second"]
            if psi
            else None
        ),
    }
