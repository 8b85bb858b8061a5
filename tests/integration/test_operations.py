"""What the node operator and the compliance officer rely on: health, reflection, metrics, and a
``bidui provider serve`` process that stops gracefully on SIGTERM and summarises refused TLS
handshakes in its operations log (``bidui.operations``), never a line per attempt."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import NodeUnderTest, build_node_dir


def test_health_and_reflection(node: NodeUnderTest) -> None:
    channel = node.channel()
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "bidui.v1.ComparisonService", "bidui.v1.CatalogService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"bidui.v1.ComparisonService", "bidui.v1.CatalogService"} <= names
    channel.close()


def test_metrics_exposition_counts_comparisons_refusals_and_indexes(node: NodeUnderTest) -> None:
    with node.client() as client:
        client.compare(
            "residents",
            [{"id_number": node.residents[0][0]}, {"id_number": node.absent[0][0]}],
            key="id_number",
            mode="hashed",
            purpose="metrics test",
        )
    url = f"http://127.0.0.1:{node.started.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    comparisons = families["bidui_comparisons"]
    answered = [
        s
        for s in comparisons.samples
        if s.name == "bidui_comparisons_total"
        and s.labels
        == {
            "requester": "luzhou-civil-affairs",
            "resource": "residents",
            "mode": "hashed",
            "outcome": "answered",
        }
    ]
    assert answered and answered[0].value >= 1
    assert any(s.value >= 1 for s in families["bidui_comparison_matches"].samples)
    index = {
        (s.labels["key"], s.labels["mode"]): s.value
        for s in families["bidui_index_records"].samples
    }
    assert index[("id_number", "blinded")] == 300
    ages = [s.value for s in families["bidui_index_age_seconds"].samples]
    assert ages and all(0 <= age < 3600 for age in ages)
    durations = [
        s for s in families["bidui_rpc_duration_seconds"].samples if s.name.endswith("_count")
    ]
    assert any(s.labels["method"] == "CompareHashed" and s.value >= 1 for s in durations)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connect_without_certificate(port: int, ca: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.recv(1)  # TLS 1.3: the refusal arrives after the client's side of the handshake


def test_serve_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    config_path, _, _ = build_node_dir(tmp_path)
    port, metrics_port = _free_port(), _free_port()
    bidui = Path(sys.executable).with_name("bidui")
    process = subprocess.Popen(
        [
            str(bidui),
            "provider",
            "serve",
            "--config",
            str(config_path),
            "--listen",
            f"127.0.0.1:{port}",
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        pki = tmp_path / "pki"
        creds = grpc.ssl_channel_credentials(
            (pki / "ca.pem").read_bytes(),
            (pki / "clients" / "luzhou-civil-affairs.key").read_bytes(),
            (pki / "clients" / "luzhou-civil-affairs.pem").read_bytes(),
        )
        with grpc.secure_channel(f"localhost:{port}", creds) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = health.Check(health_pb2.HealthCheckRequest(), timeout=20, wait_for_ready=True)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        for _ in range(3):
            _connect_without_certificate(port, pki / "ca.pem")
        time.sleep(0.5)  # grpc's core logs each refusal on its own thread
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            exposition = response.read().decode()
        refused = [
            sample.value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples
            if sample.name == "bidui_tls_handshake_failures_total"
            and sample.labels == {"reason": "no_certificate"}
        ]
        assert refused and refused[0] >= 3, exposition
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "received SIGTERM; stopping gracefully" in stderr
    assert "stopped" in stderr
    assert "Traceback" not in stderr
    summaries = [line for line in stderr.splitlines() if "TLS handshakes refused" in line]
    assert len(summaries) == 1, stderr
    assert "bidui.operations" in summaries[0] and "no_certificate" in summaries[0]
    assert "Handshake failed" not in stderr  # grpc's own lines are counted, not passed on


def test_provider_load_is_audited(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bidui_cli.main import main
    from provider_node.setup.bootstrap import init_node
    from provider_node.setup.sample_data import add_residents, synthetic_residents

    init = init_node(tmp_path)
    add_residents(
        init.source_db, [*synthetic_residents(50, seed=3), ("not an id", "x", "2000-01-01")]
    )
    runner = CliRunner()
    loaded = runner.invoke(main, ["provider", "load", "--config", str(init.config_path)])
    assert loaded.exit_code == 0, loaded.output
    exported = runner.invoke(main, ["audit", "export", "--config", str(init.config_path)])
    assert exported.exit_code == 0, exported.output
    import json

    (record,) = [json.loads(line) for line in exported.stdout.splitlines() if line.startswith("{")]
    assert (record["action"], record["resource_id"], record["item_count"]) == (
        "index_load",
        "residents",
        51,
    )
    assert "1 invalid rows" in record["reason"]
    assert "not an id" not in exported.stdout  # counts and reasons, never a source value
