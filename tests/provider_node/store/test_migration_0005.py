"""Migration 0005 on SQLite and PostgreSQL: applications and grants made before it allow match bits
only; it adds exactly the answers columns the models describe, and going back drops them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, Table, insert, inspect, select

from provider_node.store.models import Base
from tests.provider_node.store.conftest import AlembicStep

TABLES = ("applications", "grants")
DAY = dt.date(2026, 3, 2)
NOW = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)


def _answers_only(item: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    return (type_ == "column" and name == "answers") or (type_ == "table" and name in TABLES)


def test_0005_keeps_earlier_grants_to_match_bits_and_goes_back(
    bare_engine: Engine, alembic: AlembicStep
) -> None:
    alembic(bare_engine, "upgrade", "0004_discrepancy_reports")
    application_id, grant_id = str(uuid.uuid4()), str(uuid.uuid4())
    with bare_engine.begin() as connection:
        tables = MetaData()
        applications = Table("applications", tables, autoload_with=connection)
        grants = Table("grants", tables, autoload_with=connection)
        connection.execute(
            insert(applications).values(
                id=application_id, department="d", resource_id="r", comparison_keys=["k"],
                modes=["hashed"], duty="duty", items_per_day=10, valid_until=DAY,
                submitted_at=NOW, decision_deadline=DAY, status="approved", decided_at=NOW,
            )
        )  # fmt: skip
        connection.execute(
            insert(grants).values(
                id=grant_id, application_id=application_id, department="d", resource_id="r",
                comparison_keys=["k"], modes=["hashed"], items_per_day=10, valid_from=DAY,
                valid_until=DAY,
            )
        )  # fmt: skip

    alembic(bare_engine, "upgrade", "0005_answers")
    with bare_engine.connect() as connection:
        tables = MetaData()
        for name in TABLES:
            table = Table(name, tables, autoload_with=connection)
            assert connection.execute(select(table.c.answers)).scalar_one() == ["match"]
        context = MigrationContext.configure(connection, opts={"include_object": _answers_only})
        assert compare_metadata(context, Base.metadata) == []

    alembic(bare_engine, "downgrade", "0004_discrepancy_reports")
    with bare_engine.connect() as connection:
        for name in TABLES:
            assert "answers" not in {c["name"] for c in inspect(connection).get_columns(name)}
