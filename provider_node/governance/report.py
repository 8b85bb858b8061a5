"""The sharing report (article 36): what the audit log says happened in a quarter or a year.

Periods are China's (a quarter starts at 00:00 Beijing time on its first day), the words Chinese
by default (``report_labels``).

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
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TextIO

from provider_node.audit.log import AuditLog, SummaryRow
from provider_node.audit.records import ChainReport
from provider_node.core.vocabulary import Action, Outcome
from provider_node.core.workdays import CHINA_TZ, china_date, china_midnight
from provider_node.governance import grant_lookup
from provider_node.governance.discrepancy_records import DiscrepancyCounts, report_counts
from provider_node.governance.grant_lookup import ApplicationCounts
from provider_node.governance.report_labels import Language, label

__all__ = ["CSV_FIELDS", "SharingReport", "build_report", "period_bounds"]

_PERIOD = re.compile(r"(\d{4})(?:-?Q([1-4]))?", re.IGNORECASE)
#: The CSV's columns: ``count`` is how many comparisons (or actions) the row stands for, so the
#: column sums to them; ``items`` the items compared, ``matches`` those matched.
CSV_FIELDS = (
    "period", "action", "requester", "resource_id", "grant_id", "mode", "outcome", "status_code",
    "count", "items", "matches",
)  # fmt: skip

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
# One source's repeated refusals counted over a window: ``items`` is how many (refusal_tally.py).
_REFUSALS = Action.REFUSALS
# A blinded comparison's first step: its own record (answered, refused…) follows and is counted.
_OPENED = Outcome.OPENED


def period_bounds(text: str) -> tuple[str, datetime, datetime]:
    """``2026Q4`` (or ``2026-q4``) or ``2026`` -> (its name, start, end): China midnights, as
    aware instants, end exclusive. ``ValueError`` otherwise."""
    match = _PERIOD.fullmatch(text.strip())
    if match is None:
        raise ValueError("a period is a quarter, written like 2026Q4, or a year, like 2026")
    year = int(match.group(1))
    if match.group(2) is None:
        return f"{year}", china_midnight(date(year, 1, 1)), china_midnight(date(year + 1, 1, 1))
    quarter = int(match.group(2))
    first = date(year, 3 * quarter - 2, 1)
    after = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return f"{year}Q{quarter}", china_midnight(first), china_midnight(after)


def build_report(
    log: AuditLog, period: str, department: str, *, now: datetime, lang: Language = "zh"
) -> SharingReport:
    """Verify the chain and count ``period`` (``2026Q4`` or ``2026``): its audit records, the
    applications decided in it, and those pending at its end (or at ``now``, for a period not
    yet over).

    ``ValueError`` for a period written otherwise; ``AuditUnavailableError`` when the store
    cannot be read.
    """
    name, start, end = period_bounds(period)
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
    return SharingReport(
        name, start, end, department, chain, rows, applications, as_of, discrepancies, lang
    )


@dataclass(frozen=True)
class SharingReport:
    #: ``2026Q4`` or ``2026``.
    period: str
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
    lang: Language = "zh"

    def _(self, text: str, **values: object) -> str:
        return label(text, self.lang, **values)

    def write_text(self, out: TextIO) -> None:
        """A page a compliance officer can read and file."""
        _ = self._
        kind = "annual" if "Q" not in self.period else "quarterly"
        out.write(f"bidui {_(f'{kind} sharing report (article 36)')}\n")
        out.write(f"{_('provider')}: {self.department}    {self.period}\n")
        last_day = china_date(self.end) - timedelta(days=1)
        out.write(
            f"{_('period')}: {china_date(self.start):%Y-%m-%d} – {last_day:%Y-%m-%d} "
            f"({_('China time')})\n"
        )
        if self.chain.ok:
            verdict = _("OK, {n} records verified", n=self.chain.records_checked)
        else:
            verdict = _(
                "BROKEN at record seq {seq}: {reason}. The figures below come from a log that "
                "was altered.",
                seq=self.chain.first_bad_seq,
                reason=self.chain.reason,
            )
        out.write(f"{_('audit chain')}: {verdict}\n")
        comparisons = [r for r in self.rows if r.action == _COMPARISON and r.outcome != _OPENED]
        self._write_answered(out, comparisons)
        self._write_refused(out, comparisons, [r for r in self.rows if r.action == _REFUSALS])
        self._write_sharing(out)
        self._write_grants(out, comparisons)
        self._write_discrepancies(out)
        self._write_certificates(out)
        self._write_other(out)

    def write_csv(self, out: TextIO) -> None:
        """One row per group of comparisons or actions (``CSV_FIELDS``): a blinded comparison's
        opening is left out (its own record counts it), and a ``refusals`` record counts the
        refusals it stands for, so ``count`` sums to the comparisons and actions of the period."""
        writer = csv.writer(out)
        writer.writerow(CSV_FIELDS)
        for row in self.rows:
            if row.action == _COMPARISON and row.outcome == _OPENED:
                continue
            windows = row.action == _REFUSALS
            count, items = (row.items, 0) if windows else (row.records, row.items)
            cells = (
                self.period, row.action, row.requester, row.resource_id, row.grant_id, row.mode,
                row.outcome, row.status_code, count, items, row.matches,
            )  # fmt: skip
            writer.writerow(_cell(value) for value in cells)

    # ---- the sections of the page ------------------------------------------------------------

    def _write_answered(self, out: TextIO, comparisons: list[SummaryRow]) -> None:
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
        header = self._columns(
            ("requester", 28), ("resource", 20), ("mode", 8), ("requests", -9), ("items", -12),
            ("matches", -12),
        )  # fmt: skip
        self._section(out, "comparisons answered", lines, header)

    def _write_refused(
        self, out: TextIO, comparisons: list[SummaryRow], windows: list[SummaryRow]
    ) -> None:
        refused: dict[tuple[str, str, str], int] = defaultdict(int)
        for row in comparisons:
            if row.outcome != Outcome.ANSWERED:
                requester = row.requester or self._("(unauthenticated)")
                refused[(requester, row.outcome, row.status_code)] += row.records
        for row in windows:  # each record stands for ``items`` refusals
            requester = row.requester or self._("(unauthenticated)")
            refused[(requester, row.outcome, row.status_code)] += row.items
        lines = [
            f"{_ljust(requester, 28)} {_ljust(self._(outcome), 10)} {status:<22} {count:>9,}"
            for (requester, outcome, status), count in sorted(refused.items())
        ]
        self._section(out, "comparisons refused, failed or abandoned", lines)

    def _write_sharing(self, out: TextIO) -> None:
        counts = self.applications
        share = counts.share_decided_on_time
        lines = [
            self._figure(text, self._count(action)) for action, text in _SHARING_ACTIONS.items()
        ]
        lines += [
            self._figure("applications decided", counts.decided),
            self._figure(
                "  within 5 working days (on time)",
                counts.decided_on_time,
                "" if share is None else self._("{share} of those decided", share=f"{share:.1%}"),
            ),
            self._figure("applications pending", counts.pending, self._at()),
            self._figure("  past their deadline (overdue)", counts.overdue),
            self._figure("grants revoked", self._count(_GRANT_REVOCATION)),
        ]
        self._section(out, "conditional sharing (article 25)", lines)

    def _write_grants(self, out: TextIO, comparisons: list[SummaryRow]) -> None:
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
        header = self._columns(
            ("grant", 36), ("requester", 28), ("resource", 20), ("answered", -9), ("items", -12),
            ("refused", -9),
        )  # fmt: skip
        self._section(out, "comparisons per grant", lines, header)

    def _write_discrepancies(self, out: TextIO) -> None:
        counts = self.discrepancies
        share = counts.answered_on_time / counts.answered if counts.answered else None
        lines = [
            self._figure("reports of doubted results filed", counts.filed),
            self._figure("reports answered", counts.answered),
            self._figure(
                "  within 5 working days (on time)",
                counts.answered_on_time,
                "" if share is None else self._("{share} of those answered", share=f"{share:.1%}"),
            ),
            self._figure("reports pending", counts.pending, self._at()),
            self._figure("  past their deadline (overdue)", counts.overdue),
        ]
        self._section(out, "discrepancy reports (article 26)", lines)

    def _write_certificates(self, out: TextIO) -> None:
        lines = [
            self._figure(text, self._count(action)) for action, text in _CERTIFICATE_ACTIONS.items()
        ]
        self._section(out, "department certificates", lines)

    def _write_other(self, out: TextIO) -> None:
        shown = {
            _COMPARISON,
            _REFUSALS,
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
        self._section(out, "other audited actions", lines)

    def _figure(self, text: str, value: int, note: str = "") -> str:
        return f"{_ljust(self._(text), 36)} {value:>9,}" + (f"  ({note})" if note else "")

    def _columns(self, *columns: tuple[str, int]) -> str:
        """The header of a table: each name translated, left-aligned to its width (right-aligned
        for a negative width)."""
        return " ".join(
            _ljust(self._(name), width) if width > 0 else _rjust(self._(name), -width)
            for name, width in columns
        )

    def _at(self) -> str:
        moment = self.as_of.astimezone(CHINA_TZ)
        return self._("at {moment}", moment=f"{moment:%Y-%m-%d %H:%M}")

    def _section(self, out: TextIO, title: str, lines: Iterable[str], header: str = "") -> None:
        """A blank line, the title, the column header if any, the lines indented (or "none")."""
        out.write(f"\n{self._(title)}\n")
        if header:
            out.write(f"  {header}\n")
        written = False
        for line in lines:
            out.write(f"  {line}\n")
            written = True
        if not written:
            out.write(f"  {self._('none')}\n")

    def _count(self, action: str) -> int:
        """Records of a governance ``action`` done (answered) in the quarter."""
        return sum(
            r.records for r in self.rows if r.action == action and r.outcome == Outcome.ANSWERED
        )


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _ljust(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _rjust(text: str, width: int) -> str:
    return " " * max(0, width - _width(text)) + text


def _cell(value: object) -> object:
    """Keep a spreadsheet from reading requester-supplied text (an unknown resource name) as a
    formula: the report is for reading, unlike an export, whose values must hash as stored."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
