"""``bidui audit``: the compliance officer's commands: verify, export and report on the audit log.

Exit codes: 0 success; 1 the audit chain is broken (``verify``, ``report``); 2 a usage problem (bad
configuration, unreachable or uninitialised database), reported as one line per problem on stderr.
No command writes to the audit database.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn, TextIO

import click
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bidui_cli.compliance.verify_export import verify_export_command
from bidui_cli.options import config_option
from provider_node.audit.checkpoints import (
    CHECKPOINT_FILE,
    load_signing_key,
    verify_checkpoints,
    write_checkpoint,
)
from provider_node.audit.log import AuditLog, AuditUnavailableError
from provider_node.audit.records import ExportFormat
from provider_node.comparison.open_comparisons import comparison_states
from provider_node.config import AuditConfig, ConfigError, load_config
from provider_node.governance.report import build_report, period_bounds
from provider_node.identity.certificates import revocations_undone
from provider_node.resources.keys import KeyStoreError
from provider_node.store.engine import make_engine, session_factory

__all__ = ["audit"]

_USAGE_ERROR = 2
_CHAIN_BROKEN = 1


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(_USAGE_ERROR)


def _audit_config(config_file: Path) -> AuditConfig:
    """The ``[audit]`` section of the node configuration: env overrides applied, paths resolved."""
    try:
        return load_config(config_file).audit
    except ConfigError as exc:
        _fail("\n".join(exc.problems))


@contextmanager
def _audit_log(config_file: Path) -> Iterator[AuditLog]:
    settings = _audit_config(config_file)
    url = settings.database_url
    try:
        parsed: URL = make_url(url)
    except (ArgumentError, ValueError):
        _fail(f"{config_file}: audit.database_url: is not a valid SQLAlchemy database URL")
    where = parsed.render_as_string(hide_password=True)
    database = parsed.database
    in_memory = database in (None, "", ":memory:")
    # Opening a missing SQLite file would create an empty one and report an empty, valid log.
    if (
        parsed.get_backend_name() == "sqlite"
        and not in_memory
        and not Path(str(database)).is_file()
    ):
        _fail(f"audit database {database} does not exist")
    try:
        engine = make_engine(url)
    except (ArgumentError, ImportError, ValueError) as exc:
        _fail(f"cannot use audit database {where}: {exc}")
    try:
        yield AuditLog(session_factory(engine), retention_days=settings.retention_days)
    except AuditUnavailableError as exc:
        _fail(f"cannot read the audit log at {where}: {exc.detail}")
    finally:
        engine.dispose()


def _parse_time(_ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            "expected an ISO 8601 date or time, e.g. 2025-01-01 or 2025-01-01T08:00:00+08:00",
            param=param,
        ) from None
    # A time without an offset is taken as UTC, the time zone the audit log is kept in.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


_config_option = config_option(
    "The node's TOML configuration; its [audit] database_url names the audit database.",
    name="config_file",
)


@click.group(name="audit")
def audit() -> None:
    """Verify, export and report on the tamper-evident audit log (articles 34-36)."""


@audit.command()
@_config_option
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Signed checkpoints to hold the log to (default: the node's data_dir/"
    f"{CHECKPOINT_FILE}, when it exists). Catches records cut from the end with the head rewound.",
)
@click.option(
    "--public-key",
    metavar="HEX",
    help="The node's checkpoint public key as the compliance office keeps it (hex, 32 bytes).",
)
def verify(config_file: Path, checkpoint_file: Path | None, public_key: str | None) -> None:
    """Check the hash chain of the whole audit log, and the log against its signed checkpoints.

    Also counts blinded comparisons still open, abandoned, and answers withheld. Exits 0 when every
    record is intact, 1 naming the first bad record when any record was edited, deleted or
    inserted (or the log no longer reaches a checkpoint), 2 when the log cannot be read.
    """
    path = checkpoint_file or _node_checkpoints(config_file)
    key, whose = _checkpoint_key(config_file, public_key)
    with _audit_log(config_file) as log:
        report = log.verify()
        states = log.read(comparison_states)
        undone = log.read(revocations_undone)
        checked = None
        if path is not None and key is not None:
            checked = verify_checkpoints(log, path, public_key=key)
    if not report.ok:
        where = f" at record seq {report.first_bad_seq}" if report.first_bad_seq is not None else ""
        click.echo(f"audit chain BROKEN{where}: {report.reason}")
        raise SystemExit(_CHAIN_BROKEN)
    click.echo(f"audit chain OK: {report.records_checked} records")
    click.echo(
        f"blinded comparisons: {states.open} open, {states.abandoned} abandoned; "
        f"{states.withheld} answers withheld (committed after the node's deadline, never sent)"
    )
    if undone:
        click.echo(
            f"revocations BROKEN: {', '.join(undone)} revoked in the audit log but valid in the "
            "certificates table: a revocation was undone outside bidui (the node still refuses "
            "them: it holds the log's revocations)"
        )
        raise SystemExit(_CHAIN_BROKEN)
    if path is None:
        click.echo("checkpoints: none found (a cut tail with a rewound head cannot be detected)")
    elif checked is None:
        click.echo(
            f"checkpoints NOT checked ({path}): no key to hold them to; give --public-key, the "
            "checkpoint public key the compliance office keeps (`bidui audit public-key` prints it)"
        )
    elif checked.ok:
        click.echo(f"checkpoints OK: {checked.checked} in {path}, signed under {whose}")
    else:
        click.echo(f"checkpoints BROKEN ({path}): {checked.reason}")
        raise SystemExit(_CHAIN_BROKEN)


@audit.command()
@_config_option
def checkpoint(config_file: Path) -> None:
    """Sign the audit chain's head now and append it to the node's checkpoint file.

    Send the line printed (or the whole file) to the compliance office: `bidui audit verify
    --checkpoint FILE --public-key HEX` then catches records later removed from the log's end.
    """
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        _fail("\n".join(exc.problems))
    path = config.node.data_dir / CHECKPOINT_FILE
    with _audit_log(config_file) as log:
        path.parent.mkdir(parents=True, exist_ok=True)
        written = write_checkpoint(
            log, load_signing_key(config.keys.dir), path, now=datetime.now(UTC)
        )
    if written is None:
        click.echo(f"nothing to sign: the log is empty or its head is already in {path}")
        return
    click.echo(json.dumps(written, sort_keys=True))
    click.echo(f"appended to {path}", err=True)


@audit.command(name="public-key")
@_config_option
def public_key_command(config_file: Path) -> None:
    """Print the node's checkpoint public key (hex), for the compliance office to keep.

    `bidui audit verify --public-key HEX` then holds the checkpoints to that copy, so a checkpoint
    file re-signed with another key is caught even where the node's key files were replaced.
    """
    try:
        key = load_signing_key(load_config(config_file).keys.dir)
    except ConfigError as exc:
        _fail("\n".join(exc.problems))
    except KeyStoreError as exc:
        _fail(str(exc))
    click.echo(key.public_key().public_bytes_raw().hex())


def _node_checkpoints(config_file: Path) -> Path | None:
    try:
        path = load_config(config_file).node.data_dir / CHECKPOINT_FILE
    except ConfigError as exc:
        _fail("\n".join(exc.problems))
    return path if path.is_file() else None


def _checkpoint_key(config_file: Path, given: str | None) -> tuple[bytes | None, str]:
    """The key to hold checkpoints to, and whose it is: the one given (the compliance office's
    copy), else this node's own checkpoint key where it can be read. Never the key a checkpoint
    file carries: whoever rewrote the file would have put their own there."""
    if given is not None:
        return _public_key(given), "the public key given"
    try:
        keys_dir = load_config(config_file).keys.dir
        key = load_signing_key(keys_dir, create=False)
    except (ConfigError, KeyStoreError, OSError):
        return None, ""
    return key.public_key().public_bytes_raw(), f"this node's own checkpoint key ({keys_dir})"


def _public_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        _fail("--public-key: expected 64 hexadecimal digits")
    if len(key) != 32:
        _fail("--public-key: expected 64 hexadecimal digits (an Ed25519 public key)")
    return key


@audit.command()
@_config_option
@click.option(
    "--from",
    "start",
    metavar="ISO-TIME",
    callback=_parse_time,
    help="Only records at or after this ISO 8601 time (UTC unless an offset is given).",
)
@click.option(
    "--to",
    "end",
    metavar="ISO-TIME",
    callback=_parse_time,
    help="Only records before this ISO 8601 time (UTC unless an offset is given).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="JSON Lines or CSV; both carry seq and hashes so the export can be verified offline.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    default=Path("-"),
    help="File to write (replaced only once the export is complete); '-' or absent: stdout.",
)
def export(
    config_file: Path,
    start: datetime | None,
    end: datetime | None,
    fmt: ExportFormat,
    output: Path,
) -> None:
    """Write the audit records of a time range as JSON Lines or CSV."""
    if start is not None and end is not None and start >= end:
        raise click.BadParameter("--from must be earlier than --to", param_hint="'--from'")
    with _audit_log(config_file) as log:
        if str(output) == "-":
            count = log.export(sys.stdout, fmt, start, end)
        else:
            count = _export_to_file(log, output, fmt, start, end)
    target = "stdout" if str(output) == "-" else str(output)
    click.echo(f"exported {count} audit records to {target}", err=True)


def _export_to_file(
    log: AuditLog, output: Path, fmt: ExportFormat, start: datetime | None, end: datetime | None
) -> int:
    """Write next to ``output`` and rename, so a failed export never leaves a partial file."""
    folder = output.absolute().parent
    if not folder.is_dir():
        _fail(f"cannot write {output}: folder {folder} does not exist")
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{output.name}.", suffix=".tmp")
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror}")
    try:
        stream: TextIO
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            count = log.export(stream, fmt, start, end)
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count


@audit.command()
@_config_option
@click.option("--quarter", help="A quarter, e.g. 2026Q4 (China time: from 00:00 on its first day).")
@click.option(
    "--year", help="A whole year, e.g. 2026: the annual report (due by the end of January)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "csv"]),
    default="text",
    show_default=True,
    help="A page to read and file, or CSV whose count column sums to the comparisons.",
)
@click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    default="zh",
    show_default=True,
    help="The page's language (the CSV's column names are always English).",
)
def report(config_file: Path, quarter: str | None, year: str | None, fmt: str, lang: str) -> None:
    """The sharing report of a quarter or a year (article 36), from the audit log, to stdout.

    Counts comparisons answered per requesting department, resource and mode (requests, items,
    matches), refusals by status, applications (submitted, approved, refused, the share decided
    within 5 working days, pending and overdue at the period's end), grants revoked, comparisons
    per grant, discrepancy reports, certificates signed and revoked, and other audited actions;
    states whether the audit chain verifies (exit 1, after the report, when it does not). Never
    shows a purpose, a payload digest or any queried value.

    \b
    Examples:
      bidui audit report --config node/node.toml --quarter 2026Q4 > 2026Q4.txt
      bidui audit report --config node/node.toml --year 2026 --format csv > 2026.csv
    """
    if (quarter is None) == (year is None):
        raise click.UsageError("give --quarter (e.g. 2026Q4) or --year (e.g. 2026), one of them")
    period, option = (quarter, "--quarter") if quarter is not None else (year, "--year")
    assert period is not None
    try:
        name = period_bounds(period)[0]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
    if ("Q" in name) != (option == "--quarter"):
        raise click.BadParameter(
            "a quarter is written like 2026Q4" if option == "--quarter" else "a year is like 2026",
            param_hint=option,
        )
    with _audit_log(config_file) as log:
        department = load_config(config_file).node.department
        result = build_report(
            log, period, department, now=datetime.now(UTC), lang="en" if lang == "en" else "zh"
        )
    if fmt == "csv":
        result.write_csv(sys.stdout)
    else:
        result.write_text(sys.stdout)
    if not result.chain.ok:  # the report is printed, flagged; automation must notice too
        raise SystemExit(_CHAIN_BROKEN)


audit.add_command(verify_export_command)
