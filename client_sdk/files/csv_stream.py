"""CSV files of any size: checked and compared in a stream, answered rows kept as they come.

A clerk's file may hold millions of rows. Memory stays bounded (one block of rows at a time) and
no answered, audited batch is lost to the user::

    check(path)           one pass over the whole file: every malformed row is found, by line,
                          before anything is sent; nothing is kept but the header and a count
    blocks(path, n, skip) the rows again, n at a time, after the first ``skip``
    PartialOutput         OUTPUT.partial (0600), appended and flushed block by block; renamed to
                          OUTPUT when every row is answered. After an interruption the partial
                          file holds every answered row, and ``resume=True`` continues after them

The caller gives the output's columns and each answered row (``csv_io.output_columns`` and
``output_row`` for match bits, ``verification_csv`` for verification).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from client_sdk.errors import CsvInputError, CsvOutputError
from client_sdk.files.csv_io import CsvTable, StrPath, iter_rows

__all__ = ["CsvBlock", "PartialOutput", "blocks", "check"]

PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class CsvBlock:
    """Consecutive data rows; ``first`` is the index of the first among all the file's rows."""

    first: int
    rows: list[tuple[str, ...]]
    lines: list[int]

    def records(self, table: CsvTable, fields: Sequence[str]) -> list[tuple[str, ...]]:
        positions = [table.column_index(name) for name in fields]
        return [tuple(row[p] for p in positions if p is not None) for row in self.rows]


def _open(path: StrPath) -> Iterator[bytes]:
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            yield from handle
    except FileNotFoundError:
        raise CsvInputError("file does not exist", path=name) from None
    except IsADirectoryError:
        raise CsvInputError("is a folder, not a CSV file", path=name) from None
    except OSError as exc:
        raise CsvInputError(
            f"cannot read: {exc.strerror or type(exc).__name__}", path=name
        ) from None


def check(
    path: StrPath,
    fields: Sequence[str] = (),
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[CsvTable, int]:
    """The header (an empty ``CsvTable``) and the number of data rows; raises ``CsvInputError``
    at the first malformed row or a missing ``fields`` column. ``progress(rows)`` now and then."""
    rows = iter_rows(_open(path), os.fspath(path))
    table = next(rows).table
    assert table is not None
    table.records(fields)  # names every missing column
    count = 0
    for count, _ in enumerate(rows, start=1):
        if progress is not None and count % 50_000 == 0:
            progress(count)
    return table, count


def blocks(path: StrPath, size: int, *, skip: int = 0) -> Iterator[CsvBlock]:
    """The data rows after the first ``skip``, ``size`` at a time."""
    rows = iter_rows(_open(path), os.fspath(path))
    next(rows)
    index = 0
    block: list[tuple[str, ...]] = []
    lines: list[int] = []
    for row in rows:
        if index >= skip:
            block.append(row.values)
            lines.append(row.line)
            if len(block) == size:
                yield CsvBlock(index - size + 1, block, lines)
                block, lines = [], []
        index += 1
    if block:
        yield CsvBlock(index - len(block), block, lines)


class PartialOutput:
    """The output written as answers come: ``OUTPUT.partial`` until complete, then ``OUTPUT``."""

    def __init__(
        self, path: StrPath, table: CsvTable, columns: Sequence[str], *, resume: bool
    ) -> None:
        self.final = Path(os.fspath(path))
        self.path = self.final.with_name(self.final.name + PARTIAL_SUFFIX)
        self._columns = list(columns)
        self.done = 0
        if self.path.exists() and not resume:
            raise CsvOutputError(
                f"{self.path}: a partial output of an earlier run is there ("
                f"{self._count_answered()} rows answered): add --resume to continue after them, "
                "or remove it to start again"
            )
        try:
            if self.path.exists():
                self.done = self._count_answered()
                self._out: TextIO = open(  # noqa: SIM115 (kept open across blocks; close())
                    self.path, "a", encoding="utf-8", newline=""
                )
            else:
                descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                encoding = "utf-8-sig" if table.had_bom else "utf-8"
                self._out = os.fdopen(descriptor, "w", encoding=encoding, newline="")
                csv.writer(self._out).writerow(self._columns)
        except OSError as exc:
            raise CsvOutputError(
                f"{self.path}: cannot write: {exc.strerror or type(exc).__name__}"
            ) from None
        self._writer = csv.writer(self._out)

    def _count_answered(self) -> int:
        with open(self.path, encoding="utf-8-sig", newline="") as existing:
            reader = csv.reader(existing)
            header = next(reader, None)
            if header != self._columns:
                raise CsvOutputError(
                    f"{self.path}: its columns are not this input's: it belongs to another run"
                )
            return sum(1 for _ in reader)

    def write(self, rows: Sequence[Sequence[str]]) -> None:
        """Append a block's answered rows and push them to disk before the next block is sent."""
        try:
            self._writer.writerows(rows)
            self._out.flush()
            os.fsync(self._out.fileno())
        except OSError as exc:
            raise CsvOutputError(
                f"{self.path}: cannot write: {exc.strerror or type(exc).__name__}"
            ) from None
        self.done += len(rows)

    def finish(self) -> None:
        """Every row answered: the partial file becomes the output."""
        self._out.close()
        os.replace(self.path, self.final)

    def close(self) -> None:
        """Interrupted: keep the partial file, complete up to its last row."""
        if not self._out.closed:
            self._out.close()
