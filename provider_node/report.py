"""The quarterly sharing report (article 36): what the audit log says happened in a quarter.

Built from ``AuditLog.summarise`` (grouped counts, never a record's purpose or payload) and
stamped with the result of verifying the chain, so a report from a tampered log says so.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from provider_node.audit import ChainReport, SummaryRow

_QUARTER = re.compile(r"(\d{4})-?Q([1-4])", re.IGNORECASE)


def quarter_bounds(text: str) -> tuple[datetime, datetime]:
    """``2026Q4`` or ``2026-Q4`` -> [start, end) in UTC; ``ValueError`` otherwise."""
    match = _QUARTER.fullmatch(text.strip())
    if match is None:
        raise ValueError("a quarter is written like 2026Q4")
    year, quarter = int(match.group(1)), int(match.group(2))
    start = datetime(year, 3 * quarter - 2, 1, tzinfo=UTC)
    end = (
        datetime(year + 1, 1, 1, tzinfo=UTC)
        if quarter == 4
        else start.replace(month=start.month + 3)
    )
    return start, end


@dataclass(frozen=True)
class QuarterlyReport:
    quarter: str
    start: datetime
    end: datetime
    department: str
    chain: ChainReport
    rows: list[SummaryRow]

    def write_text(self, out: TextIO) -> None:
        """A page a compliance officer can read and file."""
        comparisons = [r for r in self.rows if r.action == "comparison"]
        out.write(
            f"bidui quarterly sharing report (article 36): {self.department}, {self.quarter}\n"
        )
        out.write(f"period: {self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} (UTC, end exclusive)\n")
        if self.chain.ok:
            out.write(f"audit chain: OK, {self.chain.records_checked} records verified\n\n")
        else:
            out.write(
                f"audit chain: BROKEN at record seq {self.chain.first_bad_seq}: "
                f"{self.chain.reason}. The figures below come from a log that was altered.\n\n"
            )
        answered: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for row in comparisons:
            if row.outcome == "answered":
                totals = answered[(row.requester, row.resource_id, row.mode)]
                totals[0] += row.records
                totals[1] += row.items
                totals[2] += row.matches
        out.write("comparisons answered\n")
        out.write(
            f"  {'requester':<28} {'resource':<20} {'mode':<8} "
            f"{'requests':>9} {'items':>12} {'matches':>12}\n"
        )
        for (requester, resource, mode), (requests, items, matches) in sorted(answered.items()):
            out.write(
                f"  {requester:<28} {resource:<20} {mode:<8} "
                f"{requests:>9,} {items:>12,} {matches:>12,}\n"
            )
        if not answered:
            out.write("  none\n")
        refused: dict[tuple[str, str, str], int] = defaultdict(int)
        for row in comparisons:
            if row.outcome != "answered":
                refused[(row.requester or "(unauthenticated)", row.outcome, row.status_code)] += (
                    row.records
                )
        out.write("\ncomparisons refused, failed or abandoned\n")
        for (requester, outcome, status), count in sorted(refused.items()):
            out.write(f"  {requester:<28} {outcome:<10} {status:<22} {count:>9,}\n")
        if not refused:
            out.write("  none\n")
        governance: dict[tuple[str, str], int] = defaultdict(int)
        for row in self.rows:
            if row.action != "comparison":
                governance[(row.action, row.outcome)] += row.records
        out.write("\nother audited actions\n")
        for (action, outcome), count in sorted(governance.items()):
            out.write(f"  {action:<28} {outcome:<10} {count:>9,}\n")
        if not governance:
            out.write("  none\n")

    def write_csv(self, out: TextIO) -> None:
        """The grouped counts, one row per group, for a spreadsheet."""
        writer = csv.writer(out)
        writer.writerow(["quarter", *SummaryRow._fields])
        for row in self.rows:
            writer.writerow([self.quarter, *(_cell(value) for value in row)])


def _cell(value: object) -> object:
    """Keep a spreadsheet from reading requester-supplied text (an unknown resource name) as a
    formula: the report is for reading, unlike an export, whose values must hash as stored."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
