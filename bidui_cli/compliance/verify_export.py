"""``bidui audit verify-export FILE``: check an export of the audit log offline, with no node, no
database and no configuration: every record's hash over its own fields and every link to the
record before it (docs/audit-export.md says how, so anyone can check it without bidui).

Exit codes: 0 the export is whole; 1 a record was altered, removed, inserted or reordered (named by
its seq); 2 the file cannot be read or is not an export.
"""

from __future__ import annotations

from pathlib import Path

import click

from bidui_cli.errors import fail
from provider_node.audit.records import ExportFormat, verify_export

__all__ = ["verify_export_command"]


def _format_of(path: Path, given: str) -> ExportFormat:
    if given != "auto":
        return "csv" if given == "csv" else "jsonl"
    if path.suffix.lower() == ".csv":
        return "csv"
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    with path.open(encoding="utf-8", errors="replace") as handle:
        first = handle.read(1)
    return "jsonl" if first == "{" else "csv"


@click.command("verify-export")
@click.argument("export_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "csv"]),
    default="auto",
    show_default=True,
    help="The export's format; auto: from the file name, else from its first character.",
)
def verify_export_command(export_file: Path, fmt: str) -> None:
    """Check an export (`bidui audit export`) offline: every record's hash and every link.

    An export of a time range starts after seq 1: its first record's link to the one before it
    is taken as written, and the links from there on are checked. Compare its last record's hash
    with a signed checkpoint (`bidui audit checkpoint`) to know nothing was cut from its end.

    \b
      bidui audit verify-export q4.csv
    """
    chosen = _format_of(export_file, fmt)
    try:
        with export_file.open(encoding="utf-8", newline="") as handle:
            report = verify_export(handle, chosen)
    except UnicodeDecodeError:
        fail(f"{export_file}: not UTF-8 text, so not an export of the audit log")
    except OSError as exc:
        fail(f"cannot read {export_file}: {exc.strerror}")
    if not report.ok:
        where = f" at record seq {report.first_bad_seq}" if report.first_bad_seq else ""
        click.echo(f"export BROKEN{where}: {report.reason}")
        raise SystemExit(1)
    if report.records_checked == 0:
        fail(f"{export_file}: no audit records in it")
    click.echo(f"export OK: {report.records_checked} records, each hash and link checked")
