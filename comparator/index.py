"""The provider's match index: a sorted fixed-width array of tags, and the match bits sent back.

The node answers "is this tag one of my records?" for batches of up to a million queries, against
indexes of millions of records, and must keep several resources in memory at once. So the index is
a single sorted numpy array of ``ENTRY_LENGTH``-byte entries (32 bytes per record: HMAC tags as
they are, 64-byte OPRF outputs truncated - 256 bits stay collision-free) plus a contiguous copy of
each entry's first 4 bytes as ``uint32`` (4 bytes per record) for the binary search, because numpy
searches integers about five times faster than 32-byte strings. A batch lookup is::

    pos   = searchsorted(prefix32, query_prefix32)          # first entry with the same prefix
    match = entries[pos] == query                            # one vectorised 32-byte compare
    # rare: a query whose prefix occurs but is not first among entries sharing it -> full search
    retry = ~match & (prefix32[pos] == query_prefix32)
    match[retry] = entries[searchsorted(entries, query[retry])] == query[retry]

File format (all integers big-endian), written atomically::

    magic b"BIDUIIDX" | u16 version | u16 entry length | u32 len(metadata) | metadata (UTF-8 JSON)
    | u64 count | count * entry length bytes (sorted, distinct) | SHA-256 of everything before

``MatchIndex.load(path, mmap=True)`` maps the entries from the file instead of reading them
(``bidui provider serve``): the node's worker processes then share one copy of them in the page
cache, and only the 4-byte prefixes are each worker's own (36 -> 4 private bytes per record). The
checksum and the order are still checked once, at open. The mapping stays valid when the file is
replaced (``save`` renames a new file over it: the node keeps answering from the old one until it
restarts); a file changed in place would change answers under the node, which nothing in bidui
does.

Match bits (``pack_matches``) put item i in bit i % 8 of byte i // 8, least significant bit first.
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap as _mmap
import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from comparator.errors import IndexFormatError, InvalidInputError

__all__ = ["ENTRY_LENGTH", "MatchIndex", "pack_matches", "unpack_match_array", "unpack_matches"]

ENTRY_LENGTH = 32
"""Bytes kept per indexed record; longer entries (64-byte OPRF outputs) are truncated to this."""

MAGIC = b"BIDUIIDX"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sHHI")  # magic, version, entry length, metadata length
_COUNT = struct.Struct(">Q")
_CHECKSUM_LENGTH = 32
_MAX_METADATA_BYTES = 1 << 20

_ENTRY_DTYPE = np.dtype(f"S{ENTRY_LENGTH}")
# Entries are joined into the build buffer this many at a time: few enough that the short-lived
# bytes objects leave little heap behind, enough that the joins cost nothing.
_CHUNK = 1 << 13
_PROGRESS_EVERY = 1 << 16  # entries between progress calls (a multiple of _CHUNK)
_IO_CHUNK = 1 << 24  # bytes per read/write/hash step, so files are never held twice in memory

BoolArray = npt.NDArray[np.bool_]


def _distinct(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A sorted array without its repeated entries (the same array when there are none)."""
    if len(array) > 1:
        distinct = np.empty(len(array), dtype=bool)
        distinct[0] = True
        np.not_equal(array[1:], array[:-1], out=distinct[1:])
        if not distinct.all():
            return array[distinct]
    return array


def _prefix32(entries: npt.NDArray[Any]) -> npt.NDArray[np.uint32]:
    """The first 4 bytes of each entry as big-endian integers, in a contiguous native array."""
    words = entries.view(np.dtype(">u4"))
    return np.ascontiguousarray(words[:: ENTRY_LENGTH // 4], dtype=np.uint32)


class MatchIndex:
    """A set of ``ENTRY_LENGTH``-byte entries answering batched membership queries.

    Build with ``MatchIndex.build`` or ``MatchIndex.load``. Entries are stored sorted and distinct,
    so ``len(index)`` counts distinct entries.
    """

    __slots__ = ("_entries", "_metadata", "_prefix")

    def __init__(self, entries: npt.NDArray[Any], metadata: Mapping[str, str]) -> None:
        # Private: ``entries`` must already be a sorted, distinct array of dtype S{ENTRY_LENGTH}.
        self._entries = entries
        self._prefix = _prefix32(entries)
        self._metadata = _check_metadata(metadata)

    @classmethod
    def build(
        cls,
        entries: Iterable[bytes],
        *,
        progress: Callable[[int], None] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> MatchIndex:
        """Build from an iterable of entries of at least ``ENTRY_LENGTH`` bytes each.

        ``progress(count)`` is called every 65,536 entries and once at the end with the number of
        entries read so far. Entries are gathered in chunks into one growing byte buffer, so a
        million-entry build never holds a million Python ``bytes`` objects at once.
        """
        meta = _check_metadata(metadata or {})
        buffer = bytearray()
        count = 0
        chunk: list[bytes] = []
        for entry in entries:
            if len(entry) < ENTRY_LENGTH:
                raise InvalidInputError(
                    f"index entry {count + len(chunk)} is shorter than {ENTRY_LENGTH} bytes"
                )
            chunk.append(entry[:ENTRY_LENGTH])
            if len(chunk) == _CHUNK:
                buffer += b"".join(chunk)
                count += len(chunk)
                chunk.clear()
                if progress is not None and count % _PROGRESS_EVERY == 0:
                    progress(count)
        buffer += b"".join(chunk)
        count += len(chunk)
        del chunk
        if progress is not None:
            progress(count)
        return cls.from_buffer(buffer, metadata=meta)

    @classmethod
    def from_buffer(
        cls, buffer: bytearray, *, metadata: Mapping[str, str] | None = None
    ) -> MatchIndex:
        """Build from ``buffer``, the entries laid end to end (``ENTRY_LENGTH`` bytes each).

        The buffer is sorted in place and the index keeps it: no copy of the entries (a loader's
        N = 10,000,000 records are 320 MB an index). The caller must not use or resize
        ``buffer`` afterwards.
        """
        meta = _check_metadata(metadata or {})
        if len(buffer) % ENTRY_LENGTH:
            raise InvalidInputError(
                f"a buffer of {len(buffer)} bytes is not whole entries of {ENTRY_LENGTH} bytes"
            )
        array = np.frombuffer(buffer, dtype=_ENTRY_DTYPE)
        array.sort()
        return cls(_distinct(array), meta)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes of the index's arrays (entries plus search prefixes), mapped or held."""
        return int(self._entries.nbytes + self._prefix.nbytes)

    @property
    def mapped(self) -> bool:
        """Whether the entries are mapped from the index file (``load(mmap=True)``), not held."""
        return isinstance(getattr(self._entries.base, "obj", None), _mmap.mmap)

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._metadata)

    def contains(self, queries: Sequence[bytes]) -> BoolArray:
        """For each query of exactly ``ENTRY_LENGTH`` bytes, whether it is in the index."""
        n = len(queries)
        if n and set(map(len, queries)) != {ENTRY_LENGTH}:
            bad = next(i for i, q in enumerate(queries) if len(q) != ENTRY_LENGTH)
            raise InvalidInputError(f"query {bad} is not {ENTRY_LENGTH} bytes")
        if n == 0 or len(self._entries) == 0:
            return np.zeros(n, dtype=bool)
        try:
            query = np.frombuffer(b"".join(queries), dtype=_ENTRY_DTYPE)
        except TypeError:
            raise InvalidInputError("queries must be bytes") from None
        query_prefix = _prefix32(query)
        last = len(self._entries) - 1
        pos = np.searchsorted(self._prefix, query_prefix)
        np.minimum(pos, last, out=pos)
        match: BoolArray = self._entries[pos] == query
        retry = ~match & (self._prefix[pos] == query_prefix)
        if retry.any():
            sub = query[retry]
            sub_pos = np.minimum(np.searchsorted(self._entries, sub), last)
            match[retry] = self._entries[sub_pos] == sub
        return match

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to ``path`` atomically: a crash leaves the old file or the new one.

        The file is created readable by its owner only: the entries are PRF outputs or tags of the
        provider's records and must not leave the node.
        """
        target = Path(path)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                self._write(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def _write(self, out: BinaryIO) -> None:
        digest = hashlib.sha256()

        def emit(data: bytes | memoryview) -> None:
            digest.update(data)
            out.write(data)

        meta = json.dumps(self._metadata, sort_keys=True, ensure_ascii=False).encode("utf-8")
        emit(_HEADER.pack(MAGIC, FORMAT_VERSION, ENTRY_LENGTH, len(meta)))
        emit(meta)
        emit(_COUNT.pack(len(self._entries)))
        body = self._entries.view(np.uint8).data
        for start in range(0, len(body), _IO_CHUNK):
            emit(body[start : start + _IO_CHUNK])
        out.write(digest.digest())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, mmap: bool = False) -> MatchIndex:
        """Read an index written by ``save``; raises ``IndexFormatError`` if it is not intact.

        With ``mmap``, the entries stay in the file, mapped read-only: processes that map the same
        file share its pages (the page cache) instead of each holding a copy. The whole file is
        still read once here, to check its checksum and order.
        """
        try:
            with open(path, "rb") as src:
                return cls._map(src) if mmap else cls._read(src)
        except IndexFormatError:
            raise
        except (OSError, ValueError, UnicodeDecodeError, struct.error) as exc:
            if isinstance(exc, FileNotFoundError | PermissionError):
                raise
            raise IndexFormatError(f"cannot read the index file: {type(exc).__name__}") from None

    @classmethod
    def _read(cls, src: io.BufferedReader) -> MatchIndex:
        digest = hashlib.sha256()
        metadata, count = _read_header(src, digest)
        entries = np.empty(count, dtype=_ENTRY_DTYPE)
        body = entries.view(np.uint8).data
        for start in range(0, len(body), _IO_CHUNK):
            part = body[start : start + _IO_CHUNK]
            if src.readinto(part) != len(part):
                raise IndexFormatError("the index file is truncated")
            digest.update(part)
        if src.read(_CHECKSUM_LENGTH + 1) != digest.digest():
            raise IndexFormatError("the index file is corrupt (checksum mismatch)")
        return cls._checked(entries, metadata)

    @classmethod
    def _map(cls, src: io.BufferedReader) -> MatchIndex:
        digest = hashlib.sha256()
        metadata, count = _read_header(src, digest)
        offset = src.tell()
        # The header checked the file's size, so the mapping holds the entries and the checksum.
        # The mapping outlives ``src``: the entries array keeps it open.
        mapped = _mmap.mmap(src.fileno(), 0, access=_mmap.ACCESS_READ)
        entries = np.frombuffer(mapped, dtype=_ENTRY_DTYPE, count=count, offset=offset)
        body = entries.view(np.uint8).data
        for start in range(0, len(body), _IO_CHUNK):
            digest.update(body[start : start + _IO_CHUNK])
        stored = mapped[offset + count * ENTRY_LENGTH :]
        if stored != digest.digest():
            raise IndexFormatError("the index file is corrupt (checksum mismatch)")
        return cls._checked(entries, metadata)

    @classmethod
    def _checked(cls, entries: npt.NDArray[Any], metadata: object) -> MatchIndex:
        if not isinstance(metadata, dict):
            raise IndexFormatError("the index metadata is not a JSON object")
        if len(entries) > 1 and not bool(np.all(entries[1:] > entries[:-1])):
            # Only a buggy writer gets here past the checksum; unsorted entries would give wrong
            # answers silently, so refuse them.
            raise IndexFormatError("the index entries are not sorted")
        try:
            return cls(entries, metadata)
        except InvalidInputError as exc:
            raise IndexFormatError(f"the index metadata is invalid: {exc}") from None


def _read_header(src: io.BufferedReader, digest: Any) -> tuple[object, int]:
    """The metadata and entry count; checks that the file's size fits them exactly."""

    def take(size: int) -> bytes:
        data = src.read(size)
        if len(data) != size:
            raise IndexFormatError("the index file is truncated")
        digest.update(data)
        return data

    magic, version, entry_length, meta_length = _HEADER.unpack(take(_HEADER.size))
    if magic != MAGIC:
        raise IndexFormatError("not a bidui match index file")
    if version != FORMAT_VERSION:
        raise IndexFormatError(f"unsupported index format version {version}")
    if entry_length != ENTRY_LENGTH:
        raise IndexFormatError(f"unsupported entry length {entry_length}")
    if meta_length > _MAX_METADATA_BYTES:
        raise IndexFormatError("the index metadata is implausibly large")
    metadata = json.loads(take(meta_length).decode("utf-8"))
    (count,) = _COUNT.unpack(take(_COUNT.size))
    # Check the size before allocating or mapping, so a corrupt count cannot ask for terabytes.
    remaining = os.fstat(src.fileno()).st_size - src.tell()
    if remaining != count * ENTRY_LENGTH + _CHECKSUM_LENGTH:
        raise IndexFormatError("the index file is truncated or has trailing data")
    return metadata, int(count)


def _check_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise InvalidInputError("index metadata must map strings to strings")
    return dict(metadata)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); some systems cannot open a directory, which is harmless."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def pack_matches(mask: Sequence[bool] | BoolArray) -> bytes:
    """Match bits as bytes: item i is bit i % 8 of byte i // 8, least significant bit first."""
    bits = np.asarray(mask, dtype=bool)
    if bits.ndim != 1:
        raise InvalidInputError("the match mask must be one-dimensional")
    return np.packbits(bits, bitorder="little").tobytes()


def unpack_matches(bits: bytes, count: int) -> list[bool]:
    """The ``count`` match flags packed by ``pack_matches``, as a list (see ``unpack_match_array``).

    Refuses a byte string of the wrong length and set padding bits, either of which means the
    answer does not belong to this batch.
    """
    flags: list[bool] = unpack_match_array(bits, count).tolist()
    return flags


def unpack_match_array(bits: bytes, count: int) -> BoolArray:
    """``unpack_matches`` as a boolean array: no Python object per flag, for large answers."""
    if count < 0:
        raise InvalidInputError("the match count cannot be negative")
    if len(bits) != (count + 7) // 8:
        expected = (count + 7) // 8
        raise InvalidInputError(f"{count} match bits need {expected} bytes, not {len(bits)}")
    flags = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), bitorder="little")
    if flags[count:].any():
        raise InvalidInputError("the padding bits after the last match bit must be zero")
    result: BoolArray = flags[:count].astype(bool)
    return result
