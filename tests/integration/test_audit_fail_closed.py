"""The audit record is committed before the answer: no store, no answer (fail closed).

Also the same comparison path with the audit log on PostgreSQL, and the compliance officer's
``bidui audit verify`` catching edits, deletions and insertions in the node's real database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from bidui.v1 import comparison_pb2
from bidui_cli.main import main
from client_sdk import ServiceUnavailableError
from tests.integration.conftest import NodeUnderTest, start
from tests.postgres import fresh_schema_url

PURPOSE = "integration test: audit"


def _metric(node: NodeUnderTest, name: str) -> float:
    import urllib.request

    url = f"http://127.0.0.1:{node.started.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        families = text_string_to_metric_families(response.read().decode())
    return sum(
        sample.value for family in families for sample in family.samples if sample.name == name
    )


@pytest.fixture
def own_node(tmp_path: Path) -> Iterator[NodeUnderTest]:
    running = start(tmp_path)
    yield running
    running.started.stop(grace=0.5)


def test_audit_store_unwritable_means_unavailable_and_no_result(own_node: NodeUnderTest) -> None:
    node = own_node
    rows = [{"id_number": r[0]} for r in node.residents[:5]]
    with node.client() as client:
        assert (
            client.compare("residents", rows, key="id_number", purpose=PURPOSE).matched_count == 5
        )
    # Someone removes the audit table underneath the running node.
    with sqlite3.connect(node.directory / "audit.db") as db:
        db.execute("DROP TABLE audit_record")
    db.close()
    failures_before = _metric(node, "bidui_audit_failures_total")
    channel = node.channel()
    _, compare = node.stubs(channel)
    header = comparison_pb2.ComparisonHeader(
        resource_id="residents", comparison_key="id_number", purpose=PURPOSE, key_version=1
    )
    with pytest.raises(grpc.RpcError) as caught:
        compare.CompareHashed(comparison_pb2.CompareHashedRequest(header=header, tags=[bytes(32)]))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert "audit" in caught.value.details()  # type: ignore[attr-defined]
    channel.close()
    # The SDK retries within its deadline, then reports the node unavailable: no partial result.
    with (
        pytest.raises(ServiceUnavailableError),
        type(node.client())(node.target, node.credentials(), timeout=3.0, retries=1) as client,
    ):
        client.compare("residents", rows, key="id_number", mode="blinded", purpose=PURPOSE)
    assert _metric(node, "bidui_audit_failures_total") > failures_before


def test_audit_verify_cli_catches_edit_delete_and_insert(own_node: NodeUnderTest) -> None:
    node = own_node
    with node.client() as client:
        for mode in ("hashed", "blinded", "hashed"):
            client.compare(
                "residents",
                [{"id_number": r[0]} for r in node.residents[:3]],
                key="id_number",
                mode=mode,  # type: ignore[arg-type]
                purpose=PURPOSE,
            )
    runner = CliRunner()
    config = str(node.config_path)
    ok = runner.invoke(main, ["audit", "verify", "--config", config])
    assert ok.exit_code == 0, ok.output
    # The catalog as the node opened with it, one key fetch (the SDK keeps the key for its
    # session), three comparisons, and the blinded one's opening record.
    assert "audit chain OK: 6 records" in ok.output
    node.started.stop(grace=0.5)  # the officer checks the database at rest
    db_path = node.directory / "audit.db"
    backup = db_path.read_bytes()

    def tamper(sql: str) -> str:
        db_path.write_bytes(backup)
        for suffix in ("-wal", "-shm"):
            Path(str(db_path) + suffix).unlink(missing_ok=True)
        with sqlite3.connect(db_path) as db:
            db.execute(sql)
        db.close()
        result = runner.invoke(main, ["audit", "verify", "--config", config])
        assert result.exit_code == 1, result.output
        return result.output

    assert "seq 3" in tamper("UPDATE audit_record SET match_count = 0 WHERE seq = 3")
    assert "seq 4" in tamper("DELETE FROM audit_record WHERE seq = 4")
    assert "BROKEN" in tamper("DELETE FROM audit_record WHERE seq = 6")
    inserted = tamper(
        "INSERT INTO audit_record (seq, comparison_id, occurred_at, action, requester, "
        "cert_fingerprint, resource_id, comparison_key, mode, purpose, item_count, match_count, "
        "outcome, status_code, reason, request_id, duration_ms, payload_sha256, prev_hash, "
        "record_hash) SELECT seq + 100, comparison_id || 'x', occurred_at, action, requester, "
        "cert_fingerprint, resource_id, comparison_key, mode, purpose, item_count, match_count, "
        "outcome, status_code, reason, request_id, duration_ms, payload_sha256, prev_hash || 'x', "
        "record_hash || 'x' FROM audit_record WHERE seq = 1"
    )
    assert "BROKEN" in inserted
    # Values no column type can read are a broken chain too, not a crash.
    unreadable = tamper("UPDATE audit_record SET occurred_at = 'not a time' WHERE seq = 4")
    assert "seq 4" in unreadable


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_schema_url() as url:
        yield url


def test_comparisons_audited_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    node = start(tmp_path, audit_url=postgres_url)
    try:
        with node.client() as client:
            for mode in ("hashed", "blinded"):
                result = client.compare(
                    "residents",
                    [{"id_number": r[0]} for r in node.residents[:4]]
                    + [{"id_number": r[0]} for r in node.absent[:2]],
                    key="id_number",
                    mode=mode,  # type: ignore[arg-type]
                    purpose=PURPOSE,
                )
                assert result.matched_count == 4
        report = node.started.opened.audit.verify()
        # The catalog as served, key fetch, hashed, opened, blinded.
        assert report.ok and report.records_checked == 5
    finally:
        node.started.stop(grace=0.5)
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify", "--config", str(node.config_path)])
    assert ok.exit_code == 0, ok.output
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_record SET purpose = 'other' WHERE seq = 3"))
    engine.dispose()
    broken = runner.invoke(main, ["audit", "verify", "--config", str(node.config_path)])
    assert broken.exit_code == 1 and "seq 3" in broken.output
