"""The quarterly report (article 36) counts what the audit log holds, per quarter."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from bidui_cli.main import main
from provider_node.audit.log import AuditLog
from provider_node.audit.operator import open_audit
from provider_node.audit.records import AuditEntry
from provider_node.config import load_config
from provider_node.governance import grants, sharing
from provider_node.governance.report import CSV_FIELDS, build_report, period_bounds
from provider_node.setup.bootstrap import init_node


def test_periods_are_china_s_quarters_and_years() -> None:
    # A quarter starts at 00:00 Beijing time on its first day: 16:00 UTC the day before.
    assert period_bounds("2026Q1") == (
        "2026Q1",
        datetime(2025, 12, 31, 16, tzinfo=UTC),
        datetime(2026, 3, 31, 16, tzinfo=UTC),
    )
    assert period_bounds("2026-q4")[1:] == (
        datetime(2026, 9, 30, 16, tzinfo=UTC),
        datetime(2026, 12, 31, 16, tzinfo=UTC),
    )
    assert period_bounds(" 2026 ") == (
        "2026",
        datetime(2025, 12, 31, 16, tzinfo=UTC),
        datetime(2026, 12, 31, 16, tzinfo=UTC),
    )
    for bad in ("2026Q5", "Q4", "26", "2026Q4x", "2026-13"):
        with pytest.raises(ValueError, match="2026Q4"):
            period_bounds(bad)


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
    # 23:59 on 30 September in Beijing, the last minute of Q3; the next record, at 00:00 on
    # 1 October in Beijing, is Q4's though it is still 30 September in UTC.
    times = [datetime(2026, 9, 30, 15, 59, tzinfo=UTC)]
    audit = open_audit(load_config(init.config_path))
    audit._clock = lambda: times[0]  # type: ignore[method-assign]
    audit.append(_entry("civil-affairs", "answered", 100, 40))  # Q3: not in the Q4 report
    times[0] = datetime(2026, 9, 30, 16, 0, tzinfo=UTC)
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
    report = build_report(
        audit, "2026-q4", "luzhou-psb", now=datetime(2027, 2, 1, tzinfo=UTC), lang="en"
    )
    assert report.period == "2026Q4"
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


def test_refusals_counted_over_a_window_are_counted_each(
    node: tuple[Path, AuditLog, list[datetime]],
) -> None:
    _, audit, _ = node
    first = _entry("flooder", "refused", 1, 0, status_code="NOT_FOUND")
    audit.append(first)
    audit.append(replace(first, action="refusals", item_count=41, resource_id="", mode=""))
    report = build_report(
        audit, "2026Q4", "luzhou-psb", now=datetime(2027, 2, 1, tzinfo=UTC), lang="en"
    )
    page = io.StringIO()
    report.write_text(page)
    (line,) = [x for x in page.getvalue().splitlines() if x.split()[:1] == ["flooder"]]
    assert line.split() == ["flooder", "refused", "NOT_FOUND", "42"]
    assert "refusals" not in page.getvalue().split("other audited actions")[1]


def test_cli_report_flags_a_broken_chain(node: tuple[Path, AuditLog, list[datetime]]) -> None:
    import sqlite3

    config_path, _, _ = node
    runner = CliRunner()
    report = ["audit", "report", "--config", str(config_path)]
    ok = runner.invoke(main, [*report, "--quarter", "2026Q4"])
    assert ok.exit_code == 0, ok.output
    assert "审计链: 完整，已核验 6 条记录" in ok.stdout  # Chinese unless asked otherwise
    assert "有条件共享（第二十五条）" in ok.stdout
    assert "统计期间: 2026-10-01 – 2026-12-31 (北京时间)" in ok.stdout
    english = runner.invoke(main, [*report, "--quarter", "2026Q4", "--lang", "en"])
    assert "audit chain: OK" in english.stdout
    assert "conditional sharing (article 25)" in english.stdout
    annual = runner.invoke(main, [*report, "--year", "2026", "--lang", "en"])
    assert annual.exit_code == 0, annual.output
    assert "annual sharing report" in annual.stdout
    assert "audit chain: OK, 6 records verified" in annual.stdout
    with sqlite3.connect(config_path.parent / "audit.db") as db:
        db.execute("UPDATE audit_record SET item_count = 1 WHERE seq = 2")
    db.close()
    broken = runner.invoke(main, [*report, "--quarter", "2026Q4", "--lang", "en"])
    assert broken.exit_code == 1
    assert "audit chain: BROKEN at record seq 2" in broken.stdout
    for wrong in (["--quarter", "26Q4"], ["--quarter", "2026"], ["--year", "2026Q4"], []):
        bad = runner.invoke(main, [*report, *wrong])
        assert bad.exit_code == 2, (wrong, bad.output)
        assert "Traceback" not in bad.output


# ---- conditional sharing, grants and certificates, on SQLite and PostgreSQL ---------------------

CHINA = timezone(timedelta(hours=8))
DEPARTMENT = "luzhou-civil-affairs"
DUTY = "低保資格複核: a duty no report may show"
PURPOSE = "a purpose no report may show"
OPERATOR = "luzhou-psb"


class Governance:
    """Audited sharing actions at chosen times: the audit clock and the grants' ``now`` agree."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.now = datetime(2025, 12, 1, 10, 0, tzinfo=CHINA)
        self.audit = AuditLog(sessions, clock=lambda: self.now)

    def at(self, year: int, month: int, day: int, hour: int = 10) -> Governance:
        self.now = datetime(year, month, day, hour, 0, tzinfo=CHINA)
        return self

    def apply(self) -> str:
        submitted: list[str] = []

        def act(session: Session) -> AuditEntry:
            application = grants.submit_application(
                session,
                DEPARTMENT,
                "residents",
                ["id_number"],
                ["hashed", "blinded"],
                DUTY,
                100,
                date(2026, 12, 31),
                self.now,
            )
            submitted.append(application.id)
            return AuditEntry(
                action="application",
                outcome="answered",
                status_code="OK",
                requester=DEPARTMENT,
                resource_id="residents",
                purpose=DUTY,
            )

        self.audit.append_action(act)
        return submitted[0]

    def approve(self, application_id: str) -> str:
        return sharing.approve(self.audit, application_id, operator=OPERATOR, now=self.now).id

    def refuse(self, application_id: str) -> None:
        sharing.refuse(self.audit, application_id, "no such duty", operator=OPERATOR, now=self.now)

    def compare(self, outcome: str, grant_id: str, items: int, matches: int = 0) -> None:
        status_code = {"answered": "OK", "opened": "OK"}.get(outcome, "PERMISSION_DENIED")
        self.audit.append(
            _entry(
                DEPARTMENT,
                outcome,
                items,
                matches,
                grant_id=grant_id,
                purpose=PURPOSE,
                status_code=status_code,
            )
        )

    def certificate(self, action: str) -> None:
        self.audit.append(
            AuditEntry(action=action, outcome="answered", status_code="OK", requester=OPERATOR)
        )


def figures(page: str, label: str) -> list[str]:
    """The words after ``label`` on the page's line that starts with it."""
    line = next(line.strip() for line in page.splitlines() if line.strip().startswith(label))
    return line[len(label) :].split()


def test_report_counts_sharing_grants_and_certificates(sessions: sessionmaker[Session]) -> None:
    does = Governance(sessions)
    # Q4 2025: applied and approved; its grant is used in Q1 2026, nothing else of it counts there.
    earlier = does.at(2025, 12, 1).approve(does.apply())
    # Q1 2026: five applications, submitted on Monday 2 March (due Monday 9 March) unless said.
    approved, refused, _overdue, decided_in_q2 = (does.at(2026, 3, 2).apply() for _ in range(4))
    does.at(2026, 3, 31, 12).apply()  # due in April: pending at the quarter's end, not overdue
    grant = does.at(2026, 3, 3).approve(approved)  # on time
    does.at(2026, 3, 20).refuse(refused)  # late
    does.at(2026, 3, 4)
    does.compare("answered", grant, 10, 2)
    does.compare("answered", grant, 5, 1)
    does.compare("refused", grant, 50)
    does.compare("opened", earlier, 7)  # a blinded comparison's first step: not counted twice
    does.compare("answered", earlier, 7, 7)
    does.compare("answered", "", 4)  # an unconditional resource: no grant
    does.at(2026, 3, 25)
    sharing.revoke(does.audit, grant, "duty ended", operator=OPERATOR, now=does.now)
    does.compare("refused", grant, 1)
    does.certificate("certificate_signing")
    does.certificate("certificate_signing")
    does.certificate("certificate_revocation")
    does.at(2026, 4, 2).approve(decided_in_q2)  # still pending (and overdue) at the end of Q1

    report = build_report(
        does.audit, "2026Q1", OPERATOR, now=datetime(2026, 6, 1, tzinfo=UTC), lang="en"
    )
    assert report.as_of == datetime(2026, 3, 31, 16, tzinfo=UTC)  # 1 April, 00:00 in Beijing
    text = io.StringIO()
    report.write_text(text)
    page = text.getvalue()
    assert "audit chain: OK" in page
    assert figures(page, "applications submitted") == ["5"]
    assert figures(page, "applications approved") == ["1"]
    assert figures(page, "applications refused") == ["1"]
    assert figures(page, "applications decided") == ["2"]
    on_time = figures(page, "within 5 working days (on time)")
    assert on_time == ["1", "(50.0%", "of", "those", "decided)"]
    assert figures(page, "applications pending") == ["3", "(at", "2026-04-01", "00:00)"]
    assert figures(page, "past their deadline (overdue)") == ["2"]
    assert figures(page, "grants revoked") == ["1"]
    assert figures(page, grant) == [DEPARTMENT, "residents", "2", "15", "2"]
    assert figures(page, earlier) == [DEPARTMENT, "residents", "1", "7", "0"]
    assert figures(page, "certificates signed") == ["2"]
    assert figures(page, "certificates revoked") == ["1"]
    refused_section = page.split("comparisons refused, failed or abandoned")[1].split("\n\n")[0]
    assert "opened" not in refused_section
    assert figures(refused_section, DEPARTMENT) == ["refused", "PERMISSION_DENIED", "2"]
    other = page.split("other audited actions")[1]
    assert "application" not in other and "certificate" not in other
    table = io.StringIO()
    report.write_csv(table)
    for shown in (page, table.getvalue()):
        assert DUTY not in shown and PURPOSE not in shown
    rows = list(csv.DictReader(io.StringIO(table.getvalue())))
    assert tuple(rows[0]) == CSV_FIELDS
    comparisons = [r for r in rows if r["action"] == "comparison"]
    assert "opened" not in {r["outcome"] for r in comparisons}  # counted once, by its answer
    assert sum(int(r["count"]) for r in comparisons) == 6  # 4 answered, 2 refused

    # A quarter not yet over counts its pending applications now.
    now = datetime(2026, 3, 10, tzinfo=UTC)
    current = build_report(does.audit, "2026Q1", OPERATOR, now=now)
    assert current.as_of == now
