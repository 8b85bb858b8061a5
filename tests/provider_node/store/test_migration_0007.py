"""Migration 0007 on SQLite and PostgreSQL: applications recorded before it keep exact deadlines
(provisional false); it adds exactly the columns the model describes, and going back drops them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, Table, insert, inspect, select

from provider_node.store.models import Base
from tests.provider_node.store.conftest import AlembicStep

NOW = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
TABLES = ("applications", "discrepancy_reports")


def _ours(item: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    table = item if type_ == "table" else getattr(item, "table", None)
    return getattr(table, "name", None) in TABLES


def test_0007_keeps_earlier_deadlines_exact_and_goes_back(
    bare_engine: Engine, alembic: AlembicStep
) -> None:
    alembic(bare_engine, "upgrade", "0006_certificate_keys")
    with bare_engine.begin() as connection:
        applications = Table("applications", MetaData(), autoload_with=connection)
        connection.execute(
            insert(applications).values(
                id="00000000-0000-4000-8000-000000000001", department="luzhou-tax",
                resource_id="residents", comparison_keys=["id_number"], modes=["hashed"],
                duty="duty", items_per_day=10, valid_until=dt.date(2026, 12, 31),
                submitted_at=NOW, decision_deadline=dt.date(2026, 3, 9), status="pending",
            )
        )  # fmt: skip
    alembic(bare_engine, "upgrade", "0007_provisional_deadlines")
    with bare_engine.connect() as connection:
        applications = Table("applications", MetaData(), autoload_with=connection)
        (row,) = connection.execute(select(applications)).mappings()
        assert row["deadline_provisional"] is False
        context = MigrationContext.configure(connection, opts={"include_object": _ours})
        assert compare_metadata(context, Base.metadata) == []
    alembic(bare_engine, "downgrade", "0006_certificate_keys")
    with bare_engine.connect() as connection:
        columns = {c["name"] for c in inspect(connection).get_columns("applications")}
        assert "deadline_provisional" not in columns
        reports = {c["name"] for c in inspect(connection).get_columns("discrepancy_reports")}
        assert "deadlines_provisional" not in reports
