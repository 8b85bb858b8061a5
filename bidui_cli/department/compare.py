"""``bidui compare``: compare a CSV of records against a provider node's resource.

Exit codes: 0 success; 2 a mistake the user can fix (bad CSV with its line number, missing file,
unknown resource or key, bad certificate, refused by the node); 1 a failure of the service
(unreachable, timed out, misbehaving). Every failure is one clear line on stderr, never a
traceback.
"""

from __future__ import annotations

import uuid

import click

from bidui_cli.department.connection import NodeAddress, reported
from bidui_cli.department.streamed import Tally, check_input, run_options, stream_answers
from client_sdk.comparison.catalog import comparison_key_for
from client_sdk.files import csv_stream
from client_sdk.files.csv_io import output_columns, output_row
from client_sdk.files.csv_stream import CsvBlock

__all__ = ["compare", "main"]


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
    help="blinded: RFC 9497 OPRF, the node never sees a query value; "
    "hashed: HMAC tags under the node's key, faster.",
)
@click.option(
    "--verifiable",
    is_flag=True,
    help="Blinded mode in RFC 9497 modeVOPRF: the node proves each evaluation used the key it "
    "publishes (for outputs kept or compared across nodes; it does not prove the answer). "
    "The resource must offer it.",
)
@run_options(
    "comparison",
    min_batch=1,
    batch_help="Records per request; larger inputs are split into several requests.",
)
def compare(
    input_path: str,
    resource: str,
    key_name: str,
    output_path: str,
    mode: str,
    verifiable: bool,
    purpose: str,
    node: NodeAddress,
    timeout: float,
    batch_size: int,
    request_id: str | None,
    grant_id: str | None,
    resume: bool,
    quiet: bool,
) -> None:
    """Compare the records of a CSV file against a provider node's resource.

    Each row gets matched, not_matched, or error (the row is invalid for the
    key, e.g. a resident ID number with a wrong check digit; it is never sent).
    Files of any size are read in a stream; the rows answered are written to
    OUTPUT.partial as they come, renamed to OUTPUT once all are answered.
    """
    tally = Tally(request_id=request_id or uuid.uuid4().hex)
    with reported():
        table, total = check_input(input_path, quiet)
        columns, match_at, error_at = output_columns(table)
        with node.client(timeout=timeout, max_batch=batch_size) as client:
            entry = client.describe(resource)
            fields = [spec.name for spec in comparison_key_for(entry, key_name).fields]
            table.records(fields)  # every missing column named, before anything is sent
            output = csv_stream.PartialOutput(output_path, table, columns, resume=resume)
            tally.resumed_after = output.done

            def answer(block: CsvBlock) -> list[list[str]]:
                result = client.compare(
                    resource,
                    block.records(table, fields),
                    key=key_name,
                    mode="hashed" if mode == "hashed" else "blinded",
                    verifiable=verifiable,
                    purpose=purpose,
                    request_id=tally.request_id,
                    grant_id=grant_id,
                )
                tally.add(
                    block,
                    result,
                    matched=result.matched_count,
                    not_matched=result.not_matched_count,
                    error=result.error_count,
                )
                return [
                    output_row(values, len(columns), match_at, error_at, r.status, r.message)
                    for values, r in zip(block.rows, result, strict=True)
                ]

            stream_answers(
                input_path,
                output,
                total,
                quiet=quiet,
                label="comparing",
                batch_size=batch_size,
                answer=answer,
            )
    counts = tally.counts
    tally.summary(
        f"rows: {tally.rows}  matched: {counts['matched']}  "
        f"not matched: {counts['not_matched']}  errors: {counts['error']}",
        output_path,
    )
    ids = ", ".join(tally.comparison_ids)
    click.echo(f"comparison ids (for bidui discrepancy file): {ids}")


def main() -> None:
    """Run ``compare`` as a stand-alone command (``python -m bidui_cli.department.compare``)."""
    compare(prog_name="bidui compare")


if __name__ == "__main__":
    main()
