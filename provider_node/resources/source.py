"""Read a resource's source in chunks of rows, for the loader (``provider_node.resources.loader``).

```
SQL query (streamed, ``yield_per``) | CSV (UTF-8, header row)
    --> check the columns the index keys need --> chunks of {field: value} --> loader
```

Only the fields some index key needs are kept. Source values stay in memory only while their chunk
is processed: an error names the resource, the column or the line, never a value, and never the
source URL (it may carry a password).
"""

from __future__ import annotations

import csv
import decimal
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from comparator.fields import FieldType
from provider_node.resources.catalog import Resource

__all__ = ["LoaderError", "Record", "SourceError", "count_source_rows", "source_chunks"]

Record = dict[str, str | None]


class LoaderError(Exception):
    """A resource could not be loaded or its indexes opened; the message says what to do."""


class SourceError(LoaderError):
    """The resource's source cannot be read (connection, query, missing column, CSV syntax)."""


# Field types whose normaliser accepts native values (dates, numbers) as a database returns them.
_NATIVE_TYPES = frozenset({FieldType.DATE, FieldType.INTEGER, FieldType.PHONE})


def _source_value(kind: FieldType, value: Any) -> Any:
    """A source value as the comparator takes it: text, or a date or number where the type allows.

    A number in a text-typed column (e.g. an ID number stored as an integer) becomes its digits.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if kind in _NATIVE_TYPES:
        return value
    if isinstance(value, int | decimal.Decimal) and not isinstance(value, bool):
        return str(value)
    return value


def _required_fields(resource: Resource) -> list[str]:
    needed: dict[str, None] = {}
    for key in resource.index_keys.values():
        for spec in key.fields:
            needed[spec.name] = None
    return list(needed)


def _check_columns(resource: Resource, columns: Sequence[str], what: str) -> None:
    missing = [name for name in _required_fields(resource) if name not in columns]
    if missing:
        raise SourceError(
            f"resource {resource.id!r}: the {what} has no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(map(repr, columns)) or 'none'})"
        )


def _sql_chunks(resource: Resource, chunk_rows: int) -> Iterator[list[Record]]:
    source = resource.source
    assert source.url is not None and source.query is not None
    names = _required_fields(resource)
    kinds = {name: resource.fields[name] for name in names}
    try:
        engine = create_engine(source.url)
    except ImportError as exc:
        raise SourceError(
            f"resource {resource.id!r}: the source URL needs a database driver that is not "
            f"installed ({exc})"
        ) from None
    except (SQLAlchemyError, ValueError):
        # Not repeated: the URL may carry a password.
        raise SourceError(f"resource {resource.id!r}: the source URL is not usable") from None
    try:
        with engine.connect() as connection:
            result = connection.execution_options(
                stream_results=True, yield_per=chunk_rows
            ).execute(text(source.query))
            _check_columns(resource, list(result.keys()), "source query's result")
            for partition in result.mappings().partitions(chunk_rows):
                yield [
                    {name: _source_value(kinds[name], row[name]) for name in names}
                    for row in partition
                ]
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
        raise SourceError(
            f"resource {resource.id!r}: reading the source failed: {detail}"
        ) from None
    finally:
        engine.dispose()


def _csv_chunks(resource: Resource, chunk_rows: int) -> Iterator[list[Record]]:
    path = resource.source.csv
    assert path is not None
    names = _required_fields(resource)
    try:
        handle = path.open("r", encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise SourceError(
            f"resource {resource.id!r}: cannot open source CSV {path}: {exc.strerror}"
        ) from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            _check_columns(resource, list(reader.fieldnames or []), f"CSV header of {path}")
            while True:
                chunk = [
                    {name: row.get(name) for name in names}
                    for row in itertools.islice(reader, chunk_rows)
                ]
                if not chunk:
                    return
                yield chunk
        except (csv.Error, UnicodeDecodeError) as exc:
            reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
            raise SourceError(
                f"resource {resource.id!r}: {path} near line {reader.line_num + 1}: "
                f"not valid UTF-8 CSV ({reason})"
            ) from None


def source_chunks(resource: Resource, chunk_rows: int) -> Iterator[list[Record]]:
    if resource.source.csv is not None:
        return _csv_chunks(resource, chunk_rows)
    return _sql_chunks(resource, chunk_rows)


def count_source_rows(resource: Resource) -> int | None:
    """Rows in the source, for a progress bar; ``None`` when counting is not possible cheaply."""
    source = resource.source
    try:
        if source.csv is not None:
            with source.csv.open("rb") as handle:
                lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
            return max(0, lines - 1)
        if source.url is None or source.query is None:
            return None
        query = source.query.strip().rstrip(";")
        engine = create_engine(source.url)
        try:
            with engine.connect() as connection:
                value = connection.execute(
                    text(f"SELECT COUNT(*) FROM ({query}) AS bidui_source")
                ).scalar()
        finally:
            engine.dispose()
        return int(value) if value is not None else None
    except (OSError, SQLAlchemyError, ImportError, ValueError, TypeError):
        return None
