"""Build a resource's match indexes from its source; open them when the node starts serving.

```
source (SQL query, streamed | CSV)  --chunks of 50k rows-->  canonicalise per comparison key
    hashed:  HMAC-SHA-256 under the resource's key   --> tags    --+
    blinded: RFC 9497 Evaluate under the OPRF key    --> outputs --+--> MatchIndex
                                       data_dir/indexes/<resource>/<key>.<mode>.idx (atomic)
```

``<mode>`` is the index mode (``resources.index_mode``): ``hashed``, ``blinded`` (modeOPRF, under
modeOPRF's key) or ``blinded-voprf`` (modeVOPRF, under modeVOPRF's key), one per RFC 9497 mode the
resource offers (``oprf_modes``). Each index records the id of the key it was built under; an index
built under another key (e.g. a ``blinded`` index from before modeOPRF had its own key) is refused
with the ``bidui provider load`` command that rebuilds it.

Source values stay in memory only while their chunk is processed: they are never written, logged
or repeated in an error. An invalid source row is counted under its field and reason with its
row number (1-based, header not counted), not its value, and left out of the index.

A resource that offers verification (``verify`` in its configuration) also gets one index per
verification key and mode (``verify:<key>:<field>``, see ``comparator.verification``), built in the
same pass: ``<key>.verify.<field>.<mode>.idx``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import decimal
import hashlib
import hmac
import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from comparator.canonical import CANONICAL_VERSION, encode_records
from comparator.errors import IndexFormatError
from comparator.fields import FieldType
from comparator.index import ENTRY_LENGTH, MatchIndex
from comparator.keyed_hash import KeyedHasher
from comparator.oprf import OprfServer, VoprfServer
from comparator.verification import VERIFY_PREFIX
from provider_node.config import ComparisonMode, NodeConfig, OprfMode, SharingType
from provider_node.keys import NodeKeys
from provider_node.resources import OPRF_PROTOCOL_MODES, Resource, index_mode

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "IndexMissingError",
    "IndexReport",
    "InvalidRows",
    "LoadReport",
    "LoaderError",
    "SourceError",
    "count_source_rows",
    "index_built_at",
    "index_path",
    "load_indexes",
    "load_resource",
]

DEFAULT_CHUNK_ROWS = 50_000
# How many row numbers an invalid-row report keeps per (field, reason).
MAX_SAMPLE_ROWS = 10
INDEX_FORMAT = "bidui-match-index"
# Indexes built before the canonical version was stamped on them were built under version 1.
_UNSTAMPED_CANONICAL_VERSION = "1"

Progress = Callable[[int], None]
Record = dict[str, str | None]


class LoaderError(Exception):
    """A resource could not be loaded or its indexes opened; the message says what to do."""


class SourceError(LoaderError):
    """The resource's source cannot be read (connection, query, missing column, CSV syntax)."""


class IndexMissingError(LoaderError):
    """An index the configuration calls for is absent or stale: run ``bidui provider load``."""


@dataclass
class InvalidRows:
    """Invalid source rows for one comparison key, counted by (field, reason), values never kept."""

    count: int = 0
    by_reason: dict[tuple[str, str], int] = field(default_factory=dict)
    sample_rows: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def add(self, row: int, field_name: str, reason: str) -> None:
        self.count += 1
        label = (field_name, reason)
        self.by_reason[label] = self.by_reason.get(label, 0) + 1
        rows = self.sample_rows.setdefault(label, [])
        if len(rows) < MAX_SAMPLE_ROWS:
            rows.append(row)


@dataclass(frozen=True)
class IndexReport:
    key: str
    mode: str
    records: int
    path: Path


@dataclass(frozen=True)
class LoadReport:
    resource_id: str
    key_version: int
    built_at: _dt.datetime
    source_rows: int
    seconds: float
    indexes: tuple[IndexReport, ...]
    invalid: Mapping[str, InvalidRows]
    skipped_reason: str = ""

    @property
    def invalid_rows(self) -> int:
        """Rows invalid for at least one key are counted per key; this is the largest count."""
        return max((rows.count for rows in self.invalid.values()), default=0)


def index_path(config: NodeConfig, resource_id: str, key: str, mode: str) -> Path:
    """``<key>.<mode>.idx``; a verification key ``verify:<key>:<field>`` is stored as
    ``<key>.verify.<field>.<mode>.idx`` (no ``:`` in file names; key names have no dots)."""
    if key.startswith(VERIFY_PREFIX):
        key_name, _, field_name = key.removeprefix(VERIFY_PREFIX).partition(":")
        key = f"{key_name}.verify.{field_name}"
    return config.node.index_dir / resource_id / f"{key}.{mode}.idx"


#: The RFC 9497 mode of each blinded index mode.
_BLINDED_INDEXES = {
    index_mode(ComparisonMode.BLINDED, mode is OprfMode.VOPRF): mode for mode in OprfMode
}


def _oprf_key_pair(keys: NodeKeys, resource: Resource, mode: str) -> tuple[bytes, bytes]:
    protocol = OPRF_PROTOCOL_MODES[_BLINDED_INDEXES[mode]]
    return keys.oprf_key_pair(resource.id, resource.key_version, protocol)


def _key_id(keys: NodeKeys, resource: Resource, mode: str) -> str:
    """Identifies the key an index was built with (not the key): detects regenerated keys, and
    blinded indexes built under another RFC 9497 mode's key."""
    if mode in _BLINDED_INDEXES:
        public_key = _oprf_key_pair(keys, resource, mode)[1]
        return hashlib.sha256(b"bidui oprf public key id" + public_key).hexdigest()[:32]
    secret = keys.hmac_key(resource.id, resource.key_version)
    return hmac.new(secret, b"bidui hmac key id", hashlib.sha256).hexdigest()[:32]


# ---- reading sources -----------------------------------------------------------------------------


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


def _chunks(resource: Resource, chunk_rows: int) -> Iterator[list[Record]]:
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


# ---- building --------------------------------------------------------------------------------


def load_resource(
    resource: Resource,
    config: NodeConfig,
    keys: NodeKeys,
    *,
    progress: Progress | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
) -> LoadReport:
    """Read the source once; build and save every (index key, mode) index the resource offers
    (``Resource.index_keys``: the comparison keys and the verification keys).

    ``progress`` is called with the number of source rows just processed. Resources catalogued as
    ``not_shared`` are never compared, so no index is built for them.
    """
    started = time.perf_counter()
    built_at = clock().astimezone(_dt.UTC)
    if resource.sharing_type is SharingType.NOT_SHARED:
        return LoadReport(
            resource.id, resource.key_version, built_at, 0, 0.0, (), {},
            skipped_reason="not shared (article 24): catalogued, never compared, no index built",
        )  # fmt: skip
    modes = resource.index_modes  # hashed, blinded (modeOPRF), blinded-voprf (modeVOPRF)
    index_keys = resource.index_keys  # comparison keys, then verification keys
    domains = {name: resource.domain(name) for name in index_keys}
    hashers = {}
    if ComparisonMode.HASHED in modes:
        hmac_key = keys.hmac_key(resource.id, resource.key_version)
        hashers = {name: KeyedHasher(hmac_key, domain) for name, domain in domains.items()}
    # Each RFC 9497 mode has its own key, and its context string in HashToGroup's DST.
    servers: dict[str, OprfServer | VoprfServer] = {}
    for mode in modes:
        if mode in _BLINDED_INDEXES:
            kind = VoprfServer if _BLINDED_INDEXES[mode] is OprfMode.VOPRF else OprfServer
            servers[mode] = kind(_oprf_key_pair(keys, resource, mode)[0])
    entries = {(name, mode): bytearray() for name in index_keys for mode in modes}
    invalid = {name: InvalidRows() for name in index_keys}
    rows = 0
    for chunk in _chunks(resource, chunk_rows):
        for name, key in index_keys.items():
            batch = encode_records(domains[name], key, chunk)
            for error in batch.errors:
                invalid[name].add(rows + error.index + 1, error.field, error.reason)
            if name in hashers:
                for tag in hashers[name].tags(batch.encoded):
                    entries[(name, ComparisonMode.HASHED)] += tag[:ENTRY_LENGTH]
            for mode, server in servers.items():
                if batch.encoded:
                    for output in server.evaluate_batch(batch.encoded):
                        entries[(name, mode)] += output[:ENTRY_LENGTH]
        rows += len(chunk)
        if progress is not None:
            progress(len(chunk))
    reports = []
    for (name, mode), buffer in entries.items():
        records = len(buffer) // ENTRY_LENGTH
        metadata = {
            "format": INDEX_FORMAT,
            "resource": resource.id,
            "key": name,
            "mode": str(mode),
            "key_version": str(resource.key_version),
            "canonical_version": str(CANONICAL_VERSION),
            "key_id": _key_id(keys, resource, mode),
            "built_at": built_at.isoformat(),
            "records": str(records),
            "source_rows": str(rows),
            "invalid_rows": str(invalid[name].count),
        }
        index = _build_index(buffer, metadata)
        del buffer[:]
        path = index_path(config, resource.id, name, mode)
        path.parent.mkdir(parents=True, exist_ok=True)
        index.save(path)
        reports.append(IndexReport(name, str(mode), records, path))
    return LoadReport(
        resource_id=resource.id,
        key_version=resource.key_version,
        built_at=built_at,
        source_rows=rows,
        seconds=time.perf_counter() - started,
        indexes=tuple(reports),
        invalid=invalid,
    )


def _build_index(buffer: bytearray, metadata: dict[str, str]) -> MatchIndex:
    """Stream the fixed-size entries to ``MatchIndex.build``, never a list of a million of them."""
    with memoryview(buffer) as view:
        entries = (
            bytes(view[offset : offset + ENTRY_LENGTH])
            for offset in range(0, len(view), ENTRY_LENGTH)
        )
        return MatchIndex.build(entries, metadata=metadata)


# ---- serving ---------------------------------------------------------------------------------


def index_built_at(index: MatchIndex) -> _dt.datetime | None:
    """When ``index`` was built (UTC), from its metadata: for ``NodeMetrics.set_index``."""
    try:
        built_at = _dt.datetime.fromisoformat(index.metadata["built_at"])
    except (KeyError, ValueError):
        return None
    return built_at if built_at.tzinfo is not None else None


def load_indexes(
    resource: Resource, config: NodeConfig, keys: NodeKeys | None = None
) -> dict[tuple[str, str], MatchIndex]:
    """Open every (comparison key, mode) index of ``resource``, checking each was built for it.

    Also checks each was built under this node's canonical version (``CANONICAL_VERSION``: how
    records are normalised and encoded) and, with ``keys``, under the node's current keys. Raises
    ``IndexMissingError`` naming the file and telling the operator to run ``bidui provider load``.
    Each index is memory-mapped: the worker processes of ``serve --workers`` share its entries.
    """
    if resource.sharing_type is SharingType.NOT_SHARED:
        return {}
    remedy = f"run `bidui provider load --config {config.path} --resource {resource.id}`"
    indexes: dict[tuple[str, str], MatchIndex] = {}
    for name in resource.index_keys:
        for mode in resource.index_modes:
            path = index_path(config, resource.id, name, mode)
            if not path.exists():
                raise IndexMissingError(f"resource {resource.id!r}: no index {path}: {remedy}")
            try:
                index = MatchIndex.load(path, mmap=True)  # shared by worker processes
            except (IndexFormatError, OSError) as exc:
                raise IndexMissingError(
                    f"resource {resource.id!r}: index {path} is unreadable ({exc}): {remedy}"
                ) from None
            meta = index.metadata
            expected = {"resource": resource.id, "key": name, "mode": str(mode)}
            for field_name, value in expected.items():
                if meta.get(field_name) != value:
                    raise IndexMissingError(
                        f"resource {resource.id!r}: index {path} was built for {field_name} "
                        f"{meta.get(field_name)!r}, not {value!r}: {remedy}"
                    )
            built_under = meta.get("canonical_version", _UNSTAMPED_CANONICAL_VERSION)
            if built_under != str(CANONICAL_VERSION):
                # Records are normalised or encoded differently now: the old index matches nothing.
                raise IndexMissingError(
                    f"resource {resource.id!r}: index {path} was built under canonical version "
                    f"{built_under}, this node encodes records under version {CANONICAL_VERSION}: "
                    f"{remedy}"
                )
            if meta.get("key_version") != str(resource.key_version):
                raise IndexMissingError(
                    f"resource {resource.id!r}: index {path} was built with key version "
                    f"{meta.get('key_version')}, the configuration says {resource.key_version}: "
                    f"{remedy}"
                )
            if keys is not None and meta.get("key_id") != _key_id(keys, resource, mode):
                raise IndexMissingError(
                    f"resource {resource.id!r}: index {path} was built under other keys than "
                    f"the node's current {mode} key: {remedy}"
                )
            indexes[(name, str(mode))] = index
    return indexes
