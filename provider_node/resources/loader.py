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

The source is read by ``provider_node.resources.source``. Source values stay in memory only while
their
chunk is processed: they are never written, logged or repeated in an error. An invalid source
row is counted under its field and reason with its row number (1-based, header not counted), not
its value, and left out of the index.

A resource that offers verification (``verify`` in its configuration) also gets one index per
verification key and mode (``verify:<key>:<field>``, see ``comparator.verification``), built in the
same pass: ``<key>.verify.<field>.<mode>.idx``.

The work on one chunk (canonicalise, then tag or Evaluate, per index key and mode) is
``index_chunk``: a function of the chunk and a picklable ``ChunkWork`` (the index keys and the
resource's derived keys), returning only the chunk's 32-byte entries and its invalid rows (field,
reason, row). ``load_resource`` runs it on each chunk in this process (``run_locally``), or hands
the chunks to another ``ChunkRunner`` (``provider_node.resources.distributed_load``: Dask workers);
either
way the results are added in source order and the indexes written the same way.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from comparator.canonical import CANONICAL_VERSION, ComparisonKey, Domain, encode_records
from comparator.errors import IndexFormatError
from comparator.index import ENTRY_LENGTH, MatchIndex
from comparator.keyed_hash import KeyedHasher
from comparator.oprf import OprfServer, VoprfServer
from comparator.verification import VERIFY_PREFIX
from provider_node.config import NodeConfig
from provider_node.core.vocabulary import ComparisonMode, OprfMode, SharingType
from provider_node.resources.catalog import OPRF_PROTOCOL_MODES, Resource, index_mode
from provider_node.resources.keys import NodeKeys
from provider_node.resources.source import LoaderError, Record, source_chunks

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "ChunkResult",
    "ChunkRunner",
    "ChunkWork",
    "IndexMissingError",
    "IndexReport",
    "InvalidRows",
    "LoadReport",
    "chunk_work",
    "index_built_at",
    "index_chunk",
    "index_path",
    "load_indexes",
    "load_resource",
    "run_locally",
]

DEFAULT_CHUNK_ROWS = 50_000
# How many row numbers an invalid-row report keeps per (field, reason).
MAX_SAMPLE_ROWS = 10
INDEX_FORMAT = "bidui-match-index"
# Indexes built before the canonical version was stamped on them were built under version 1.
_UNSTAMPED_CANONICAL_VERSION = "1"

Progress = Callable[[int], None]


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


# ---- building --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkWork:
    """What the work on one chunk needs, and nothing else of the node's: the index keys, the index
    modes and the resource's derived keys (its HMAC key, each RFC 9497 mode's private key; never
    the master secrets). Picklable, for ``provider_node.resources.distributed_load``; its repr
    shows no key.
    """

    index_keys: tuple[tuple[str, Domain, ComparisonKey], ...]
    modes: tuple[str, ...]
    hmac_key: bytes | None = field(default=None, repr=False)
    #: (blinded index mode, private key), one per RFC 9497 mode the resource offers.
    oprf_keys: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class ChunkResult:
    """One chunk's outcome: no source value, only the entries and where rows were invalid."""

    rows: int
    #: Per (index key, mode): the valid rows' ``ENTRY_LENGTH``-byte entries, joined, in row order.
    entries: dict[tuple[str, str], bytes]
    #: Per index key: (row in the chunk, 0-based; field; reason) of each row left out.
    errors: dict[str, tuple[tuple[int, str, str], ...]]


#: Runs ``index_chunk`` on each chunk and yields the results in the chunks' order.
ChunkRunner = Callable[[ChunkWork, Iterable[Sequence[Record]]], Iterator[ChunkResult]]


def chunk_work(resource: Resource, keys: NodeKeys) -> ChunkWork:
    """The ``ChunkWork`` of ``resource`` under the node's current keys."""
    modes = resource.index_modes  # hashed, blinded (modeOPRF), blinded-voprf (modeVOPRF)
    hmac_key = None
    if ComparisonMode.HASHED in modes:
        hmac_key = keys.hmac_key(resource.id, resource.key_version)
    # Each RFC 9497 mode has its own key, and its context string in HashToGroup's DST.
    oprf_keys = tuple(
        (mode, _oprf_key_pair(keys, resource, mode)[0])
        for mode in modes
        if mode in _BLINDED_INDEXES
    )
    return ChunkWork(
        index_keys=tuple(
            (name, resource.domain(name), key) for name, key in resource.index_keys.items()
        ),
        modes=tuple(str(mode) for mode in modes),
        hmac_key=hmac_key,
        oprf_keys=oprf_keys,
    )


def index_chunk(work: ChunkWork, chunk: Sequence[Record]) -> ChunkResult:
    """Canonicalise ``chunk``'s rows per index key, then tag (hashed) or Evaluate (blinded) them."""
    servers: dict[str, OprfServer | VoprfServer] = {}
    for mode, secret in work.oprf_keys:
        kind = VoprfServer if _BLINDED_INDEXES[mode] is OprfMode.VOPRF else OprfServer
        servers[mode] = kind(secret)
    entries: dict[tuple[str, str], bytes] = {}
    errors: dict[str, tuple[tuple[int, str, str], ...]] = {}
    for name, domain, key in work.index_keys:
        batch = encode_records(domain, key, chunk)
        errors[name] = tuple((error.index, error.field, error.reason) for error in batch.errors)
        for mode in work.modes:
            outputs: list[bytes] = []
            if mode == ComparisonMode.HASHED:
                assert work.hmac_key is not None
                outputs = KeyedHasher(work.hmac_key, domain).tags(batch.encoded)
            elif batch.encoded:
                outputs = servers[mode].evaluate_batch(batch.encoded)
            entries[(name, mode)] = b"".join(output[:ENTRY_LENGTH] for output in outputs)
    return ChunkResult(len(chunk), entries, errors)


def run_locally(work: ChunkWork, chunks: Iterable[Sequence[Record]]) -> Iterator[ChunkResult]:
    """``index_chunk`` in this process, one chunk at a time (blinded batches on all its threads)."""
    for chunk in chunks:
        yield index_chunk(work, chunk)


def load_resource(
    resource: Resource,
    config: NodeConfig,
    keys: NodeKeys,
    *,
    progress: Progress | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
    run_chunks: ChunkRunner = run_locally,
) -> LoadReport:
    """Read the source once; build and save every (index key, mode) index the resource offers
    (``Resource.index_keys``: the comparison keys and the verification keys).

    ``progress`` is called with the number of source rows just processed. ``run_chunks`` does the
    work on the chunks (default: here). Resources catalogued as ``not_shared`` are never compared,
    so no index is built for them.
    """
    started = time.perf_counter()
    built_at = clock().astimezone(_dt.UTC)
    if resource.sharing_type is SharingType.NOT_SHARED:
        return LoadReport(
            resource.id, resource.key_version, built_at, 0, 0.0, (), {},
            skipped_reason="not shared (article 24): catalogued, never compared, no index built",
        )  # fmt: skip
    work = chunk_work(resource, keys)
    entries = {(name, mode): bytearray() for name, _, _ in work.index_keys for mode in work.modes}
    invalid = {name: InvalidRows() for name, _, _ in work.index_keys}
    rows = 0
    for result in run_chunks(work, source_chunks(resource, chunk_rows)):
        for name, errors in result.errors.items():
            for position, field_name, reason in errors:
                invalid[name].add(rows + position + 1, field_name, reason)
        for label, joined in result.entries.items():
            entries[label] += joined
        rows += result.rows
        if progress is not None:
            progress(result.rows)
    reports = []
    for name, mode in list(entries):
        buffer = entries.pop((name, mode))  # the index sorts it in place and keeps it
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
        index = MatchIndex.from_buffer(buffer, metadata=metadata)
        path = index_path(config, resource.id, name, mode)
        path.parent.mkdir(parents=True, exist_ok=True)
        index.save(path)
        del index, buffer  # one index's entries in memory at a time
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
