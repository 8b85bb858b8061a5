"""Fault tests: real nodes, real TLS, a throwaway PostgreSQL per module, broken on purpose."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.node_process import NodeProcess
from tests.faults.throwaway_postgres import ThrowawayPostgres, throwaway_postgres
from tests.integration.conftest import NodeUnderTest, start


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "faults: an operator's worst day on real parts (tests/faults; about two minutes in all; "
        "deselect with -m 'not faults')",
    )


@pytest.fixture(scope="module")
def postgres() -> Iterator[ThrowawayPostgres]:
    """This module's own PostgreSQL server, stopped and removed afterwards."""
    with throwaway_postgres() as server:
        yield server


@pytest.fixture
def node(postgres: ThrowawayPostgres, tmp_path: Path) -> Iterator[NodeUnderTest]:
    """A node in this process (tests/integration's), its audit log in a fresh database of this
    module's PostgreSQL; the server is running again before the node stops."""
    running = start(tmp_path, audit_url=postgres.create_database(f"node_{uuid.uuid4().hex[:12]}"))
    yield running
    postgres.ensure_running()  # whatever the test did to it
    running.started.stop(grace=1.0)


@pytest.fixture
def processes() -> Iterator[list[NodeProcess]]:
    """The ``bidui provider serve`` processes a test starts: none is left running after it."""
    started: list[NodeProcess] = []
    yield started
    for process in started:
        process.close()
