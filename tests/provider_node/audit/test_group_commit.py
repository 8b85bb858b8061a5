"""Group commit on SQLite and PostgreSQL: records of requests arriving together share one
transaction, each caller returns only once its own record is committed, a refusal in one undoes
only its own change, and a store failure reaches every caller of the group."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from provider_node.audit.log import AuditLog, AuditUnavailableError
from provider_node.audit.records import AuditEntry
from provider_node.core import errors
from provider_node.store.engine import session_factory

# ``database_url`` (SQLite, then PostgreSQL) and ``engine`` (migrated) come from conftest.py.

THREADS = 16
EACH = 15


def commits(engine: Engine) -> Callable[[], int]:
    """How many transactions the engine has committed since."""
    count = [0]

    def counted(_connection: object) -> None:
        count[0] += 1

    event.listen(engine, "commit", counted)
    return lambda: count[0]


def together(work: Callable[[int], None], threads: int = THREADS) -> list[BaseException]:
    """``work(n)`` on ``threads`` threads released at once; the exceptions they raised."""
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def run(number: int) -> None:
        start.wait()
        try:
            work(number)
        except BaseException as failure:
            failures.append(failure)

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return failures


def record(number: int, **fields: str | int) -> AuditEntry:
    return AuditEntry.answered("comparison", requester=f"dept-{number % 4}", **fields)  # type: ignore[arg-type]


def on_record(log: AuditLog) -> list[str]:
    ordered = text("SELECT request_id FROM audit_record ORDER BY seq")
    return log.read(lambda session: [row[0] for row in session.execute(ordered)])


def test_records_arriving_together_share_transactions(engine: Engine) -> None:
    log = AuditLog(session_factory(engine))
    counted = commits(engine)

    def append(number: int) -> None:
        for n in range(EACH):
            entry = record(number, request_id=f"{number}-{n}")
            log.append_grouped(lambda _, entry=entry: entry)  # type: ignore[misc]
            # Returned only once committed: a fresh session sees it.
            assert entry.request_id in on_record(log)

    assert together(append) == []
    report = log.verify()
    assert report.ok and report.records_checked == THREADS * EACH
    assert sorted(on_record(log)) == sorted(f"{t}-{n}" for t in range(THREADS) for n in range(EACH))
    assert counted() < THREADS * EACH  # groups formed (the reads above commit nothing)


def test_one_transaction_per_record_when_the_group_is_one(engine: Engine) -> None:
    log = AuditLog(session_factory(engine), group_commit_max_records=1)
    counted = commits(engine)
    assert together(lambda n: log.append_grouped(lambda _: record(n))) == []
    assert counted() == THREADS
    assert log.verify().records_checked == THREADS


def test_a_refusal_undoes_only_its_own_change(engine: Engine) -> None:
    log = AuditLog(session_factory(engine))
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE charged (department TEXT)"))

    def act(number: int) -> Callable[[Session], AuditEntry]:
        def charge(session: Session) -> AuditEntry:
            session.execute(text("INSERT INTO charged VALUES (:d)"), {"d": f"dept-{number}"})
            if number % 3 == 0:  # its allowance is spent: refused after a change
                raise errors.NotGrantedError(f"dept-{number} has no items left")
            return record(number, request_id=str(number))

        return charge

    refused: dict[int, str] = {}

    def append(number: int) -> None:
        try:
            log.append_grouped(act(number))
        except errors.NotGrantedError as refusal:
            refused[number] = str(refusal)

    assert together(append) == []
    expected_refused = {n for n in range(THREADS) if n % 3 == 0}
    assert refused == {n: f"dept-{n} has no items left" for n in expected_refused}
    kept = set(range(THREADS)) - expected_refused
    assert sorted(map(int, on_record(log))) == sorted(kept)
    with engine.connect() as connection:
        charged = {row[0] for row in connection.execute(text("SELECT department FROM charged"))}
    assert charged == {f"dept-{n}" for n in kept}
    assert log.verify().ok


def test_a_store_failure_reaches_every_caller_and_commits_nothing(engine: Engine) -> None:
    log = AuditLog(session_factory(engine))
    log.append_grouped(lambda _: record(0, request_id="before"))
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_record RENAME TO audit_record_away"))
    failures = together(lambda n: log.append_grouped(lambda _: record(n)), threads=8)
    assert len(failures) == 8
    assert all(isinstance(f, AuditUnavailableError) for f in failures), failures
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_record_away RENAME TO audit_record"))
    assert on_record(log) == ["before"]
    log.append_grouped(lambda _: record(1, request_id="after"))
    assert on_record(log) == ["before", "after"] and log.verify().ok


@pytest.mark.parametrize("size", [0, -1])
def test_a_group_holds_at_least_one_record(engine: Engine, size: int) -> None:
    with pytest.raises(ValueError, match="at least one"):
        AuditLog(session_factory(engine), group_commit_max_records=size)
