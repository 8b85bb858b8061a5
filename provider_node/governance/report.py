"""The quarterly sharing report (article 36): what the audit log says happened in a quarter.

Built from ``AuditLog.summarise`` (grouped counts, never a record's purpose or payload) and the
applications decided in the quarter or pending at its end (``grant_lookup.application_counts``), and
stamped with the result of verifying the chain, so a report from a tampered log says so. A page::

    comparisons answered                 requests, items, matches per requester, resource, mode
    comparisons refused, failed or …     records per requester, outcome and status
    conditional sharing (article 25)     applications submitted, approved, refused; the share
                                         decided within 5 working days; pending and overdue at
                                         the quarter's end; grants revoked
    comparisons per grant                what each grant was used for: answered, items, refused
    discrepancy reports (article 26)     filed, answered, the share answered within 5 working
                                         days; pending and overdue at the quarter's end
    certificates                         department certificates signed and revoked
    other audited actions                the rest, by action and outcome
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from provider_node.audit.log import AuditLog, SummaryRow
from provider_node.audit.records import ChainReport
from provider_node.core.vocabulary import Action, Outcome
from provider_node.core.workdays import china_date
from provider_node.governance import grant_lookup
from provider_node.governance.discrepancy_records import DiscrepancyCounts, report_counts
from provider_node.governance.grant_lookup import ApplicationCounts

__all__ = ["QuarterlyReport", "build_report", "quarter_bounds"]

_QUARTER = re.compile(r"(\d{4})-?Q([1-4])", re.IGNORECASE)

# Governance actions the page counts in sections of their own (governance/sharing.py and
# identity/enrolment.py write them); every other action is listed under "other audited actions".
_SHARING_ACTIONS = {
    Action.APPLICATION: "applications submitted",
    Action.APPLICATION_APPROVAL: "applications approved",
    Action.APPLICATION_REFUSAL: "applications refused",
}
_GRANT_REVOCATION = Action.GRANT_REVOCATION
_DISCREPANCY_ACTIONS = (Action.DISCREPANCY_REPORT, Action.DISCREPANCY_ANSWER)
_CERTIFICATE_ACTIONS = {
    Action.CERTIFICATE_SIGNING: "certificates signed",
    Action.CERTIFICATE_REVOCATION: "certificates revoked",
}
_COMPARISON = Action.COMPARISON
# A blinded comparison's first step: its own record (answered, refused…) follows and is counted.
_OPENED = Outcome.OPENED


def quarter_bounds(text: str) -> tuple[datetime, datetime]:
    """``2026Q4`` or ``2026-Q4`` -> [start, end) in UTC; ``ValueError`` otherwise."""
    year, quarter = _parse_quarter(text)
    start = datetime(year, 3 * quarter - 2, 1, tzinfo=UTC)
    end = (
        datetime(year + 1, 1, 1, tzinfo=UTC)
        if quarter == 4
        else start.replace(month=start.month + 3)
    )
    return start, end


def _parse_quarter(text: str) -> tuple[int, int]:
    match = _QUARTER.fullmatch(text.strip())
    if match is None:
        raise ValueError("a quarter is written like 2026Q4")
    return int(match.group(1)), int(match.group(2))


def build_report(log: AuditLog, quarter: str, department: str, *, now: datetime) -> QuarterlyReport:
    """Verify the chain and count ``quarter`` (``2026Q4``): its audit records, the applications
    decided in it, and those pending at its end (or at ``now``, for a quarter not yet over).

    ``ValueError`` for a quarter written otherwise; ``AuditUnavailableError`` when the store
    cannot be read.
    """
    year, number = _parse_quarter(quarter)
    start, end = quarter_bounds(quarter)
    chain = log.verify()
    rows = log.summarise(start, end)
    as_of = min(end, now)
    applications = log.read(
        lambda session: grant_lookup.application_counts(
            session, china_date(as_of), decided_from=start, decided_before=end, as_of=as_of
        )
    )
    discrepancies = log.read(
        lambda session: report_counts(
            session, china_date(as_of), since=start, before=end, as_of=as_of
        )
    )
    return QuarterlyReport(
        f"{year}Q{number}", start, end, department, chain, rows, applications, as_of, discrepancies
    )


@dataclass(frozen=True)
class QuarterlyReport:
    quarter: str
    start: datetime
    end: datetime
    department: str
    chain: ChainReport
    rows: list[SummaryRow]
    #: Decided: those decided in the quarter; pending and overdue: at ``as_of``.
    applications: ApplicationCounts
    #: The quarter's end, or the time of the report when the quarter is not over.
    as_of: datetime
    #: Filed and answered: in the quarter; pending and overdue: at ``as_of``.
    discrepancies: DiscrepancyCounts

    def write_text(self, out: TextIO) -> None:
        """A page a compliance officer can read and file."""
        out.write(
            f"bidui quarterly sharing report (article 36): {self.department}, {self.quarter}\n"
        )
        out.write(f"period: {self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} (UTC, end exclusive)\n")
        if self.chain.ok:
            out.write(f"audit chain: OK, {self.chain.records_checked} records verified\n")
        else:
            out.write(
                f"audit chain: BROKEN at record seq {self.chain.first_bad_seq}: "
                f"{self.chain.reason}. The figures below come from a log that was altered.\n"
            )
        comparisons = [r for r in self.rows if r.action == _COMPARISON and r.outcome != _OPENED]
        self._write_answered(out, comparisons)
        self._write_refused(out, comparisons)
        self._write_sharing(out)
        self._write_grants(out, comparisons)
        self._write_discrepancies(out)
        self._write_certificates(out)
        self._write_other(out)

    def write_csv(self, out: TextIO) -> None:
        """The grouped counts, one row per group, for a spreadsheet."""
        writer = csv.writer(out)
        writer.writerow(["quarter", *SummaryRow._fields])
        for row in self.rows:
            writer.writerow([self.quarter, *(_cell(value) for value in row)])

    # ---- the sections of the page ------------------------------------------------------------

    @staticmethod
    def _write_answered(out: TextIO, comparisons: list[SummaryRow]) -> None:
        answered: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for row in comparisons:
            if row.outcome == Outcome.ANSWERED:
                totals = answered[(row.requester, row.resource_id, row.mode)]
                totals[0] += row.records
                totals[1] += row.items
                totals[2] += row.matches
        lines = [
            f"{requester:<28} {resource:<20} {mode:<8} {requests:>9,} {items:>12,} {matches:>12,}"
            for (requester, resource, mode), (requests, items, matches) in sorted(answered.items())
        ]
        header = (
            f"{'requester':<28} {'resource':<20} {'mode':<8} "
            f"{'requests':>9} {'items':>12} {'matches':>12}"
        )
        _section(out, "comparisons answered", lines, header)

    @staticmethod
    def _write_refused(out: TextIO, comparisons: list[SummaryRow]) -> None:
        refused: dict[tuple[str, str, str], int] = defaultdict(int)
        for row in comparisons:
            if row.outcome != Outcome.ANSWERED:
                requester = row.requester or "(unauthenticated)"
                refused[(requester, row.outcome, row.status_code)] += row.records
        lines = [
            f"{requester:<28} {outcome:<10} {status:<22} {count:>9,}"
            for (requester, outcome, status), count in sorted(refused.items())
        ]
        _section(out, "comparisons refused, failed or abandoned", lines)

    def _write_sharing(self, out: TextIO) -> None:
        counts = self.applications
        share = counts.share_decided_on_time
        lines = [_figure(label, self._count(action)) for action, label in _SHARING_ACTIONS.items()]
        lines += [
            _figure("applications decided", counts.decided),
            _figure(
                "  within 5 working days (on time)",
                counts.decided_on_time,
                "" if share is None else f"{share:.1%} of those decided",
            ),
            _figure("applications pending", counts.pending, f"at {self.as_of:%Y-%m-%d %H:%M} UTC"),
            _figure("  past their deadline (overdue)", counts.overdue),
            _figure("grants revoked", self._count(_GRANT_REVOCATION)),
        ]
        _section(out, "conditional sharing (article 25)", lines)

    @staticmethod
    def _write_grants(out: TextIO, comparisons: list[SummaryRow]) -> None:
        per_grant: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for row in comparisons:
            if row.grant_id:
                totals = per_grant[(row.grant_id, row.requester, row.resource_id)]
                if row.outcome == Outcome.ANSWERED:
                    totals[0] += row.records
                    totals[1] += row.items
                else:
                    totals[2] += row.records
        lines = [
            f"{grant:<36} {requester:<28} {resource:<20} {answered:>9,} {items:>12,} {refused:>9,}"
            for (grant, requester, resource), (answered, items, refused) in sorted(
                per_grant.items()
            )
        ]
        header = (
            f"{'grant':<36} {'requester':<28} {'resource':<20} "
            f"{'answered':>9} {'items':>12} {'refused':>9}"
        )
        _section(out, "comparisons per grant", lines, header)

    def _write_discrepancies(self, out: TextIO) -> None:
        counts = self.discrepancies
        share = counts.answered_on_time / counts.answered if counts.answered else None
        lines = [
            _figure("reports of doubted results filed", counts.filed),
            _figure("reports answered", counts.answered),
            _figure(
                "  within 5 working days (on time)",
                counts.answered_on_time,
                "" if share is None else f"{share:.1%} of those answered",
            ),
            _figure("reports pending", counts.pending, f"at {self.as_of:%Y-%m-%d %H:%M} UTC"),
            _figure("  past their deadline (overdue)", counts.overdue),
        ]
        _section(out, "discrepancy reports (article 26)", lines)

    def _write_certificates(self, out: TextIO) -> None:
        lines = [
            _figure(label, self._count(action)) for action, label in _CERTIFICATE_ACTIONS.items()
        ]
        _section(out, "department certificates", lines)

    def _write_other(self, out: TextIO) -> None:
        shown = {
            _COMPARISON,
            _GRANT_REVOCATION,
            *_SHARING_ACTIONS,
            *_CERTIFICATE_ACTIONS,
            *_DISCREPANCY_ACTIONS,
        }
        governance: dict[tuple[str, str], int] = defaultdict(int)
        for row in self.rows:
            if row.action not in shown:
                governance[(row.action, row.outcome)] += row.records
        lines = [
            f"{action:<28} {outcome:<10} {count:>9,}"
            for (action, outcome), count in sorted(governance.items())
        ]
        _section(out, "other audited actions", lines)

    def _count(self, action: str) -> int:
        """Records of a governance ``action`` done (answered) in the quarter."""
        return sum(
            r.records for r in self.rows if r.action == action and r.outcome == Outcome.ANSWERED
        )


def _figure(label: str, value: int, note: str = "") -> str:
    return f"{label:<36} {value:>9,}" + (f"  ({note})" if note else "")


def _section(out: TextIO, title: str, lines: Iterable[str], header: str = "") -> None:
    """A blank line, the title, the column header if any, the lines indented (or "none")."""
    out.write(f"\n{title}\n")
    if header:
        out.write(f"  {header}\n")
    written = False
    for line in lines:
        out.write(f"  {line}\n")
        written = True
    if not written:
        out.write("  none\n")


def _cell(value: object) -> object:
    """Keep a spreadsheet from reading requester-supplied text (an unknown resource name) as a
    formula: the report is for reading, unlike an export, whose values must hash as stored."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
