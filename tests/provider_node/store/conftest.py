"""What the migration tests share: an empty database, and Alembic's steps run on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

import provider_node.store.engine
from provider_node.store.engine import make_engine

#: ``alembic(engine, "upgrade" | "downgrade", revision)``
AlembicStep = Callable[[Engine, str, str], None]


@pytest.fixture
def bare_engine(database_url: str) -> Iterator[Engine]:
    """An engine on an empty database (no migration run yet)."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def alembic() -> AlembicStep:
    """Run one Alembic command to ``revision`` on an engine, with the node's own migrations."""

    def step(engine: Engine, verb: str, revision: str) -> None:
        config = Config()
        migrations = Path(provider_node.store.engine.__file__).resolve().parent / "migrations"
        config.set_main_option("script_location", str(migrations))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, verb)(config, revision)

    return step
