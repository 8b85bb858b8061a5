"""``bidui provider applications`` and ``grants``: the operator lists, shows, approves (perhaps
narrower), refuses with a reason and revokes, each decision audited; every mistake one line and
exit code 2. The operator's clock is fixed at Monday 2026-03-02 10:00 in China."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from provider_node.audit.operator import open_audit
from provider_node.config import load_config
from provider_node.governance import grants
from provider_node.setup.bootstrap import init_node
from tests.cli.running import audited, provider, refused

T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in China
RESOURCE = "household_register"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("bidui_cli.terminal.clock", lambda: T0)
    return init_node(tmp_path).config_path


def submit(config: Path, department: str = "luzhou-civil-affairs", *, days_ago: int = 0) -> str:
    """An application as a department's Apply leaves it; returns its id."""
    audit = open_audit(load_config(config))
    with audit.sessions.begin() as session:
        application = grants.submit_application(
            session,
            department,
            RESOURCE,
            ["id_number", "id_number+name"],
            ["hashed", "blinded"],
            "verifying applicants for housing subsidies",
            1000,
            dt.date(2026, 12, 31),
            T0 - dt.timedelta(days=days_ago),
        )
        return application.id


def test_list_and_show_with_deadlines(config: Path) -> None:
    late = submit(config, "luzhou-hrss", days_ago=14)
    fresh = submit(config)
    listed = provider(config, "applications", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == [
        "id", "department", "resource", "submitted", "deadline", "status", "standing"
    ]  # fmt: skip
    assert late in lines[1] and "overdue" in lines[1]
    assert fresh in lines[2] and "2026-03-09" in lines[2] and "7 days left" in lines[2]
    overdue = provider(config, "applications", "list", "--overdue")
    assert late in overdue.output and fresh not in overdue.output
    shown = provider(config, "applications", "show", fresh)
    assert shown.exit_code == 0, shown.output
    for text in ("verifying applicants", "id_number+name", "2026-03-09 (7 days left)", "pending"):
        assert text in shown.output


def test_approve_narrowed_creates_a_grant_and_audits_it(config: Path) -> None:
    application = submit(config)
    result = provider(
        config,
        "applications",
        "approve",
        application,
        "--keys",
        "id_number",
        "--modes",
        "blinded",
        "--items-per-day",
        "500",
        "--valid-until",
        "2026-06-30",
        "--note",
        "half the quota for a trial",
    )
    assert result.exit_code == 0, result.output
    assert (
        "keys id_number; modes blinded; answers match; 500 items per day; 2026-03-02 to 2026-06-30"
        in result.output
    )
    listed = provider(config, "grants", "list")
    assert "in force" in listed.output and "luzhou-civil-affairs" in listed.output
    shown = provider(config, "applications", "show", application)
    assert "approved" in shown.output and "decided on time" in shown.output
    assert "half the quota" in shown.output
    (record,) = [r for r in audited(config) if r["action"] == "application_approval"]
    assert record["reason"].startswith("by luzhou-psb:") and record["grant_id"]
    assert provider(config, "applications", "list", "--status", "pending").output.startswith("no")


def test_refuse_gives_the_reason_and_audits_it(config: Path) -> None:
    application = submit(config)
    result = provider(
        config,
        "applications",
        "refuse",
        application,
        "--reason",
        "the duty does not need names",
        "--operator",
        "Li Na",
    )
    assert result.exit_code == 0, result.output
    shown = provider(config, "applications", "show", application)
    assert "refused" in shown.output and "the duty does not need names" in shown.output
    (record,) = [r for r in audited(config) if r["action"] == "application_refusal"]
    assert record["reason"] == (
        f"by Li Na: application {application} refused: the duty does not need names"
    )


def test_grant_revocation_is_audited(config: Path) -> None:
    application = submit(config)
    assert provider(config, "applications", "approve", application).exit_code == 0
    (grant_id,) = [r["grant_id"] for r in audited(config) if r["grant_id"]]
    result = provider(config, "grants", "revoke", grant_id, "--reason", "duty ended")
    assert result.exit_code == 0, result.output
    assert "revoked" in provider(config, "grants", "list").output
    assert "duty ended" in provider(config, "applications", "show", application).output
    again = refused(provider(config, "grants", "revoke", grant_id, "--reason", "twice"))
    assert "already revoked" in again


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["applications", "show", "nope"], "no application 'nope'"),
        (["applications", "approve", "00000000-0000-0000-0000-000000000000"], "no application"),
        (["applications", "approve", "{id}", "--valid-until", "31/12/2026"], "is not a date"),
        (["applications", "approve", "{id}", "--valid-until", "2027-01-31"], "later than"),
        (["applications", "approve", "{id}", "--items-per-day", "0"], "is not from 1"),
        (["applications", "approve", "{id}", "--items-per-day", "5000"], "more than"),
        (["applications", "approve", "{id}", "--keys", "phone"], "phone"),
        (["applications", "approve", "{id}", "--modes", "private"], "'private' is not one of"),
        (["applications", "approve", "{id}", "--keys", " , "], "name at least one"),
        (["applications", "refuse", "{id}"], "--reason is required"),
        (["applications", "refuse", "{id}", "--reason", " "], "--reason must not be blank"),
        (["applications", "list", "--status", "refused", "--overdue"], "only pending"),
        (["grants", "revoke", "nope", "--reason", "x"], "no grant 'nope'"),
    ],
)
def test_mistakes_are_one_line(config: Path, arguments: list[str], says: str) -> None:
    application = submit(config)
    line = refused(provider(config, *(a.format(id=application) for a in arguments)))
    assert says in line
    assert provider(config, "applications", "list", "--status", "pending").exit_code == 0
    decided = [r for r in audited(config) if r["action"].startswith("application_")]
    assert decided == []


def test_a_decided_application_cannot_be_decided_again(config: Path) -> None:
    application = submit(config)
    assert provider(config, "applications", "refuse", application, "--reason", "no").exit_code == 0
    line = refused(provider(config, "applications", "approve", application))
    assert "already refused" in line


def test_a_missing_configuration_is_one_line(tmp_path: Path) -> None:
    line = refused(provider(tmp_path / "none.toml", "grants", "list"))
    assert "no such configuration file" in line
