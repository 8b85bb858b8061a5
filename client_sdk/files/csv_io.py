"""Read the requester's CSV of records and write it back with one match column per row.

Input: UTF-8 with or without a byte order mark, comma-separated, a header row first. Every record
remembers the line it starts on (the header is line 1; a quoted field may span lines), so that a
malformed row or an invalid record can be reported by line number. Extra columns are kept only to
be written back to the output.

Output: the input columns, then ``bidui_match`` (``matched`` / ``not_matched`` / ``error``) and
``bidui_error`` (the reason, for errors). Written to a temporary file in the same folder and renamed
into place, so a reader never sees half a file. The output holds the input's personal data: it is
created readable by its owner only (0600).
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from client_sdk.comparison.results import ComparisonResult
from client_sdk.errors import CsvInputError, CsvOutputError

__all__ = [
    "ERROR_COLUMN",
    "MATCH_COLUMN",
    "CsvRow",
    "CsvTable",
    "iter_rows",
    "output_columns",
    "output_row",
    "read_csv",
    "write_results",
    "write_rows",
]

MATCH_COLUMN = "bidui_match"
ERROR_COLUMN = "bidui_error"

_BOM = b"\xef\xbb\xbf"
StrPath = str | os.PathLike[str]


@dataclass
class CsvTable:
    """The rows of an input CSV, with the line number each row starts on."""

    path: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)
    had_bom: bool = False

    def __len__(self) -> int:
        return len(self.rows)

    def column_index(self, name: str) -> int | None:
        """The position of column ``name`` (surrounding spaces in the header are ignored)."""
        for position, column in enumerate(self.columns):
            if column.strip() == name:
                return position
        return None

    def missing_columns(self, names: Sequence[str]) -> list[str]:
        return [name for name in names if self.column_index(name) is None]

    def records(self, fields: Sequence[str]) -> list[tuple[str, ...]]:
        """Each row as a tuple of the ``fields`` columns, in that order (positional records).

        Raises :class:`CsvInputError` naming every missing column.
        """
        missing = self.missing_columns(fields)
        if missing:
            names = ", ".join(repr(m) for m in missing)
            present = ", ".join(repr(c) for c in self.columns)
            raise CsvInputError(
                f"missing column(s) {names} required by the comparison key; "
                f"the header has {present}",
                path=self.path,
                line=1,
            )
        positions = [p for p in (self.column_index(f) for f in fields) if p is not None]
        return [tuple(row[p] for p in positions) for row in self.rows]

    def line_of(self, index: int) -> int:
        """The line number the record at ``index`` starts on."""
        return self.line_numbers[index]


def read_csv(path: StrPath, *, required_columns: Sequence[str] = ()) -> CsvTable:
    """Read a whole CSV file into a :class:`CsvTable`.

    Raises :class:`CsvInputError` (with the line number where there is one) for a missing or
    unreadable file, bytes that are not UTF-8, an embedded NUL, a row whose column count differs
    from the header's, an empty or duplicated header, or a missing required column.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            table = _parse(handle, name)
    except FileNotFoundError:
        raise CsvInputError("file does not exist", path=name) from None
    except IsADirectoryError:
        raise CsvInputError("is a folder, not a CSV file", path=name) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CsvInputError(f"cannot read: {reason}", path=name) from None
    if required_columns:
        table.records(required_columns)  # raises for missing columns
    return table


class _Lines:
    """Decoded lines of a binary file, remembering the number of the last line handed out.

    Decoding line by line is safe for UTF-8 (a newline byte is never part of a multi-byte
    character) and lets a decoding error name its line.
    """

    def __init__(self, handle: Iterable[bytes], path: str) -> None:
        self._handle = handle
        self._path = path
        self.current = 0
        self.had_bom = False

    def __iter__(self) -> Iterator[str]:
        for number, raw in enumerate(self._handle, start=1):
            self.current = number
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
                self.had_bom = True
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                hint = ""
                if number == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
                    hint = " (it looks like UTF-16)"
                raise CsvInputError(
                    f"not valid UTF-8{hint}; save the file as UTF-8 (GBK/GB18030 is not supported)",
                    path=self._path,
                    line=number,
                ) from None
            if "\x00" in line:
                raise CsvInputError("contains a NUL character", path=self._path, line=number)
            yield line


def _parse(handle: Iterable[bytes], path: str) -> CsvTable:
    rows = iter_rows(handle, path)
    table = next(rows).table
    assert table is not None  # the first item is always the header
    for row in rows:
        table.rows.append(row.values)
        table.line_numbers.append(row.line)
    return table


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data row and the line it starts on; the first item of ``iter_rows`` is the header,
    with ``table`` (no rows) describing the file."""

    line: int
    values: tuple[str, ...]
    table: CsvTable | None = None


def iter_rows(handle: Iterable[bytes], path: str) -> Iterator[CsvRow]:
    """The header (as an empty ``CsvTable``), then each data row, checked as ``read_csv`` checks
    them, without holding the file: memory stays bounded whatever its size."""
    lines = _Lines(handle, path)
    reader = csv.reader(lines, strict=True)
    table: CsvTable | None = None
    last_line = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # Name the line the broken record starts on (an unclosed quote runs to the end).
            start = last_line + 1
            upto = f" (read up to line {lines.current})" if lines.current > start else ""
            raise CsvInputError(f"malformed CSV: {exc}{upto}", path=path, line=start) from None
        start = last_line + 1
        last_line = lines.current
        if not row:  # a blank line
            continue
        if table is None:
            table = _header(row, path, start, lines.had_bom)
            yield CsvRow(start, tuple(row), table)
            continue
        if len(row) != len(table.columns):
            raise CsvInputError(
                f"has {len(row)} column(s), the header has {len(table.columns)}",
                path=path,
                line=start,
            )
        yield CsvRow(start, tuple(row))
    if table is None:
        raise CsvInputError("is empty: a header row naming the columns is required", path=path)


def _header(row: list[str], path: str, line: int, had_bom: bool) -> CsvTable:
    seen: set[str] = set()
    for column in row:
        key = column.strip()
        if key and key in seen:
            raise CsvInputError(f"column {key!r} appears twice in the header", path=path, line=line)
        seen.add(key)
    if not any(column.strip() for column in row):
        raise CsvInputError("the header row has no column names", path=path, line=line)
    return CsvTable(path=path, columns=tuple(row), had_bom=had_bom)


def output_columns(table: CsvTable) -> tuple[list[str], int, int]:
    """The output header and where ``bidui_match`` and ``bidui_error`` go in it.

    Existing ``bidui_match`` / ``bidui_error`` columns (an earlier output used as input) are
    overwritten in place rather than repeated.
    """
    columns = list(table.columns)
    match_at = table.column_index(MATCH_COLUMN)
    error_at = table.column_index(ERROR_COLUMN)
    if match_at is None:
        match_at = len(columns)
        columns.append(MATCH_COLUMN)
    if error_at is None:
        error_at = len(columns)
        columns.append(ERROR_COLUMN)
    return columns, match_at, error_at


def output_row(
    values: Sequence[str], width: int, match_at: int, error_at: int, status: str, message: str
) -> list[str]:
    row = list(values) + [""] * (width - len(values))
    row[match_at] = status
    row[error_at] = message
    return row


def write_results(path: StrPath, table: CsvTable, result: ComparisonResult) -> None:
    """Write ``table`` with ``bidui_match`` and ``bidui_error`` columns, atomically."""
    if len(result) != len(table):
        raise ValueError(f"result has {len(result)} records, the table has {len(table)} rows")
    columns, match_at, error_at = output_columns(table)
    write_rows(
        path,
        table,
        columns,
        (
            output_row(row, len(columns), match_at, error_at, record.status, record.message)
            for row, record in zip(table.rows, result, strict=True)
        ),
    )


def write_rows(
    path: StrPath, table: CsvTable, columns: Sequence[str], rows: Iterable[Sequence[str]]
) -> None:
    """Write ``columns`` and ``rows`` to ``path`` atomically, readable by its owner only (0600),
    with a byte order mark where the input (``table``) had one."""
    name = os.fspath(path)
    folder = Path(name).resolve().parent
    try:
        fd, temporary = tempfile.mkstemp(prefix=".bidui-", suffix=".csv.tmp", dir=folder)
    except OSError as exc:
        raise CsvOutputError(
            f"{name}: cannot write in {str(folder)!r}: {exc.strerror or type(exc).__name__}"
        ) from None
    try:
        encoding = "utf-8-sig" if table.had_bom else "utf-8"
        with os.fdopen(fd, "w", encoding=encoding, newline="") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            writer.writerows(rows)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, name)
    except OSError as exc:
        _unlink_quietly(temporary)
        reason = exc.strerror or type(exc).__name__
        raise CsvOutputError(f"{name}: cannot write: {reason}") from None
    except BaseException:
        _unlink_quietly(temporary)
        raise


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
