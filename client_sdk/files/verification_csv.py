"""The output of ``bidui verify``: the input CSV with each row's verification outcome.

Columns: the input's, then ``bidui_result`` (``not_found`` 库无, ``consistent`` 一致,
``inconsistent`` 不一致, or ``error``), ``bidui_mismatched_fields`` (an inconsistent row's fields
that disagree, joined by ``;`` in the order they were asked) and ``bidui_error`` (an invalid row's
field and reason). Columns of those names already in the input (an earlier output used as input)
are overwritten in place. Written atomically and readable by its owner only, as
``csv_io.write_results`` writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from client_sdk.comparison.verification_results import VerificationResult
from client_sdk.files.csv_io import ERROR_COLUMN, CsvTable, StrPath, write_rows

__all__ = [
    "MISMATCHED_COLUMN",
    "RESULT_COLUMN",
    "verification_columns",
    "verification_rows",
    "write_verification",
]

RESULT_COLUMN = "bidui_result"
MISMATCHED_COLUMN = "bidui_mismatched_fields"
_SEPARATOR = ";"


def verification_columns(table: CsvTable) -> tuple[list[str], list[int]]:
    """The output header, and where the result, mismatched-fields and error columns are in it."""
    columns = list(table.columns)
    at: list[int] = []
    for name in (RESULT_COLUMN, MISMATCHED_COLUMN, ERROR_COLUMN):
        position = table.column_index(name)
        if position is None:
            position = len(columns)
            columns.append(name)
        at.append(position)
    return columns, at


def verification_rows(
    rows: Iterable[Sequence[str]], result: VerificationResult, width: int, at: Sequence[int]
) -> Iterator[list[str]]:
    """Each input row with its outcome in the columns ``at`` of a ``width``-column output."""
    for values, record in zip(rows, result, strict=True):
        row = list(values) + [""] * (width - len(values))
        cells = (record.status, _SEPARATOR.join(record.mismatched_fields), record.message)
        for position, cell in zip(at, cells, strict=True):
            row[position] = cell
        yield row


def write_verification(path: StrPath, table: CsvTable, result: VerificationResult) -> None:
    """Write ``table`` with the verification columns, atomically (0600)."""
    if len(result) != len(table):
        raise ValueError(f"result has {len(result)} records, the table has {len(table)} rows")
    columns, at = verification_columns(table)
    write_rows(path, table, columns, verification_rows(table.rows, result, len(columns), at))
