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
from typing import Any

import click
from click._termui_impl import ProgressBar

from bidui_cli.connection import NodeAddress, node_options, reported
from client_sdk.client import comparison_key_for
from client_sdk.csv_io import CsvTable, read_csv, write_results
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
@node_options
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
@click.option(
    "--grant",
    "grant_id",
    metavar="GRANT_ID",
    default=None,
    help="The grant a conditional resource is compared under (`bidui applications`); "
    "default: the node finds the one that covers the key and mode today.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def compare(
    input_path: str,
    resource: str,
    key_name: str,
    output_path: str,
    mode: str,
    purpose: str,
    node: NodeAddress,
    timeout: float,
    batch_size: int,
    request_id: str | None,
    grant_id: str | None,
    quiet: bool,
) -> None:
    """Compare the records of a CSV file against a provider node's resource.

    Each row gets matched, not_matched, or error (the row is invalid for the
    key, e.g. a resident ID number with a wrong check digit; it is never sent).
    """
    with reported():
        table, result = _run(
            input_path=input_path,
            resource=resource,
            key_name=key_name,
            mode=mode,
            purpose=purpose,
            node=node,
            timeout=timeout,
            batch_size=batch_size,
            request_id=request_id,
            grant_id=grant_id,
            quiet=quiet,
        )
        write_results(output_path, table, result)
    _summary(table, result, output_path)


def _run(
    *,
    input_path: str,
    resource: str,
    key_name: str,
    mode: str,
    purpose: str,
    node: NodeAddress,
    timeout: float,
    batch_size: int,
    request_id: str | None,
    grant_id: str | None,
    quiet: bool,
) -> tuple[CsvTable, ComparisonResult]:
    table = read_csv(input_path)  # user mistakes in the file surface before any network call
    with node.client(timeout=timeout, max_batch=batch_size) as client:
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
                grant_id=grant_id,
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
    click.echo(f"comparison ids (for bidui discrepancy file): {', '.join(result.comparison_ids)}")


def main() -> None:
    """Run ``compare`` as a stand-alone command (``python -m bidui_cli.compare``)."""
    compare(prog_name="bidui compare")


if __name__ == "__main__":
    main()
