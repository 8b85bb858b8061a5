"""Migration 0002 on SQLite and PostgreSQL: it upgrades a 0001 database that already holds audit
records without touching them, creates exactly the tables the models describe, and goes back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, MetaData, Table, insert, inspect, select, update

from provider_node.store.models import Base
from tests.provider_node.store.conftest import AlembicStep

REVISION_0001 = "0001_audit_log"
REVISION_0002 = "0002_grants_quotas_certificates"
NEW_TABLES = {"applications", "grants", "quota_usage", "certificates"}
# Columns later revisions add to these tables (0005: answers; 0006: key_sha256; 0007: provisional).
LATER_COLUMNS = {
    ("applications", "answers"),
    ("grants", "answers"),
    ("certificates", "key_sha256"),
    ("applications", "deadline_provisional"),
}
LATER_INDEXES = {"ix_certificates_key_sha256"}
T0 = datetime(2025, 9, 29, 2, 0, tzinfo=UTC)


def _audit_rows_0001(count: int) -> list[dict[str, Any]]:
    """Records with exactly the columns of revision 0001, as a 0001 node wrote them."""
    rows = []
    previous = "0" * 64
    for seq in range(1, count + 1):
        record_hash = f"{seq:064x}"
        rows.append(
            {
                "seq": seq,
                "comparison_id": f"00000000-0000-4000-8000-{seq:012d}",
                "occurred_at": T0 + timedelta(minutes=seq),
                "action": "comparison",
                "requester": "luzhou-civil-affairs",
                "cert_fingerprint": "ab" * 32,
                "resource_id": "residents",
                "comparison_key": "id_number",
                "mode": "blinded",
                "purpose": "低保資格複核",
                "item_count": 100 * seq,
                "match_count": seq,
                "outcome": "answered",
                "status_code": "OK",
                "reason": "",
                "request_id": f"req-{seq}",
                "duration_ms": 1.5 * seq,
                "payload_sha256": "cd" * 32,
                "prev_hash": previous,
                "record_hash": record_hash,
            }
        )
        previous = record_hash
    return rows


def _snapshot(connection: Connection) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    tables = MetaData()
    record = Table("audit_record", tables, autoload_with=connection)
    head = Table("audit_chain_head", tables, autoload_with=connection)
    return (
        [tuple(row) for row in connection.execute(select(record).order_by(record.c.seq))],
        [tuple(row) for row in connection.execute(select(head))],
    )


def test_0002_upgrades_a_0001_database_without_touching_its_audit_records(
    bare_engine: Engine, alembic: AlembicStep
) -> None:
    alembic(bare_engine, "upgrade", REVISION_0001)
    rows = _audit_rows_0001(5)
    with bare_engine.begin() as connection:
        tables = MetaData()
        record = Table("audit_record", tables, autoload_with=connection)
        head = Table("audit_chain_head", tables, autoload_with=connection)
        connection.execute(insert(record), rows)
        connection.execute(update(head).values(last_seq=5, last_hash=rows[-1]["record_hash"]))
        before = _snapshot(connection)
        columns_before = {c["name"] for c in inspect(connection).get_columns("audit_record")}

    alembic(bare_engine, "upgrade", REVISION_0002)

    with bare_engine.connect() as connection:
        assert _snapshot(connection) == before
        assert len(before[0]) == 5
        names = set(inspect(connection).get_table_names())
        assert names >= NEW_TABLES
        audit_columns = {c["name"] for c in inspect(connection).get_columns("audit_record")}
        assert audit_columns == columns_before
        assert MigrationContext.configure(connection).get_current_revision() == REVISION_0002

    alembic(bare_engine, "downgrade", REVISION_0001)
    with bare_engine.connect() as connection:
        assert _snapshot(connection) == before
        assert not NEW_TABLES & set(inspect(connection).get_table_names())


def _only_new_tables(
    item: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    table = item if type_ == "table" else getattr(item, "table", None)
    table_name = getattr(table, "name", None)
    if type_ == "column" and (table_name, name) in LATER_COLUMNS:
        return False
    if type_ == "index" and name in LATER_INDEXES:
        return False
    return table_name in NEW_TABLES


def test_0002_creates_what_the_models_describe(bare_engine: Engine, alembic: AlembicStep) -> None:
    alembic(bare_engine, "upgrade", REVISION_0001)
    with bare_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": _only_new_tables})
        missing = compare_metadata(context, Base.metadata)
    assert {d[1].name for d in missing if d[0] == "add_table"} == NEW_TABLES  # the filter works

    alembic(bare_engine, "upgrade", REVISION_0002)
    with bare_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": _only_new_tables})
        assert compare_metadata(context, Base.metadata) == []
