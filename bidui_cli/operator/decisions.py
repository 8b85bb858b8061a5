"""``bidui provider applications`` and ``bidui provider grants``: the operator's decisions on
conditional sharing (articles 24, 25, 31).

```
department: bidui apply ...  ->  pending, deadline 5 Chinese working days later
operator:   bidui provider applications list --overdue | show ID
            bidui provider applications approve ID [narrower]  ->  a grant
            bidui provider applications refuse ID --reason …    (article 25: a reason, always)
            bidui provider grants list | revoke GRANT_ID --reason …
```

Every decision and revocation is recorded in the audit log in the same transaction as the change
(``provider_node.governance.sharing``); listing and showing change nothing. ``main.py`` adds both
groups to
``bidui provider``.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import click
from sqlalchemy.orm import Session

from bidui_cli.errors import fail
from bidui_cli.operator.governance import Governance, governance, operator_option, reason_option
from bidui_cli.options import config_option
from bidui_cli.terminal import (
    days_until,
    deadline,
    iso_date,
    moment,
    name_list,
    table,
    whole_number,
)
from provider_node.core.vocabulary import ComparisonMode
from provider_node.core.workdays import china_date
from provider_node.governance import grant_lookup as store
from provider_node.governance import sharing
from provider_node.governance.grant_fields import MAX_ITEMS_PER_DAY
from provider_node.governance.grants import ApplicationStatus
from provider_node.store.models import Application, Grant

__all__ = ["applications", "grants"]

_MODES = tuple(mode.value for mode in ComparisonMode)


def _standing(application: Application, today: _dt.date) -> str:
    """Days left or overdue while pending; whether the decision came in time once decided."""
    if application.decided_at is None:
        return days_until(application.decision_deadline, today)
    late = (china_date(application.decided_at) - application.decision_deadline).days
    return "decided on time" if late <= 0 else f"decided {late} day{'s' if late > 1 else ''} late"


def _grant_state(grant: Grant, today: _dt.date) -> str:
    if grant.revoked_at is not None:
        return f"revoked {moment(grant.revoked_at)}: {grant.revocation_reason}"
    if today < grant.valid_from:
        return "not yet valid"
    return "expired" if today > grant.valid_until else "in force"


def _grant_terms(grant: Grant) -> str:
    return (
        f"keys {', '.join(grant.comparison_keys)}; modes {', '.join(grant.modes)}; "
        f"answers {', '.join(grant.answers)}; {grant.items_per_day:,} items per day; "
        f"{grant.valid_from} to {grant.valid_until}"
    )


@click.group()
def applications() -> None:
    """Decide departments' applications for conditional resources within 5 working days.

    Article 25: the provider accepts or refuses within 5 Chinese working days of the application,
    and a refusal gives its reason. The deadline comes from the chinese-calendar package and the
    years node.toml adds ([[calendar.years]], copied from the State Council's notice): an
    application whose deadline would fall in a year neither knows is refused until it is added.
    """


@applications.command("list")
@config_option()
@click.option(
    "--status",
    type=click.Choice([status.value for status in ApplicationStatus]),
    default=None,
    help="Only applications in this state.",
)
@click.option("--overdue", is_flag=True, help="Only pending applications past their deadline.")
def list_applications(config_path: Path, status: str | None, overdue: bool) -> None:
    """Applications, oldest first, with their deadlines (dates in China). Changes nothing."""
    if overdue and status not in (None, ApplicationStatus.PENDING.value):
        fail("only pending applications can be overdue: leave out --status with --overdue")
    with governance(config_path) as act, act.sessions() as session:
        found = store.list_applications(session, ApplicationStatus.PENDING if overdue else status)
        if overdue:
            found = [a for a in found if a.decision_deadline < act.today]
        rows = [
            (
                a.id,
                a.department,
                a.resource_id,
                china_date(a.submitted_at),
                deadline(a.decision_deadline, a.deadline_provisional),
                a.status,
                _standing(a, act.today),
            )
            for a in found
        ]
    if not rows:
        click.echo("no applications" + (" overdue" if overdue else ""))
        return
    table(
        ("id", "department", "resource", "submitted", "deadline", "status", "standing"),
        rows,
    )


def _show(act: Governance, session: Session, application_id: str) -> None:
    a = store.get_application(session, application_id)
    lines = [
        ("application", a.id),
        ("department", a.department),
        ("resource", a.resource_id),
        ("keys", ", ".join(a.comparison_keys)),
        ("modes", ", ".join(a.modes)),
        ("answers", ", ".join(a.answers)),
        ("duty", a.duty),
        ("items/day", f"{a.items_per_day:,}"),
        ("valid until", str(a.valid_until)),
        ("submitted", moment(a.submitted_at)),
        (
            "deadline",
            f"{deadline(a.decision_deadline, a.deadline_provisional)} ({_standing(a, act.today)})",
        ),
        ("status", a.status),
    ]
    if a.decided_at is not None:
        lines.append(("decided", f"{moment(a.decided_at)} by {a.decided_by}"))
    if a.decision_reason:
        lines.append(("reason" if a.status == "refused" else "note", a.decision_reason))
    for grant in store.list_grants(session, a.department, a.resource_id):
        if grant.application_id == a.id:
            lines.append(("grant", f"{grant.id} ({_grant_state(grant, act.today)})"))
            lines.append(("granted", _grant_terms(grant)))
    for title, value in lines:
        click.echo(f"{title:<12} {value}")


@applications.command("show")
@config_option()
@click.argument("application_id", metavar="ID")
def show(config_path: Path, application_id: str) -> None:
    """One application: what was asked, the deadline, the decision and its grant. Changes
    nothing."""
    with governance(config_path) as act, act.sessions() as session:
        _show(act, session, application_id)


@applications.command("approve")
@config_option()
@click.argument("application_id", metavar="ID")
@click.option(
    "--keys",
    metavar="K1,K2",
    callback=name_list(),
    help="Grant only these comparison keys (default: all applied for).",
)
@click.option(
    "--modes",
    metavar="MODES",
    callback=name_list(_MODES),
    help=f"Grant only these modes, of {', '.join(_MODES)} (default: all applied for).",
)
@click.option(
    "--answers",
    metavar="ANSWERS",
    callback=name_list(("match", "verify", "count")),
    help="Grant only these answers, of match, verify, count (default: all applied for).",
)
@click.option(
    "--items-per-day",
    metavar="N",
    callback=whole_number(1, MAX_ITEMS_PER_DAY),
    help="Grant fewer items per day (China time) than applied for.",
)
@click.option(
    "--valid-until",
    metavar="YYYY-MM-DD",
    callback=iso_date,
    help="End the grant earlier than applied for (the last day, in China).",
)
@click.option("--note", default=None, help="A note kept with the decision.")
@operator_option
def approve(
    config_path: Path,
    application_id: str,
    keys: tuple[str, ...] | None,
    modes: tuple[str, ...] | None,
    answers: tuple[str, ...] | None,
    items_per_day: int | None,
    valid_until: _dt.date | None,
    note: str | None,
    operator: str | None,
) -> None:
    """Approve a pending application and create its grant, perhaps narrower than applied for.

    An option left out grants what was applied for; given, it may only narrow it. The department
    may compare under the grant from today (China time) until its last day; every comparison
    names the grant. Records the decision (on time or late), the terms and the grant's id in the
    audit log, in the same transaction as the grant.
    """
    decision = sharing.Decision(keys, modes, items_per_day, valid_until, answers)
    with governance(config_path, operator) as act:
        grant = sharing.approve(
            act.audit,
            application_id,
            operator=act.operator,
            now=act.now,
            decision=decision,
            note=note,
        )
    click.echo(f"Approved application {application_id}: grant {grant.id}")
    click.echo(f"  {grant.department} on {grant.resource_id}: {_grant_terms(grant)}")


@applications.command("refuse")
@config_option()
@click.argument("application_id", metavar="ID")
@reason_option("the department reads it (article 25)")
@operator_option
def refuse(config_path: Path, application_id: str, reason: str, operator: str | None) -> None:
    """Refuse a pending application, giving the reason the department will read.

    Records the refusal and its reason in the audit log, in the same transaction. The department
    may apply again.
    """
    with governance(config_path, operator) as act:
        refused = sharing.refuse(
            act.audit, application_id, reason, operator=act.operator, now=act.now
        )
    click.echo(
        f"Refused application {refused.id} of {refused.department} for {refused.resource_id}: "
        f"{reason}"
    )


@click.group()
def grants() -> None:
    """The grants approvals created: what each department may compare, until when."""


@grants.command("list")
@config_option()
@click.option("--department", metavar="ID", default=None, help="Only this department's.")
@click.option("--resource", metavar="ID", default=None, help="Only grants on this resource.")
def list_grants(config_path: Path, department: str | None, resource: str | None) -> None:
    """Grants, longest-lasting first, with their terms and state today. Changes nothing."""
    with governance(config_path) as act, act.sessions() as session:
        rows = [
            (
                g.id,
                g.department,
                g.resource_id,
                ", ".join(g.comparison_keys),
                ", ".join(g.modes),
                f"{g.items_per_day:,}",
                f"{g.valid_from} to {g.valid_until}",
                _grant_state(g, act.today),
            )
            for g in store.list_grants(session, department, resource)
        ]
    if not rows:
        click.echo("no grants")
        return
    table(
        ("id", "department", "resource", "keys", "modes", "items/day", "valid", "state"),
        rows,
    )


@grants.command("revoke")
@config_option()
@click.argument("grant_id", metavar="GRANT_ID")
@reason_option("the department reads it when refused")
@operator_option
def revoke_grant(config_path: Path, grant_id: str, reason: str, operator: str | None) -> None:
    """End a grant now: comparisons under it are refused from now on, saying it was revoked.

    Every node process sharing this database refuses them from its next comparison. Records the
    revocation and its reason in the audit log, in the same transaction. It cannot be undone: the
    department applies again.
    """
    with governance(config_path, operator) as act:
        grant = sharing.revoke(act.audit, grant_id, reason, operator=act.operator, now=act.now)
    click.echo(f"Revoked grant {grant.id} of {grant.department} on {grant.resource_id}: {reason}")
