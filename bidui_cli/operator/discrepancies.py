"""``bidui provider discrepancies``: the operator's answers to doubted results (article 26).

```
department: bidui discrepancy file --comparison ID --positions 0,4 --description …
            ->  pending, answer due 5 Chinese working days later
operator:   bidui provider discrepancies list --overdue | show ID
            bidui provider discrepancies confirm ID [--note …]      the results were wrong
            bidui provider discrepancies correct ID --refresh LOAD  … and this index_load fixed it
            bidui provider discrepancies reject ID --reason …       the results stand, and why
```

Every answer is recorded in the audit log in the same transaction as the change
(``provider_node.governance.discrepancies``); listing and showing change nothing. ``main.py`` adds
the group
to ``bidui provider``.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import click

from bidui_cli.discrepancy_text import positions_text, standing
from bidui_cli.errors import fail
from bidui_cli.operator.governance import governance, operator_option, reason_option
from bidui_cli.options import config_option
from bidui_cli.terminal import deadline, moment, table
from provider_node.core.workdays import china_date
from provider_node.governance import discrepancies as answers
from provider_node.governance import discrepancy_records as store
from provider_node.governance.discrepancy_records import ReportStatus
from provider_node.store.models import DiscrepancyReport

__all__ = ["discrepancies"]

_NOTE = click.option("--note", default=None, help="A note the department reads with the answer.")


@click.group()
def discrepancies() -> None:
    """Answer departments' reports of doubted results within 5 working days.

    Article 26: a department that doubts a result reports it within 3 Chinese working days of the
    comparison; the provider answers within 5 working days of the report: confirmed (the results
    were wrong), corrected (and the index refresh that fixed them), or rejected with the reason.
    """


@discrepancies.command("list")
@config_option()
@click.option(
    "--status",
    type=click.Choice([status.value for status in ReportStatus]),
    default=None,
    help="Only reports in this state.",
)
@click.option("--overdue", is_flag=True, help="Only pending reports past their deadline.")
def list_reports(config_path: Path, status: str | None, overdue: bool) -> None:
    """Reports, oldest first, with their answer deadlines (dates in China). Changes nothing."""
    if overdue and status not in (None, ReportStatus.PENDING.value):
        fail("only pending reports can be overdue: leave out --status with --overdue")
    with governance(config_path) as act, act.sessions() as session:
        found = store.list_reports(session, status=ReportStatus.PENDING if overdue else status)
        if overdue:
            found = [r for r in found if r.answer_deadline < act.today]
        rows = [
            (
                r.id,
                r.department,
                r.resource_id,
                len(r.positions),
                china_date(r.filed_at),
                deadline(r.answer_deadline, r.deadlines_provisional),
                r.status,
                standing(r, act.today),
            )
            for r in found
        ]
    if not rows:
        click.echo("no discrepancy reports" + (" overdue" if overdue else ""))
        return
    table(
        ("id", "department", "resource", "items", "filed", "deadline", "status", "standing"), rows
    )


@discrepancies.command("show")
@config_option()
@click.argument("report_id", metavar="ID")
def show(config_path: Path, report_id: str) -> None:
    """One report: the comparison, the doubted positions, the description, the answer, and the
    index refreshes of the resource since the comparison (what `correct --refresh` takes).
    Changes nothing."""
    with governance(config_path) as act, act.sessions() as session:
        r = store.get_report(session, report_id)
        lines = [
            ("report", r.id),
            ("department", r.department),
            ("resource", r.resource_id),
            ("comparison", f"{r.comparison_id} ({moment(r.compared_at)})"),
            ("positions", positions_text(r.positions)),
            ("description", r.description),
            ("filed", f"{moment(r.filed_at)} (by {r.report_deadline}, 3 working days)"),
            (
                "deadline",
                f"{deadline(r.answer_deadline, r.deadlines_provisional)} "
                f"({standing(r, act.today)})",
            ),
            ("status", r.status),
        ]
        if r.answered_at is not None:
            lines.append(("answered", f"{moment(r.answered_at)} by {r.answered_by}"))
        if r.correction_id:
            lines.append(("corrected by", f"index refresh {r.correction_id}"))
        if r.answer:
            lines.append(("reason" if r.status == "rejected" else "note", r.answer))
        refreshes = store.index_loads_since(session, r)
    for title, value in lines:
        click.echo(f"{title:<12} {value}")
    if r.status == ReportStatus.PENDING.value:
        click.echo("index refreshes of the resource since the comparison:")
        for load in refreshes:
            click.echo(f"  {load.comparison_id}  {moment(load.occurred_at)}  {load.reason}")
        if not refreshes:
            click.echo("  none (bidui provider load records one)")


@discrepancies.command("confirm")
@config_option()
@click.argument("report_id", metavar="ID")
@_NOTE
@operator_option
def confirm(config_path: Path, report_id: str, note: str | None, operator: str | None) -> None:
    """The doubted results were wrong, and are not corrected yet: say what follows in --note.

    Once an index refresh has corrected them, answer with `correct` instead. Recorded in the audit
    log, in the same transaction; an answer is final.
    """
    with governance(config_path, operator) as act:
        report = answers.confirm(
            act.audit, report_id, operator=act.operator, now=act.now, note=note
        )
    _answered(report, act.today)


@discrepancies.command("correct")
@config_option()
@click.argument("report_id", metavar="ID")
@click.option(
    "--refresh",
    "refresh_id",
    required=True,
    metavar="RECORD_ID",
    help="The audit record id of the index_load that corrected the results (see `show`).",
)
@_NOTE
@operator_option
def correct(
    config_path: Path, report_id: str, refresh_id: str, note: str | None, operator: str | None
) -> None:
    """The doubted results were wrong and an index refresh of the resource, after the comparison,
    corrected them: the department compares again. Recorded in the audit log, in the same
    transaction, naming the refresh; an answer is final."""
    with governance(config_path, operator) as act:
        report = answers.correct(
            act.audit, report_id, refresh_id, operator=act.operator, now=act.now, note=note
        )
    _answered(report, act.today)


@discrepancies.command("reject")
@config_option()
@click.argument("report_id", metavar="ID")
@reason_option("the department reads it (article 26)")
@operator_option
def reject(config_path: Path, report_id: str, reason: str, operator: str | None) -> None:
    """The doubted results stand: give the reason the department will read.

    Recorded in the audit log with its reason, in the same transaction; an answer is final.
    """
    with governance(config_path, operator) as act:
        report = answers.reject(act.audit, report_id, reason, operator=act.operator, now=act.now)
    _answered(report, act.today)


def _answered(report: DiscrepancyReport, today: _dt.date) -> None:
    click.echo(
        f"Report {report.id} of {report.department} on {report.resource_id}: {report.status} "
        f"({standing(report, today)})"
    )
    if report.answer:
        click.echo(f"  {report.answer}")
