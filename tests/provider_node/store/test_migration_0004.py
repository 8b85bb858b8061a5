"""Migration 0004 on SQLite and PostgreSQL: it creates exactly the discrepancy_reports table the
model describes, and going back drops it and nothing of the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select

import provider_node.store.engine
from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.store.engine import session_factory
from provider_node.store.models import AuditRecord, Base

TABLE = "discrepancy_reports"


def _only_reports(item: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    table = item if type_ == "table" else getattr(item, "table", None)
    return getattr(table, "name", None) == TABLE


def test_0004_creates_what_the_model_describes_and_goes_back(engine: Engine) -> None:
    with engine.connect() as connection:
        # 0004 and every later revision (to 0007_provisional_deadlines) applied.
        assert (
            MigrationContext.configure(connection).get_current_revision()
            == "0007_provisional_deadlines"
        )
        context = MigrationContext.configure(connection, opts={"include_object": _only_reports})
        assert compare_metadata(context, Base.metadata) == []
    AuditLog(session_factory(engine)).append(
        AuditEntry(action="comparison", outcome="answered", status_code="OK", requester="d")
    )

    config = Config()
    migrations = Path(provider_node.store.engine.__file__).resolve().parent / "migrations"
    config.set_main_option("script_location", str(migrations))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003_audit_serial_grant")
    with engine.connect() as connection:
        assert TABLE not in inspect(connection).get_table_names()
        assert connection.scalar(select(func.count()).select_from(AuditRecord)) == 1
