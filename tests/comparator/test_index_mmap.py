"""The memory-mapped load (``MatchIndex.load(path, mmap=True)``): the same answers as the
in-memory load, the same refusals of a damaged file, and a mapping that survives the file's
replacement by ``save``."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from comparator.errors import IndexFormatError
from comparator.index import ENTRY_LENGTH, MatchIndex

# Entries sharing their 4-byte search prefix, NULs and high bytes: the retry path of ``contains``.
AWKWARD = [
    b"\x00" * 32,
    b"\x00" * 31 + b"\x01",
    b"\xff" * 32,
    *[b"same" + bytes([i]) * 28 for i in range(0, 256, 17)],
]


def _entries(rng: random.Random, n: int) -> list[bytes]:
    return [rng.randbytes(ENTRY_LENGTH) for _ in range(n)]


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "residents.idx"
    entries = _entries(random.Random(5), 20_000) + AWKWARD
    MatchIndex.build(entries, metadata={"resource": "residents", "名": "值"}).save(path)
    return path


def test_mapped_lookups_equal_the_in_memory_ones(saved: Path) -> None:
    held, mapped = MatchIndex.load(saved), MatchIndex.load(saved, mmap=True)
    assert mapped.mapped and not held.mapped
    assert len(mapped) == len(held) and mapped.metadata == held.metadata
    assert mapped.nbytes == held.nbytes
    rng = random.Random(6)
    members = _entries(random.Random(5), 20_000)
    queries = members[::3] + AWKWARD + _entries(rng, 5000) + [b"same" + b"\x01" * 28]
    rng.shuffle(queries)
    found = mapped.contains(queries)
    assert found.tolist() == held.contains(queries).tolist()
    assert found.sum() == len(members[::3]) + len(AWKWARD)


def test_empty_index_maps(tmp_path: Path) -> None:
    path = tmp_path / "empty.idx"
    MatchIndex.build([]).save(path)
    index = MatchIndex.load(path, mmap=True)
    assert len(index) == 0 and index.contains([b"x" * 32]).tolist() == [False]


def test_mapping_survives_the_file_being_replaced(saved: Path) -> None:
    mapped = MatchIndex.load(saved, mmap=True)
    member = _entries(random.Random(5), 1)[0]
    MatchIndex.build([b"n" * 32]).save(saved)  # `bidui provider load` renames a new file over it
    assert mapped.contains([member, b"n" * 32]).tolist() == [True, False]
    assert MatchIndex.load(saved, mmap=True).contains([member, b"n" * 32]).tolist() == [
        False,
        True,
    ]


def _damaged(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("offset", [0, 9, 12, 30, 60, 5000, -1])
def test_a_flipped_bit_is_refused(tmp_path: Path, saved: Path, offset: int) -> None:
    data = bytearray(saved.read_bytes())
    data[offset] ^= 0x01
    with pytest.raises(IndexFormatError):
        MatchIndex.load(_damaged(tmp_path / "bad.idx", bytes(data)), mmap=True)


@pytest.mark.parametrize("cut", [0, 5, 40, 1000, -33, -1])
def test_truncated_or_extended_files_are_refused(tmp_path: Path, saved: Path, cut: int) -> None:
    data = saved.read_bytes()
    with pytest.raises(IndexFormatError):
        MatchIndex.load(_damaged(tmp_path / "bad.idx", data[:cut]), mmap=True)
    with pytest.raises(IndexFormatError):
        MatchIndex.load(_damaged(tmp_path / "long.idx", data + b"\x00"), mmap=True)


def test_unsorted_entries_are_refused_past_a_valid_checksum(tmp_path: Path) -> None:
    index = MatchIndex.build([b"a" * 32, b"b" * 32])
    index._entries = index._entries[::-1].copy()  # a buggy writer: valid checksum, wrong order
    path = tmp_path / "unsorted.idx"
    index.save(path)
    with pytest.raises(IndexFormatError, match="not sorted"):
        MatchIndex.load(path, mmap=True)


def test_missing_file_is_not_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        MatchIndex.load(tmp_path / "absent.idx", mmap=True)
