"""The tables of ``bench/flood.py``: latency idle vs flood, the targets of issue 7, the node."""

from __future__ import annotations

from typing import Any

from _e2e_report import verdict
from _e2e_scenario import SDK_MODES

TARGET_P99_RATIO = 2.0  # flood p99 / idle p99, per mode
TARGET_ATTACKER_AUDIT_RECORDS = 0


def targets(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in SDK_MODES:
        ratio = results["flood"][mode]["p99_ms"] / results["idle"][mode]["p99_ms"]
        failed = results["flood"][mode]["failed"]
        out[f"p99_ratio_{mode}"] = {"value": ratio, "met": ratio <= TARGET_P99_RATIO and not failed}
    extra = results["audit"]["attacker_records"]
    out["attacker_audit_records"] = {
        "value": extra, "met": extra == TARGET_ATTACKER_AUDIT_RECORDS
    }  # fmt: skip
    return out


def _ms(value: float) -> str:
    return f"{value:.2f}"


def _threads(window: dict[str, Any]) -> str:
    return ", ".join(f"{n} {p:.0f} %" for n, p in window["threads_cpu_percent"].items()) or "-"


def render(results: dict[str, Any]) -> str:
    mc, args = results["machine"], results["parameters"]
    att, aud, tg = results["attacker"], results["audit"], results["targets"]
    window = att["window"]
    lines = [
        "## Flood: cert-less TLS connections and slow handshakes against a serving node",
        "",
        f"{mc['date']} · {mc['cpu']} · {mc['cores']} cores · {mc['os']} · Python {mc['python']}"
        f" · grpcio {mc['grpcio']} · bidui {mc['bidui_revision']}",
        f"N = {args['n']:,} residents · {args['rounds']} rounds of (idle, flood), each"
        f" {args['seconds']:g} s of single-record calls, hashed and blinded in turn (after"
        f" {args['warmup']:g} s of warm-up) and {args['connects']} new connections; percentiles"
        f" over all rounds' calls"
        f" · attacker: {args['connections']:,} cert-less TLS peers"
        f"{' holding their connection after the ClientHello' if args.get('stall') else ''}"
        f" + {args['slow']} slow"
        f" handshakes (1 byte/s), in its own process (nice {args['attacker_nice']}), fd limit"
        f" {att['fd_limit']} · load average {mc['load_average_at_start']} at start,"
        f" {results['load_average_at_end']} at end",
        "",
        "| mode | phase | calls | failed | p50 ms | p95 ms | p99 ms | max ms | p99 ms by round"
        " | slowest second's p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for mode in SDK_MODES:
        for phase in ("idle", "flood"):
            r = results[phase][mode]
            lines.append(
                f"| {mode} | {phase} | {r['calls']:,} | {r['failed']} | {_ms(r['p50_ms'])} |"
                f" {_ms(r['p95_ms'])} | {_ms(r['p99_ms'])} | {_ms(r['max_ms'])} |"
                f" {', '.join(_ms(v) for v in r['p99_ms_rounds'])} |"
                f" {_ms(r['slowest_second_p99_ms'])} |"
            )
    for phase in ("idle", "flood"):
        c = results[f"connect_{phase}"]
        lines.append(
            f"| new mTLS connection + health check | {phase} | {c['calls']} | {c['failed']} |"
            f" {_ms(c['p50_ms'])} | {_ms(c['p95_ms'])} | {_ms(c['p99_ms'])} | {_ms(c['max_ms'])} |"
            " | |"
        )
    lines += [
        "",
        "| check (issue 7) | target | measured | |",
        "| --- | --- | ---: | --- |",
    ]
    for mode in SDK_MODES:
        t = tg[f"p99_ratio_{mode}"]
        lines.append(
            f"| {mode}: flood p99 / idle p99 | ≤ {TARGET_P99_RATIO:g}× (no failed call) |"
            f" {t['value']:.2f}× | {verdict(t['met'])} |"
        )
    t = tg["attacker_audit_records"]
    lines += [
        f"| audit records added by the attacker | {TARGET_ATTACKER_AUDIT_RECORDS} |"
        f" {t['value']} | {verdict(t['met'])} |",
        f"| audit records added during the flood | the department's {aud['department_calls']:,}"
        f" comparisons: {aud['expected']:,} records | {aud['added']:,} |"
        f" {verdict(not aud['unexpected'])} |",
        f"| cert-less peers the node sent data to | 0 | {att['totals'].get('tls_got_data', 0)} |"
        f" {verdict(not att['totals'].get('tls_got_data', 0))} |",
        f"| node still SERVING after the flood | yes | {results['serving_after']} |"
        f" {verdict(results['serving_after'] == 'yes')} |",
        "",
        "| attacker (mean over the flood measurement, counted in the attacker) | value |",
        "| --- | ---: |",
        *_attacker_window(window),
        f"| attacker ramp-up per round (all peers in flight, each slow peer closed once) |"
        f" {', '.join(f'{s:.1f} s' for s in att['ramp_seconds'])} |",
        f"| slow handshakes closed by the node: mean / max hold |"
        f" {att['slow_hold_mean_s'] or 0:.2f} s / {att['slow_hold_max_s'] or 0:.2f} s |",
        f"| attacker errors (whole run) | {att['errors'] or 'none'} |",
        "",
        "| process | phase | CPU % (of one core) | busiest threads | RSS MiB (max) | fds (max) |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    rows = [("node", "idle"), ("node", "flood"), ("attacker", "flood")]
    rows += [("department (bench)", "idle"), ("department (bench)", "flood")]
    for who, phase in rows:
        w = results["processes"][f"{who}_{phase}"]
        lines.append(
            f"| {who} | {phase} | {w['cpu_percent']:.0f} | {_threads(w)} |"
            f" {w['rss_mib_max']:.0f} | {w['fds_max']:,} |"
        )
    metrics = results["metrics"]
    if metrics["after"]["handshake_metric_present"]:
        series = metrics["handshake_failures_added"] or "0"
        handshake = f"`bidui_tls_handshake_failures_total` added during the run: {series}"
    else:
        handshake = (
            "`bidui_tls_handshake_failures_total` is **absent** from the node's /metrics"
            " (not wired into `bidui provider serve` yet)"
        )
    log = results["serve_log"]
    summary = log["summaries"][-1] if log["summaries"] else "none"
    lines += [
        "",
        f"- {handshake}.",
        f"- The node's output grew by {log.get('bytes', 0):,} bytes during the floods"
        f" ({log.get('lines', 0):,} lines, of which {log.get('grpc_handshake_lines', 0):,} grpc"
        f" core handshake reports); its last refused-handshake summary: {summary}",
        f"- Audit records added during the flood, by requester|action|mode|outcome:"
        f" {aud['by_kind'] or 'none'}; not the department's comparisons:"
        f" {aud['unexpected'] or 'none'}.",
    ]
    return "\n".join(lines)


def _attacker_window(window: dict[str, Any]) -> list[str]:
    """The attacker's counts over the flood measurement, or why there are none: a flood phase
    shorter than two of its report intervals (a quick run with a short ``--seconds``)."""
    if window.get("samples", 0) < 2:
        return [
            "| attacker reports during the measurement | fewer than 2 in every round: the flood"
            " phase was too short to count (use more --seconds) |"
        ]
    return [
        f"| cert-less TLS peers open or in flight (min) | {window['tls_in_flight_mean']:,.0f}"
        f" ({window['tls_in_flight_min']:,}) |",
        f"| of which handshake done on the client side, awaiting the node's refusal |"
        f" {window['tls_held_mean']:,.0f} |",
        f"| slow-handshake peers open (min) | {window['slow_open_mean']:.0f}"
        f" ({window['slow_open_min']}) |",
        f"| cert-less handshakes attempted / refused by the node per s |"
        f" {window['tls_attempts_per_s']:,.0f} / {window['tls_refused_per_s']:,.0f} |",
    ]
