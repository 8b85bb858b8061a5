"""``bidui compare``: compare a CSV of records against a provider node's resource.

Exit codes: 0 success; 2 a mistake the user can fix (bad CSV with its line number, missing file,
unknown resource or key, bad certificate, refused by the node); 1 a failure of the service
(unreachable, timed out, misbehaving). Every failure is one clear line on stderr, never a
traceback.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from click._termui_impl import ProgressBar

from client_sdk.client import ComparisonClient, comparison_key_for
from client_sdk.credentials import Credentials
from client_sdk.csv_io import CsvTable, read_csv, write_results
from client_sdk.errors import BiduiError
from client_sdk.results import ComparisonResult

__all__ = ["compare", "main"]

_ERRORS_SHOWN = 5

_EPILOG = """\b
Example:
  export BIDUI_TARGET=node.psb.luzhou.gov.cn:50051
  export BIDUI_CA_CERT=pki/ca.pem BIDUI_CLIENT_CERT=pki/civil-affairs.pem
  export BIDUI_CLIENT_KEY=pki/civil-affairs.key
  bidui compare --input applicants.csv --resource residents --key id_number+name \\
      --purpose "minimum living allowance eligibility check" --output checked.csv

\b
The input is a UTF-8 CSV with a header row; the comparison key's fields
(here id_number and name) must be columns. The output holds the input
columns plus bidui_match (matched / not_matched / error) and bidui_error.
Only match bits come back from the node: its data never leaves its premises.

\b
Exit codes: 0 done; 2 a mistake to fix (bad CSV, file, certificate,
resource, key, or refused by the node); 1 the service failed.
"""


@click.command(
    "compare",
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV of records to compare (UTF-8, header row required).",
)
@click.option("--resource", required=True, help="Resource id in the node's catalog.")
@click.option(
    "--key",
    "key_name",
    required=True,
    help="Comparison key of the resource, e.g. id_number or id_number+name.",
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="Where to write the result CSV (replaced atomically; readable by you only).",
)
@click.option(
    "--mode",
    type=click.Choice(["blinded", "hashed"]),
    default="blinded",
    show_default=True,
    help="blinded: RFC 9497 VOPRF, the node never sees a query value; "
    "hashed: HMAC tags under the node's key, faster.",
)
@click.option(
    "--purpose",
    required=True,
    help="The duty this comparison serves (required; recorded in the node's audit log).",
)
@click.option(
    "--target",
    envvar="BIDUI_TARGET",
    required=True,
    help="The provider node, HOST:PORT. [env: BIDUI_TARGET]",
)
@click.option(
    "--ca-cert",
    envvar="BIDUI_CA_CERT",
    required=True,
    type=click.Path(dir_okay=False),
    help="CA certificate (PEM) the node's certificate must chain to. [env: BIDUI_CA_CERT]",
)
@click.option(
    "--cert",
    envvar="BIDUI_CLIENT_CERT",
    required=True,
    type=click.Path(dir_okay=False),
    help="Your department's client certificate (PEM). [env: BIDUI_CLIENT_CERT]",
)
@click.option(
    "--key-file",
    envvar="BIDUI_CLIENT_KEY",
    required=True,
    type=click.Path(dir_okay=False),
    help="The client certificate's private key (unencrypted PEM). [env: BIDUI_CLIENT_KEY]",
)
@click.option(
    "--server-name",
    envvar="BIDUI_SERVER_NAME",
    default=None,
    help="Expect this name in the node's certificate instead of the target's host. "
    "[env: BIDUI_SERVER_NAME]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds allowed for each request of at most --batch-size records, retries included.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Records per request; larger inputs are split into several requests.",
)
@click.option("--request-id", default=None, help="Id grouping the requests in the audit log.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def compare(
    input_path: str,
    resource: str,
    key_name: str,
    output_path: str,
    mode: str,
    purpose: str,
    target: str,
    ca_cert: str,
    cert: str,
    key_file: str,
    server_name: str | None,
    timeout: float,
    batch_size: int,
    request_id: str | None,
    quiet: bool,
) -> None:
    """Compare the records of a CSV file against a provider node's resource.

    Each row gets matched, not_matched, or error (the row is invalid for the
    key, e.g. a resident ID number with a wrong check digit; it is never sent).
    """
    try:
        table, result = _run(
            input_path=input_path,
            resource=resource,
            key_name=key_name,
            mode=mode,
            purpose=purpose,
            target=target,
            credentials=lambda: Credentials.from_files(ca_cert, cert, key_file),
            server_name=server_name,
            timeout=timeout,
            batch_size=batch_size,
            request_id=request_id,
            quiet=quiet,
        )
        write_results(output_path, table, result)
    except BiduiError as exc:
        _fail(str(exc), 2 if exc.user_error else 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # never a traceback: one line naming what broke
        _fail(f"unexpected failure: {type(exc).__name__}: {exc}", 1)
    _summary(table, result, output_path)


def _run(
    *,
    input_path: str,
    resource: str,
    key_name: str,
    mode: str,
    purpose: str,
    target: str,
    credentials: Callable[[], Credentials],
    server_name: str | None,
    timeout: float,
    batch_size: int,
    request_id: str | None,
    quiet: bool,
) -> tuple[CsvTable, ComparisonResult]:
    table = read_csv(input_path)  # user mistakes in the file surface before any network call
    creds = credentials()
    with ComparisonClient(
        target, creds, timeout=timeout, max_batch=batch_size, server_name=server_name
    ) as client:
        entry = client.describe(resource)
        fields = [spec.name for spec in comparison_key_for(entry, key_name).fields]
        records = table.records(fields)
        with contextlib.ExitStack() as stack:
            progress: Callable[[int, int], None] | None = None
            if not quiet and records:
                bar = stack.enter_context(
                    click.progressbar(
                        length=len(records), label="comparing", file=sys.stderr, show_pos=True
                    )
                )
                progress = _bar_callback(bar)
            result = client.compare(
                resource,
                records,
                key=key_name,
                mode="hashed" if mode == "hashed" else "blinded",
                purpose=purpose,
                progress=progress,
                request_id=request_id,
            )
    return table, result


def _bar_callback(bar: ProgressBar[Any]) -> Callable[[int, int], None]:
    seen = 0

    def progress(done: int, total: int) -> None:
        nonlocal seen
        bar.update(done - seen)
        seen = done

    return progress


def _summary(table: CsvTable, result: ComparisonResult, output_path: str) -> None:
    click.echo(
        f"rows: {len(result)}  matched: {result.matched_count}  "
        f"not matched: {result.not_matched_count}  errors: {result.error_count}"
    )
    errors = result.errors
    for record in errors[:_ERRORS_SHOWN]:
        click.echo(f"  line {table.line_of(record.index)}: {record.message}")
    if len(errors) > _ERRORS_SHOWN:
        click.echo(f"  ... and {len(errors) - _ERRORS_SHOWN} more (see the bidui_error column)")
    click.echo(f"output: {output_path}")
    click.echo(f"request id: {result.request_id} ({len(result.comparison_ids)} request(s))")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def main() -> None:
    """Run ``compare`` as a stand-alone command (``python -m bidui_cli.compare``)."""
    compare(prog_name="bidui compare")


if __name__ == "__main__":
    main()
