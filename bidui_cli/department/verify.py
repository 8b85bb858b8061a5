"""``bidui verify``: verify (核验) fields of a CSV's records against a provider node's resource.

Each row gets ``not_found`` (库无), ``consistent`` (一致), ``inconsistent`` (不一致, with the
fields that disagree) or ``error`` (the row is invalid for the key or a field; never sent). Only
those outcomes come back from the node. Exit codes as ``bidui compare``: 0 done; 2 a mistake to
fix (file, certificate, resource, key, field, or refused by the node: verification is a
permission of its own); 1 the service failed.
"""

from __future__ import annotations

import uuid

import click

from bidui_cli.department.connection import NodeAddress, reported
from bidui_cli.department.streamed import Tally, check_input, run_options, stream_answers
from client_sdk.comparison.catalog import comparison_key_for
from client_sdk.comparison.verification_results import LABELS
from client_sdk.files import csv_stream
from client_sdk.files.csv_stream import CsvBlock
from client_sdk.files.verification_csv import verification_columns, verification_rows

__all__ = ["verify"]


_EPILOG = """\b
Example:
  bidui verify --input applicants.csv --resource population --key id_number \\
      --fields name,phone --purpose "housing benefit: declared details check" \\
      --output verified.csv

\b
The input is a UTF-8 CSV with a header row; the key's fields and the
fields to verify (here id_number, name and phone) must be columns. The
output holds the input columns plus bidui_result (not_found 库无 /
consistent 一致 / inconsistent 不一致 / error), bidui_mismatched_fields
(the fields that differ, joined by ;) and bidui_error.

\b
Exit codes: 0 done; 2 a mistake to fix (bad CSV, file, certificate,
resource, key, field, or refused by the node); 1 the service failed.
"""


def _field_list(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names:
        raise click.BadParameter("name at least one field, e.g. --fields name,phone")
    return names


@click.command(
    "verify",
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV of records to verify (UTF-8, header row required).",
)
@click.option("--resource", required=True, help="Resource id in the node's catalog.")
@click.option("--key", "key_name", required=True, help="Comparison key, e.g. id_number.")
@click.option(
    "--fields",
    required=True,
    callback=_field_list,
    help="Fields to verify against the key, comma-separated (the resource's verifiable ones).",
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
    help="blinded: RFC 9497 OPRF, the node never sees a query value; hashed: HMAC tags.",
)
@run_options(
    "verification",
    min_batch=2,
    batch_help="Items per request (a record is 1 + the number of fields items).",
)
def verify(
    input_path: str,
    resource: str,
    key_name: str,
    fields: tuple[str, ...],
    output_path: str,
    mode: str,
    purpose: str,
    node: NodeAddress,
    timeout: float,
    batch_size: int,
    request_id: str | None,
    grant_id: str | None,
    resume: bool,
    quiet: bool,
) -> None:
    """Verify fields of a CSV's records against a provider node's resource (核验).

    Each row gets not_found (库无), consistent (一致), inconsistent (不一致,
    with the fields that differ), or error (the row is invalid for the key
    or a field, e.g. a resident ID number with a wrong check digit; it is
    never sent).
    """
    tally = Tally(request_id=request_id or uuid.uuid4().hex)
    with reported():
        table, total = check_input(input_path, quiet)
        columns, at = verification_columns(table)
        with node.client(timeout=timeout, max_batch=batch_size) as client:
            entry = client.describe(resource)
            key_fields = [spec.name for spec in comparison_key_for(entry, key_name).fields]
            needed = [*key_fields, *fields]
            table.records(needed)  # every missing column named, before anything is sent
            output = csv_stream.PartialOutput(output_path, table, columns, resume=resume)
            tally.resumed_after = output.done

            def answer(block: CsvBlock) -> list[list[str]]:
                result = client.verify(
                    resource,
                    block.records(table, needed),
                    key=key_name,
                    fields=fields,
                    mode="hashed" if mode == "hashed" else "blinded",
                    purpose=purpose,
                    request_id=tally.request_id,
                    grant_id=grant_id,
                )
                tally.add(
                    block,
                    result,
                    consistent=result.consistent_count,
                    inconsistent=result.inconsistent_count,
                    not_found=result.not_found_count,
                    error=result.error_count,
                )
                return list(verification_rows(block.rows, result, len(columns), at))

            stream_answers(
                input_path,
                output,
                total,
                quiet=quiet,
                label="verifying",
                batch_size=batch_size,
                answer=answer,
            )
    counts = tally.counts
    tally.summary(
        f"rows: {tally.rows}  {LABELS['consistent']} consistent: {counts['consistent']}  "
        f"{LABELS['inconsistent']} inconsistent: {counts['inconsistent']}  "
        f"{LABELS['not_found']} not found: {counts['not_found']}  errors: {counts['error']}",
        output_path,
    )
