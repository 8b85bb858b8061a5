"""The quarterly report (article 36) counts what the audit log holds, per quarter."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from bidui_cli.main import main
from provider_node.audit import AuditEntry, AuditLog
from provider_node.bootstrap import init_node
from provider_node.config import load_config
from provider_node.operator_audit import open_audit
from provider_node.report import QuarterlyReport, quarter_bounds


def test_quarter_bounds() -> None:
    assert quarter_bounds("2026Q1") == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )
    assert quarter_bounds("2026-q4") == (
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    for bad in ("2026Q5", "Q4", "2026", "2026Q4x"):
        with pytest.raises(ValueError, match="2026Q4"):
            quarter_bounds(bad)


def _entry(requester: str, outcome: str, items: int, matches: int, **extra: object) -> AuditEntry:
    fields: dict[str, object] = {
        "action": "comparison",
        "requester": requester,
        "resource_id": "residents",
        "mode": "hashed",
        "outcome": outcome,
        "status_code": "OK" if outcome == "answered" else "INVALID_ARGUMENT",
        "item_count": items,
        "match_count": matches,
    }
    fields.update(extra)
    return AuditEntry(**fields)  # type: ignore[arg-type]


@pytest.fixture
def node(tmp_path: Path) -> tuple[Path, AuditLog, list[datetime]]:
    init = init_node(tmp_path)
    times = [datetime(2026, 9, 30, 23, 59, tzinfo=UTC)]  # the last moment of Q3
    audit = open_audit(load_config(init.config_path))
    audit._clock = lambda: times[0]  # type: ignore[method-assign]
    audit.append(_entry("civil-affairs", "answered", 100, 40))  # Q3: not in the Q4 report
    times[0] = datetime(2026, 10, 1, tzinfo=UTC)
    audit.append(_entry("civil-affairs", "answered", 10, 4))
    audit.append(_entry("civil-affairs", "answered", 20, 5))
    audit.append(_entry("civil-affairs", "answered", 7, 7, mode="blinded"))
    audit.append(
        _entry("", "refused", 3, 0, resource_id="=HYPERLINK()", status_code="UNAUTHENTICATED")
    )
    audit.append(
        AuditEntry(action="index_load", outcome="answered", status_code="OK", item_count=50)
    )
    return init.config_path, audit, times


def test_report_counts_one_quarter(node: tuple[Path, AuditLog, list[datetime]]) -> None:
    _, audit, _ = node
    start, end = quarter_bounds("2026Q4")
    rows = audit.summarise(start, end)
    report = QuarterlyReport("2026Q4", start, end, "luzhou-psb", audit.verify(), rows)
    text = io.StringIO()
    report.write_text(text)
    page = text.getvalue()
    assert "audit chain: OK, 6 records verified" in page
    hashed = next(line for line in page.splitlines() if " hashed " in line)
    assert hashed.split()[-3:] == ["2", "30", "9"]  # requests, items, matches of Q4 only
    blinded = next(line for line in page.splitlines() if " blinded " in line)
    assert blinded.split()[-3:] == ["1", "7", "7"]
    assert "(unauthenticated)" in page and "UNAUTHENTICATED" in page
    assert "index_load" in page
    table = io.StringIO()
    report.write_csv(table)
    assert "'=HYPERLINK()" in table.getvalue()  # no formula reaches a spreadsheet


def test_cli_report_flags_a_broken_chain(node: tuple[Path, AuditLog, list[datetime]]) -> None:
    import sqlite3

    config_path, _, _ = node
    runner = CliRunner()
    ok = runner.invoke(
        main, ["audit", "report", "--config", str(config_path), "--quarter", "2026Q4"]
    )
    assert ok.exit_code == 0, ok.output
    assert "audit chain: OK" in ok.stdout
    with sqlite3.connect(config_path.parent / "audit.db") as db:
        db.execute("UPDATE audit_record SET item_count = 1 WHERE seq = 2")
    db.close()
    broken = runner.invoke(
        main, ["audit", "report", "--config", str(config_path), "--quarter", "2026Q4"]
    )
    assert broken.exit_code == 1
    assert "audit chain: BROKEN at record seq 2" in broken.stdout
    bad = runner.invoke(
        main, ["audit", "report", "--config", str(config_path), "--quarter", "26Q4"]
    )
    assert bad.exit_code == 2
