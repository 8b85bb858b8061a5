"""The PostgreSQL on this machine kind (127.0.0.1:5432, trust auth), for production-store tests.

Each test gets a fresh schema, dropped afterwards; where PostgreSQL is absent the test is skipped
with a message that says so, and the SQLite tests still run.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_SKIP = "PostgreSQL not reachable at 127.0.0.1:5432: production-store tests skipped"


@functools.cache
def postgres_reachable() -> bool:
    probe = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 2})
    try:
        with probe.connect():
            return True
    except OperationalError:
        return False
    finally:
        probe.dispose()


@contextmanager
def fresh_schema_url() -> Iterator[str]:
    """A URL whose search_path is a new, empty schema; skips the test without PostgreSQL."""
    if not postgres_reachable():
        pytest.skip(PG_SKIP)
    schema = f"bidui_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
