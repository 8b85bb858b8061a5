"""The node's store for the tests that use it: each such test runs once on SQLite and once on
PostgreSQL (skipped with a message where PostgreSQL is not reachable), on a fresh database that
``engine`` migrates to the newest revision."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from provider_node.store.engine import make_engine, migrate, session_factory
from tests.postgres import fresh_schema_url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: ``audit.db`` in tmp_path (where a default configuration there looks),
    or a PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    with fresh_schema_url() as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)
