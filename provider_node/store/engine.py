"""The node's SQLAlchemy store: engines, sessions, timeouts and schema migrations.

SQLite (a file next to the node's configuration) is the default; PostgreSQL through psycopg 3 is
the production store. Both behave the same for the audit log (tables in
``provider_node.store.models``):
writers serialise on the chain head: ``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE``
on SQLite (emitted by the engine events installed in ``make_engine``); readers take a consistent
snapshot that does not block writers (``snapshot_options``, ``read_only_session``); every wait on
the store is bounded (``StoreTimeouts``, ``bound_statements``).

The schema is created and upgraded only by the Alembic migrations shipped in
``provider_node/store/migrations`` (``migrate(engine)``); no ``alembic.ini`` is needed at run time.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from provider_node.config.models import StoreTimeouts

__all__ = [
    "SQLITE_BEGIN_OPTION",
    "StoreTimeouts",
    "bound_statements",
    "make_engine",
    "migrate",
    "read_only_session",
    "session_factory",
    "snapshot_options",
]

#: Execution option read by the SQLite ``begin`` hook: "IMMEDIATE" (default) or "DEFERRED".
SQLITE_BEGIN_OPTION = "bidui_sqlite_begin"

# Every wait on the store is bounded, so a locked or hung store costs a requester seconds, not
# minutes: a writer waits at most this long for SQLite's lock (the audit append retries a few
# times on top), PostgreSQL statements and lock waits are cancelled by the server, and a
# connection that cannot be made or taken from the pool fails. A server frozen outright (SIGSTOP)
# cancels nothing: ``store_gate`` bounds the wait on the node's side.


_timeouts: weakref.WeakKeyDictionary[Engine, StoreTimeouts] = weakref.WeakKeyDictionary()
_MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def make_engine(
    url: str, timeouts: StoreTimeouts = StoreTimeouts(), *, pool_size: int = 5
) -> Engine:
    """An engine for the node's store; ``pool_size`` connections kept open (the store gate's
    slots, so work given a slot never waits for a connection), 10 more opened when needed.

    SQLite: WAL journal, ``synchronous=FULL`` (a committed audit record survives a crash or power
    loss), a busy timeout, foreign keys, and every transaction opened with ``BEGIN IMMEDIATE``
    unless the connection carries the execution option ``SQLITE_BEGIN_OPTION="DEFERRED"``.
    PostgreSQL: psycopg 3 (``postgresql://`` is taken to mean ``postgresql+psycopg://``), a connect
    timeout and pre-ping so a restarted server is noticed. Statement parameters are never put in
    error messages or logs (``hide_parameters``).
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = _make_sqlite_engine(url, timeouts, pool_size)
        _timeouts[engine] = timeouts
        return engine
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        # Options in the URL (a search_path, say) are kept: a keyword would replace them.
        given = parsed.query.get("options")
        given = " ".join(given) if isinstance(given, tuple) else given
        bounds = (
            f"-c lock_timeout={round(timeouts.lock_s * 1000)} "
            "-c idle_in_transaction_session_timeout=30000"
        )
        connect_args.update(
            connect_timeout=max(1, round(timeouts.connect_s)),
            options=f"{given} {bounds}" if given else bounds,
            # A peer that stops acknowledging (network gone) is noticed within seconds.
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            tcp_user_timeout=10_000,
        )
    engine = create_engine(
        parsed,
        hide_parameters=True,
        pool_pre_ping=True,
        pool_timeout=timeouts.pool_s,
        pool_size=pool_size,
        connect_args=connect_args,
    )
    _timeouts[engine] = timeouts
    return engine


def _make_sqlite_engine(url: str, timeouts: StoreTimeouts, pool_size: int) -> Engine:
    parsed = make_url(url)
    in_memory = parsed.database in (None, "", ":memory:")
    if not in_memory and parsed.database:
        _owner_only(Path(parsed.database))
    engine = create_engine(
        parsed,
        hide_parameters=True,
        connect_args={"check_same_thread": False, "timeout": timeouts.sqlite_busy_s},
        # One shared connection for an in-memory database, or each thread would see its own.
        **({"poolclass": StaticPool} if in_memory else {"pool_size": pool_size}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so we can emit our own BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={round(timeouts.sqlite_busy_s * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: two writers never both read the same chain head
        # and then fail to upgrade their locks. Readers ask for DEFERRED to get a WAL snapshot
        # without blocking writers.
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        if mode not in ("IMMEDIATE", "DEFERRED"):
            raise ValueError(f"{SQLITE_BEGIN_OPTION} must be IMMEDIATE or DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _owner_only(database: Path) -> None:
    """The audit database readable by the node's user only (mode 0600): it names departments and
    their purposes. SQLite gives its -wal and -shm files the database file's mode."""
    if not database.exists():
        database.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        # Tightened by its owner only: an officer verifying a copy is not refused.
        if path.exists() and path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
            path.chmod(0o600)


def snapshot_options(engine: Engine | Connection) -> dict[str, Any]:
    """Execution options for a consistent read-only snapshot that does not block writers."""
    if engine.dialect.name == "sqlite":
        return {SQLITE_BEGIN_OPTION: "DEFERRED"}
    if engine.dialect.name == "postgresql":
        return {"isolation_level": "REPEATABLE READ"}
    return {}


def bound_statements(session: Session) -> None:
    """On PostgreSQL, cancel any statement of this transaction that runs longer than a request
    may wait (the audit append, grants and allowances on the request path)."""
    connection = session.connection()
    _limit_statements(connection, _timeouts.get(connection.engine, StoreTimeouts()).statement_s)


def _limit_statements(connection: Connection, seconds: float) -> None:
    """``SET LOCAL statement_timeout`` for the transaction (PostgreSQL; SQLite has none)."""
    if connection.dialect.name == "postgresql":
        milliseconds = max(1, round(seconds * 1000))
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")


@contextmanager
def read_only_session(
    sessions: sessionmaker[Session], *, statement_timeout: float | None = None
) -> Iterator[Session]:
    """A session that reads one consistent snapshot without blocking writers; it must not write.

    On SQLite its transaction is ``BEGIN DEFERRED``: a reader in WAL mode neither takes the write
    lock nor waits for a writer. On PostgreSQL (REPEATABLE READ) ``statement_timeout`` seconds, if
    given, cancel any statement that runs longer, waiting for a lock included.
    """
    with sessions() as session:
        connection = session.connection(execution_options=snapshot_options(session.get_bind()))
        if statement_timeout is not None:
            _limit_statements(connection, statement_timeout)
        yield session


_factories: weakref.WeakKeyDictionary[Engine, sessionmaker[Session]] = weakref.WeakKeyDictionary()
_factories_lock = threading.Lock()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """The one sessionmaker of ``engine`` (created on first use). Sessions are per thread."""
    with _factories_lock:
        factory = _factories.get(engine)
        if factory is None:
            factory = sessionmaker(bind=engine, expire_on_commit=False)
            _factories[engine] = factory
        return factory


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision with the migrations shipped in this package.

    Runs inside one transaction. On PostgreSQL an advisory lock keeps two nodes started at the same
    time from migrating concurrently; on SQLite ``BEGIN IMMEDIATE`` does the same.
    """
    # Imported here: Alembic is only needed when the schema is touched.
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(742133011)")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
