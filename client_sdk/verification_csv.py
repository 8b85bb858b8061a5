"""The output of ``bidui verify``: the input CSV with each row's verification outcome.

Columns: the input's, then ``bidui_result`` (``not_found`` 库无, ``consistent`` 一致,
``inconsistent`` 不一致, or ``error``), ``bidui_mismatched_fields`` (an inconsistent row's fields
that disagree, joined by ``;`` in the order they were asked) and ``bidui_error`` (an invalid row's
field and reason). Columns of those names already in the input (an earlier output used as input)
are overwritten in place. Written atomically and readable by its owner only, as
``csv_io.write_results`` writes.
"""

from __future__ import annotations

from collections.abc import Iterator

from client_sdk.csv_io import ERROR_COLUMN, CsvTable, StrPath, write_rows
from client_sdk.verification_results import VerificationResult

__all__ = ["MISMATCHED_COLUMN", "RESULT_COLUMN", "write_verification"]

RESULT_COLUMN = "bidui_result"
MISMATCHED_COLUMN = "bidui_mismatched_fields"
_SEPARATOR = ";"


def write_verification(path: StrPath, table: CsvTable, result: VerificationResult) -> None:
    """Write ``table`` with the verification columns, atomically (0600)."""
    if len(result) != len(table):
        raise ValueError(f"result has {len(result)} records, the table has {len(table)} rows")
    columns = list(table.columns)
    at: list[int] = []
    for name in (RESULT_COLUMN, MISMATCHED_COLUMN, ERROR_COLUMN):
        position = table.column_index(name)
        if position is None:
            position = len(columns)
            columns.append(name)
        at.append(position)

    def rows() -> Iterator[list[str]]:
        for values, record in zip(table.rows, result, strict=True):
            row = list(values) + [""] * (len(columns) - len(values))
            cells = (record.status, _SEPARATOR.join(record.mismatched_fields), record.message)
            for position, cell in zip(at, cells, strict=True):
                row[position] = cell
            yield row

    write_rows(path, table, columns, rows())
