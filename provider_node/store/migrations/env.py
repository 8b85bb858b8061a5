"""Alembic environment: runs on the connection handed over by
``provider_node.store.engine.migrate``.

For developers, ``alembic -x url=sqlite:///dev.db upgrade head`` (with ``script_location`` pointing
here) also works: without a connection in ``config.attributes`` one is made from ``-x url=...``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from provider_node.store.engine import make_engine
from provider_node.store.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("give the database with: alembic -x url=DATABASE_URL upgrade head")
    engine = make_engine(url)
    try:
        with engine.begin() as own_connection:
            _run(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
