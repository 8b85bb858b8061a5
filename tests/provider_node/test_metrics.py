"""provider_node.metrics: names, bounded labels, index age at scrape time, the real endpoint."""

from __future__ import annotations

import datetime as _dt
import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from provider_node.metrics import (
    RPC_DURATION_BUCKETS,
    MetricsServer,
    NodeMetrics,
    start_metrics_server,
)

BUILT = _dt.datetime(2026, 1, 1, 12, 0, tzinfo=_dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = BUILT + _dt.timedelta(seconds=90)

    def __call__(self) -> _dt.datetime:
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def served(registry: CollectorRegistry) -> Iterator[tuple[MetricsServer, int]]:
    server, port = start_metrics_server("127.0.0.1:0", registry)
    try:
        yield server, port
    finally:
        server.shutdown()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def test_scraped_over_loopback(
    registry: CollectorRegistry, served: tuple[MetricsServer, int]
) -> None:
    clock = Clock()
    metrics = NodeMetrics(registry, known_resources=["residents"], clock=clock)
    _, port = served
    assert port > 0
    metrics.record_comparison(
        "luzhou-civil-affairs", "residents", "blinded", "answered", items=10, matches=4
    )
    metrics.record_comparison(
        "luzhou-civil-affairs", "residents", "blinded", "answered", items=5, matches=1
    )
    metrics.record_refusal("not_shared")
    metrics.record_audit_failure()
    metrics.observe_rpc("CompareHashed", 0.003)
    metrics.set_index("residents", "id_number", "hashed", 200, BUILT)

    samples = scrape(port)
    who = {"requester": "luzhou-civil-affairs", "resource": "residents", "mode": "blinded"}
    answered = labels(**who, outcome="answered")
    assert samples[("bidui_comparisons_total", answered)] == 2
    assert samples[("bidui_comparison_items_total", answered)] == 15
    assert samples[("bidui_comparison_matches_total", labels(**who))] == 5
    assert samples[("bidui_refusals_total", labels(reason="not_shared"))] == 1
    assert samples[("bidui_audit_failures_total", ())] == 1
    method = labels(method="CompareHashed")
    assert samples[("bidui_rpc_duration_seconds_count", method)] == 1
    assert (
        samples[("bidui_rpc_duration_seconds_bucket", labels(method="CompareHashed", le="0.005"))]
        == 1
    )
    assert (
        samples[("bidui_rpc_duration_seconds_bucket", labels(method="CompareHashed", le="0.001"))]
        == 0
    )
    index = labels(resource="residents", key="id_number", mode="hashed")
    assert samples[("bidui_index_records", index)] == 200
    assert samples[("bidui_index_age_seconds", index)] == 90

    # The age is computed at scrape time.
    clock.now += _dt.timedelta(hours=1)
    assert scrape(port)[("bidui_index_age_seconds", index)] == 3690


def test_label_values_stay_bounded(registry: CollectorRegistry) -> None:
    metrics = NodeMetrics(registry, known_resources=["residents"])
    metrics.record_comparison("dept", "no-such-resource-from-the-network", "quantum", "weird")
    metrics.record_refusal("a reason nobody listed")
    value = registry.get_sample_value(
        "bidui_comparisons_total",
        {"requester": "dept", "resource": "unknown", "mode": "other", "outcome": "other"},
    )
    assert value == 1
    assert registry.get_sample_value("bidui_refusals_total", {"reason": "other"}) == 1


def test_buckets_span_a_millisecond_to_a_minute() -> None:
    assert RPC_DURATION_BUCKETS[0] == 0.001
    assert RPC_DURATION_BUCKETS[-1] == 60.0
    assert list(RPC_DURATION_BUCKETS) == sorted(RPC_DURATION_BUCKETS)


def test_naive_built_at_is_refused(registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        NodeMetrics(registry).set_index("r", "k", "hashed", 1, _dt.datetime(2026, 1, 1))


def test_shutdown_frees_the_port(registry: CollectorRegistry) -> None:
    server, port = start_metrics_server("127.0.0.1:0", registry)
    server.shutdown()
    again, again_port = start_metrics_server(f"127.0.0.1:{port}", registry)
    try:
        assert again_port == port
        assert again.port == port
    finally:
        again.shutdown()


def test_bad_address(registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError):
        start_metrics_server("nowhere", registry)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_loopback(registry: CollectorRegistry) -> None:
    NodeMetrics(registry).record_audit_failure()
    server, port = start_metrics_server("[::1]:0", registry)
    try:
        url = f"http://[::1]:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert b"bidui_audit_failures_total 1.0" in response.read()
    finally:
        server.shutdown()
