"""``bidui discrepancy file | show | list``: a requesting department's reports of results it doubts
(article 26).

```
bidui compare …                        prints the request id and one comparison id per request
bidui discrepancy file --comparison ID --positions 0,4,10-12 --description "…"
    -> pending; within 3 Chinese working days of the comparison only; answer due 5 working days on
bidui discrepancy list [--comparison ID] | show REPORT_ID     status, deadline, the answer
```

A position is an item's place within that comparison (0 is its first item): a row of the input
CSV only while no row before it was invalid and the input fit in one request. The description
says in words what seems wrong: never record values (the node refuses six digits in a row). The
provider's operator answers on the node's machine (``bidui provider discrepancies``). Failures end
as ``compare``'s do (``connection.reported``): exit code 2 for a mistake to fix, 1 for a failure
of the service.
"""

from __future__ import annotations

import click

from bidui_cli import terminal
from bidui_cli.department.connection import NodeAddress, node_options, reported
from bidui_cli.discrepancy_text import positions_text, standing
from bidui_cli.errors import fail
from bidui_cli.terminal import deadline, moment, required_text
from client_sdk.governance.discrepancies import DiscrepancyReport, DiscrepancyStatus
from comparator.china_time import china_date

__all__ = ["discrepancy"]

_TIMEOUT = 30.0
_MAX_POSITION = 2**32 - 1


def _positions(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[int]:
    """``0,4,10-12`` -> [0, 4, 10, 11, 12]."""
    if value is None or not value.strip():
        fail("--positions is required: the doubted items' places in the comparison, e.g. 0,4,10-12")
    places: list[int] = []
    for part in (p.strip() for p in value.split(",")):
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            fail(f"--positions: {part!r} is not a position (0, 4) or a range (10-12)")
        if not 0 <= low <= high <= _MAX_POSITION or high - low >= 10_000:
            fail(f"--positions: {part!r} is not a range of positions from 0")
        places.extend(range(low, high + 1))
    return places


def _deadline(report: DiscrepancyReport) -> str:
    return deadline(report.answer_deadline, report.deadlines_provisional)


def _print(report: DiscrepancyReport) -> None:
    today = china_date(terminal.clock())
    lines = [
        ("report", report.id),
        ("comparison", f"{report.comparison_id} ({moment(report.compared_at)})"),
        ("resource", report.resource_id),
        ("positions", positions_text(report.positions)),
        ("description", report.description),
        ("filed", moment(report.filed_at)),
        ("deadline", f"{_deadline(report)} ({standing(report, today)})"),
        ("status", report.status.value),
    ]
    if report.answered_at is not None:
        lines.append(("answered", moment(report.answered_at)))
    if report.correction_id:
        lines.append(("corrected by", f"index refresh {report.correction_id}: compare again"))
    if report.answer:
        title = "reason" if report.status is DiscrepancyStatus.REJECTED else "note"
        lines.append((title, report.answer))
    for title, value in lines:
        click.echo(f"{title:<12} {value}")


@click.group("discrepancy")
def discrepancy() -> None:
    """Report results you doubt within 3 working days, and read the provider's answer."""


@discrepancy.command("file")
@node_options
@click.option(
    "--comparison",
    "comparison_id",
    required=True,
    metavar="ID",
    help="The comparison id (bidui compare prints one per request).",
)
@click.option(
    "--positions",
    callback=_positions,
    metavar="LIST",
    help="The doubted items' places in that comparison, from 0: e.g. 0,4,10-12.",
)
@click.option(
    "--description",
    callback=required_text,
    help="What seems wrong, in words (required); no record values.",
)
def file_report(
    node: NodeAddress, comparison_id: str, positions: list[int], description: str
) -> None:
    """Report results of one of your comparisons that you doubt (article 26).

    Within 3 Chinese working days of the comparison. The provider answers within 5 working days:
    confirmed (the results were wrong), corrected (by a refresh of its index: compare again), or
    rejected with its reason. Report once: a report whose answer was lost may already be on
    record, so look at `bidui discrepancy list` before reporting again.
    """
    with reported(), node.client(timeout=_TIMEOUT) as client:
        report = client.report_discrepancy(comparison_id, positions, description)
    click.echo(f"Reported {len(report.positions)} doubted results: report {report.id}")
    click.echo(f"  answer due by {_deadline(report)} (5 working days, China time)")
    click.echo(f"  see it with: bidui discrepancy show {report.id}")


@discrepancy.command("show")
@node_options
@click.argument("report_id", metavar="REPORT_ID")
def show(node: NodeAddress, report_id: str) -> None:
    """One of your reports, whole: what was doubted, the deadline, the answer. Changes nothing."""
    with reported(), node.client(timeout=_TIMEOUT) as client:
        report = client.discrepancy(report_id)
    _print(report)


@discrepancy.command("list")
@node_options
@click.option("--comparison", "comparison_id", metavar="ID", default=None, help="Only on this.")
def list_reports(node: NodeAddress, comparison_id: str | None) -> None:
    """Your reports, oldest first: status, answer deadline, the answer. Changes nothing."""
    with reported(), node.client(timeout=_TIMEOUT) as client:
        found = client.discrepancies(comparison_id)
    if not found:
        click.echo("no discrepancy reports")
        return
    today = china_date(terminal.clock())
    terminal.table(
        ("id", "comparison", "items", "filed", "deadline", "status", "answer / standing"),
        [
            (
                r.id,
                r.comparison_id,
                len(r.positions),
                china_date(r.filed_at),
                _deadline(r),
                r.status.value,
                r.answer or r.correction_id or standing(r, today),
            )
            for r in found
        ],
    )
