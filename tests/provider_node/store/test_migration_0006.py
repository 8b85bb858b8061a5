"""Migration 0006 on SQLite and PostgreSQL: certificates recorded before it keep their rows with
no key recorded; it adds exactly the column and index the model describes, and going back drops
them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, Table, insert, inspect, select

from provider_node.store.models import Base
from tests.provider_node.store.conftest import AlembicStep

NOW = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)


def _certificates_only(
    item: Any, name: str | None, type_: str, reflected: bool, other: Any
) -> bool:
    table = item if type_ == "table" else getattr(item, "table", None)
    return getattr(table, "name", None) == "certificates"


def test_0006_keeps_earlier_certificates_without_a_key_and_goes_back(
    bare_engine: Engine, alembic: AlembicStep
) -> None:
    alembic(bare_engine, "upgrade", "0005_answers")
    with bare_engine.begin() as connection:
        certificates = Table("certificates", MetaData(), autoload_with=connection)
        connection.execute(
            insert(certificates).values(
                serial="1f",
                department="luzhou-tax",
                fingerprint_sha256="ab" * 32,
                not_before=NOW,
                not_after=NOW + dt.timedelta(days=90),
                issued_at=NOW,
            )
        )
    alembic(bare_engine, "upgrade", "0006_certificate_keys")
    with bare_engine.connect() as connection:
        certificates = Table("certificates", MetaData(), autoload_with=connection)
        (row,) = connection.execute(select(certificates)).mappings()
        assert row["serial"] == "1f" and row["key_sha256"] is None
        context = MigrationContext.configure(
            connection, opts={"include_object": _certificates_only}
        )
        assert compare_metadata(context, Base.metadata) == []
    alembic(bare_engine, "downgrade", "0005_answers")
    with bare_engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("certificates")}
        assert "key_sha256" not in columns and "serial" in columns
