"""The audit log on SQLite and on PostgreSQL: chaining, tamper detection, concurrency, fail-closed
behaviour, export, and the ``bidui audit`` commands."""

from __future__ import annotations

import io
import itertools
import json
import multiprocessing
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, insert, select, text

from bidui_cli.compliance.audit import audit
from provider_node.audit.log import AuditLog, AuditUnavailableError
from provider_node.audit.records import (
    EXPORT_FIELDS,
    AuditEntry,
    ChainReport,
    compute_record_hash,
    read_export,
    verify_export,
)
from provider_node.store.engine import make_engine, migrate, session_factory
from provider_node.store.models import GENESIS_HASH, AuditRecord

CLOSED_PORT_URL = "postgresql+psycopg://postgres@127.0.0.1:1/test"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


# ``database_url`` (SQLite, then PostgreSQL) and ``engine`` (migrated) come from conftest.py.


class SteppingClock:
    """Deterministic clock: each reading is ``step`` later than the last."""

    def __init__(self, start: datetime = T0, step: timedelta = timedelta(hours=1)) -> None:
        self.next = start
        self.step = step

    def __call__(self) -> datetime:
        now, self.next = self.next, self.next + self.step
        return now


@pytest.fixture
def log(engine: Engine) -> AuditLog:
    return AuditLog(session_factory(engine), clock=SteppingClock())


def entry(number: int = 0, **changes: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "action": "comparison",
        "outcome": "answered",
        "status_code": "OK",
        "requester": "luzhou-civil-affairs",
        "cert_fingerprint": "ab" * 32,
        "resource_id": "residents",
        "comparison_key": "id_number+name",
        "mode": "blinded",
        "purpose": "低保資格複核 / benefit eligibility review",
        "item_count": 100 + number,
        "match_count": number,
        "reason": "",
        "request_id": f"req-{number}",
        "duration_ms": 12.5 + number / 3,
        "payload_sha256": "cd" * 32,
    }
    fields.update(changes)
    return AuditEntry(**fields)


def fill(log: AuditLog, count: int) -> list[str]:
    return [log.append(entry(number)) for number in range(1, count + 1)]


def rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        # Through the table, so times come back as the store's aware UTC datetimes.
        result = connection.execute(select(AuditRecord.__table__).order_by(AuditRecord.seq))
        return [dict(row._mapping) for row in result]


def execute(engine: Engine, *statements: str, **params: Any) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), params)


# ---- appending and verifying ----------------------------------------------------------------


def test_append_chains_records_and_verifies(log: AuditLog, engine: Engine) -> None:
    ids = fill(log, 5)
    assert len(set(ids)) == 5
    assert all(uuid.UUID(i).version == 4 for i in ids)
    stored = rows(engine)
    assert [r["seq"] for r in stored] == [1, 2, 3, 4, 5]
    assert [r["comparison_id"] for r in stored] == ids
    assert stored[0]["prev_hash"] == GENESIS_HASH
    for previous, current in itertools.pairwise(stored):
        assert current["prev_hash"] == previous["record_hash"]
    assert log.verify() == ChainReport(True, 5, None, "")


def test_record_keeps_every_field_and_aware_utc_time(log: AuditLog, engine: Engine) -> None:
    given = str(uuid.uuid4())
    assert log.append(entry(7, comparison_id=given)) == given
    (record,) = list(read_export(_export_text(log, "jsonl"), "jsonl"))
    assert record["occurred_at"] == "2025-01-01T00:00:00.000000Z"
    assert record["purpose"] == "低保資格複核 / benefit eligibility review"
    assert record["duration_ms"] == entry(7).duration_ms
    assert record["record_hash"] == compute_record_hash(record)


def test_empty_log_verifies(log: AuditLog) -> None:
    assert log.verify() == ChainReport(True, 0, None, "")


def test_entry_validation_and_retention(engine: Engine) -> None:
    with pytest.raises(ValueError, match="outcome"):
        entry(outcome="maybe")
    with pytest.raises(ValueError, match="match_count"):
        entry(item_count=1, match_count=2)
    with pytest.raises(ValueError, match="SHA-256"):
        entry(payload_sha256="not-a-digest")
    with pytest.raises(ValueError, match="730"):
        AuditLog(session_factory(engine), retention_days=729)


# ---- tamper detection ------------------------------------------------------------------------


def _rehash(engine: Engine, seq: int, **changes: Any) -> str:
    """What an attacker who knows the algorithm does: change a record and recompute its hash."""
    (record,) = [r for r in rows(engine) if r["seq"] == seq]
    record.update(changes)
    return compute_record_hash(record)


def edit(engine: Engine) -> None:
    execute(engine, "UPDATE audit_record SET match_count = 0 WHERE seq = 3")


def edit_and_rehash(engine: Engine) -> None:
    forged = _rehash(engine, 3, purpose="something else")
    execute(
        engine,
        "UPDATE audit_record SET purpose = 'something else', record_hash = :h WHERE seq = 3",
        h=forged,
    )


def delete_middle(engine: Engine) -> None:
    execute(engine, "DELETE FROM audit_record WHERE seq = 3")


def delete_last(engine: Engine) -> None:
    execute(engine, "DELETE FROM audit_record WHERE seq = 5")


def insert_at_end(engine: Engine) -> None:
    last = rows(engine)[-1]
    forged = {
        **last,
        "seq": 6,
        "comparison_id": str(uuid.uuid4()),
        "prev_hash": last["record_hash"],
    }
    forged["record_hash"] = compute_record_hash(forged)
    _insert(engine, forged)


def insert_in_middle(engine: Engine) -> None:
    """Shift records 3..5 up, slip a well-formed record in at seq 3, relink the next one."""
    stored = rows(engine)
    for seq in (5, 4, 3):
        execute(engine, "UPDATE audit_record SET seq = :new WHERE seq = :old", new=seq + 1, old=seq)
    forged = {**stored[1], "seq": 3, "comparison_id": str(uuid.uuid4())}
    forged["prev_hash"] = stored[1]["record_hash"]
    forged["record_hash"] = compute_record_hash(forged)
    execute(engine, "UPDATE audit_record SET prev_hash = :h WHERE seq = 4", h=forged["record_hash"])
    _insert(engine, forged)


def _insert(engine: Engine, record: dict[str, Any]) -> None:
    with engine.begin() as connection:
        connection.execute(insert(AuditRecord).values(**record))


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "reason"),
    [
        (edit, 3, "record hash does not match its contents"),
        (edit_and_rehash, 4, "prev_hash does not match"),
        (delete_middle, 3, "record seq 3 is missing"),
        (delete_last, 5, "record seq 5 is missing"),
        (insert_at_end, 6, "not covered by the chain head"),
        (insert_in_middle, 4, "record hash does not match its contents"),
    ],
)
def test_verify_names_first_bad_record(
    log: AuditLog, engine: Engine, tamper: Callable[[Engine], None], bad_seq: int, reason: str
) -> None:
    fill(log, 5)
    tamper(engine)
    report = log.verify()
    assert not report.ok
    assert report.first_bad_seq == bad_seq
    assert reason in report.reason


def test_missing_chain_head_fails_verify_and_append(log: AuditLog, engine: Engine) -> None:
    fill(log, 2)
    execute(engine, "DELETE FROM audit_chain_head")
    report = log.verify()
    assert not report.ok and report.first_bad_seq is None
    with pytest.raises(AuditUnavailableError):
        log.append(entry())
    assert len(rows(engine)) == 2


# ---- concurrency -----------------------------------------------------------------------------


def test_concurrent_threads_keep_the_chain_linear(engine: Engine) -> None:
    log = AuditLog(session_factory(engine))
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            for i in range(12):
                log.append(entry(number * 100 + i, item_count=10_000))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [r["seq"] for r in rows(engine)] == list(range(1, 97))
    assert log.verify() == ChainReport(True, 96, None, "")


def _process_writer(url: str, number: int, count: int) -> None:
    engine = make_engine(url)
    try:
        log = AuditLog(session_factory(engine))
        for i in range(count):
            log.append(entry(number * 100 + i, item_count=10_000))
    finally:
        engine.dispose()


def test_concurrent_processes_keep_the_chain_linear(database_url: str, engine: Engine) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_process_writer, args=(database_url, n, 8)) for n in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert [r["seq"] for r in rows(engine)] == list(range(1, 25))
    assert AuditLog(session_factory(engine)).verify().ok


# ---- fail closed -----------------------------------------------------------------------------


def test_unreachable_postgresql_is_unavailable() -> None:
    engine = make_engine(CLOSED_PORT_URL)
    try:
        log = AuditLog(session_factory(engine))
        with pytest.raises(AuditUnavailableError) as caught:
            log.append(entry())
        assert "unavailable" in str(caught.value)
        assert "127.0.0.1" not in str(caught.value)  # what a requester sees stays generic
        assert caught.value.detail
        with pytest.raises(AuditUnavailableError):
            log.verify()
    finally:
        engine.dispose()


def test_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'audit.db'}")
    try:
        with pytest.raises(AuditUnavailableError):
            AuditLog(session_factory(engine)).append(entry())
    finally:
        engine.dispose()


def test_dropped_table_is_unavailable(log: AuditLog, engine: Engine) -> None:
    fill(log, 1)
    execute(engine, "DROP TABLE audit_record")
    with pytest.raises(AuditUnavailableError):
        log.append(entry())
    with pytest.raises(AuditUnavailableError):
        log.verify()


# ---- export ----------------------------------------------------------------------------------


def _export_text(log: AuditLog, fmt: Any, **bounds: datetime) -> io.StringIO:
    out = io.StringIO()
    log.export(out, fmt, bounds.get("start"), bounds.get("end"))
    out.seek(0)
    return out


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_round_trips_and_verifies_offline(log: AuditLog, fmt: Any) -> None:
    fill(log, 6)
    out = io.StringIO()
    assert log.export(out, fmt) == 6
    out.seek(0)
    records = list(read_export(out, fmt))
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(list(r) == list(EXPORT_FIELDS) for r in records)
    out.seek(0)
    assert verify_export(out, fmt) == ChainReport(True, 6, None, "")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_filters_time_range(log: AuditLog, fmt: Any) -> None:
    fill(log, 6)  # one record an hour from T0
    out = _export_text(log, fmt, start=T0 + timedelta(hours=2), end=T0 + timedelta(hours=4))
    records = list(read_export(out, fmt))
    assert [r["seq"] for r in records] == [3, 4]  # start inclusive, end exclusive
    out.seek(0)
    assert verify_export(out, fmt).ok  # a range checks from its first record on
    assert _export_text(log, fmt, start=T0 + timedelta(days=1)).getvalue().count("\n") <= 1


def test_edited_export_fails_offline_verification(log: AuditLog) -> None:
    fill(log, 3)
    lines = _export_text(log, "jsonl").getvalue().splitlines()
    second = json.loads(lines[1])
    second["match_count"] += 1
    lines[1] = json.dumps(second)
    report = verify_export(io.StringIO("\n".join(lines)), "jsonl")
    assert not report.ok and report.first_bad_seq == 2


def test_export_refuses_naive_bounds(log: AuditLog) -> None:
    with pytest.raises(ValueError, match="timezone"):
        log.export(io.StringIO(), "jsonl", datetime(2025, 1, 1))


# ---- the bidui audit commands ----------------------------------------------------------------


def write_config(folder: Path, database_url: str) -> Path:
    config = folder / "node.toml"
    if database_url.startswith("sqlite:///"):
        database_url = "sqlite:///audit.db"  # relative: resolves against the config's folder
    config.write_text(
        f'[node]\ndepartment = "luzhou-psb"\n\n[audit]\ndatabase_url = "{database_url}"\n'
        "retention_days = 730\n",
        encoding="utf-8",
    )
    return config


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(audit, list(args), env=env)


def test_cli_verify_ok_then_broken(
    log: AuditLog, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    fill(log, 3)
    config = write_config(tmp_path, database_url)
    result = run("verify", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "audit chain OK: 3 records"
    execute(engine, "UPDATE audit_record SET item_count = 1 WHERE seq = 2")
    result = run("verify", "--config", str(config))
    assert result.exit_code == 1
    assert result.stdout.strip() == (
        "audit chain BROKEN at record seq 2: record hash does not match its contents"
    )


def test_cli_export(log: AuditLog, database_url: str, tmp_path: Path) -> None:
    fill(log, 4)
    config = write_config(tmp_path, database_url)
    target = tmp_path / "out.jsonl"
    result = run(
        "export", "--config", str(config), "--from", "2025-01-01T01:00:00", "--to",
        "2025-01-01T11:00:00+08:00", "--output", str(target),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "exported 2 audit records" in result.stderr
    with target.open(encoding="utf-8") as handle:
        assert [r["seq"] for r in read_export(handle, "jsonl")] == [2, 3]
    result = run("export", "--config", str(config), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 5  # header + 4


def test_cli_environment_overrides_the_database(log: AuditLog, tmp_path: Path) -> None:
    fill(log, 2)
    config = write_config(tmp_path, "sqlite:///elsewhere.db")
    (tmp_path / "elsewhere.db").write_bytes(b"")
    other = make_engine(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    migrate(other)
    other.dispose()
    result = run("verify", "--config", str(config))  # config says audit.db, which is `log`'s
    env = {"BIDUI_AUDIT_DATABASE_URL": f"sqlite:///{tmp_path / 'elsewhere.db'}"}
    overridden = run("verify", "--config", str(config), env=env)
    if "postgresql" in str(log._engine.url):
        assert result.exit_code == 2  # the relative SQLite file does not exist there
    else:
        assert result.stdout.splitlines()[0] == "audit chain OK: 2 records"
    assert overridden.stdout.splitlines()[0] == "audit chain OK: 0 records"


@pytest.mark.parametrize(
    "problem",
    ["missing config", "bad toml", "closed port", "missing database", "no tables", "bad url"],
)
def test_cli_usage_errors_are_one_line_exit_2(tmp_path: Path, problem: str) -> None:
    config = tmp_path / "node.toml"
    env: dict[str, str] = {}
    if problem == "bad toml":
        config.write_text("[audit\n", encoding="utf-8")
    elif problem != "missing config":
        config.write_text('[node]\ndepartment = "luzhou-psb"\n', encoding="utf-8")
        env["BIDUI_AUDIT_DATABASE_URL"] = {
            "closed port": CLOSED_PORT_URL,
            "missing database": "sqlite:///absent.db",
            "no tables": "sqlite:///empty.db",
            "bad url": "not a url",
        }[problem]
        if problem == "no tables":
            (tmp_path / "empty.db").write_bytes(b"")
    for command in ("verify", "export"):
        result = run(command, "--config", str(config), env=env)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert result.stdout == ""
        assert result.stderr.startswith("error: ") or "Error:" in result.stderr


def test_cli_help_everywhere() -> None:
    for args in ([], ["verify"], ["export"]):
        result = run(*args, "--help")
        assert result.exit_code == 0
        assert "Usage:" in result.output
