"""Match index: membership against a Python set, file round trips and refusals, match bits."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

from comparator.errors import IndexFormatError, InvalidInputError
from comparator.index import ENTRY_LENGTH, MatchIndex, pack_matches, unpack_matches


def _random_entries(rng: random.Random, n: int, length: int = ENTRY_LENGTH) -> list[bytes]:
    return [rng.randbytes(length) for _ in range(n)]


# Entries that trip up naive fixed-width byte handling: trailing and embedded NULs, high bytes,
# and many entries sharing the 4-byte search prefix.
AWKWARD = [
    b"\x00" * 32,
    b"\x00" * 31 + b"\x01",
    b"a" + b"\x00" * 31,
    b"a\x00b" + b"\x00" * 29,
    b"\xff" * 32,
    b"\x80" + b"\x00" * 31,
    *[b"same" + bytes([i]) * 28 for i in range(0, 256, 17)],
]


def test_membership_matches_a_set() -> None:
    rng = random.Random(1)
    entries = _random_entries(rng, 5000) + AWKWARD
    long_entries = _random_entries(rng, 500, 64)  # OPRF outputs: truncated to ENTRY_LENGTH
    index = MatchIndex.build(entries + long_entries + entries[:100])  # duplicates collapse
    members = set(entries) | {e[:ENTRY_LENGTH] for e in long_entries}
    assert len(index) == len(members)
    queries = (
        entries[::7]
        + [e[:ENTRY_LENGTH] for e in long_entries[::5]]
        + _random_entries(rng, 3000)
        + [b"same" + b"\x01" * 28, b"same" + b"\x00" * 27 + b"\x01", b"\x00" * 31 + b"\x02"]
        + AWKWARD
    )
    rng.shuffle(queries)
    found = index.contains(queries)
    assert found.dtype == np.bool_ and found.shape == (len(queries),)
    assert found.tolist() == [q in members for q in queries]


def test_empty_index_and_empty_queries() -> None:
    empty = MatchIndex.build([])
    assert len(empty) == 0
    assert empty.contains([b"x" * 32]).tolist() == [False]
    assert MatchIndex.build([b"x" * 32]).contains([]).tolist() == []


def test_bad_entries_and_queries_refused() -> None:
    with pytest.raises(InvalidInputError):
        MatchIndex.build([b"x" * 32, b"short"])
    index = MatchIndex.build([b"x" * 32])
    for bad in ([b"x" * 31], [b"x" * 32, b"x" * 33], [b"x" * 64]):
        with pytest.raises(InvalidInputError):
            index.contains(bad)
    with pytest.raises(InvalidInputError):
        MatchIndex.build([], metadata={"a": 1})  # type: ignore[dict-item]


def test_progress_and_metadata() -> None:
    seen: list[int] = []
    n = 70_000
    index = MatchIndex.build(
        (i.to_bytes(32, "big") for i in range(n)),
        progress=seen.append,
        metadata={"resource": "residents", "名": "值"},
    )
    assert seen == [65_536, n]
    assert index.metadata == {"resource": "residents", "名": "值"}
    assert index.nbytes == n * (ENTRY_LENGTH + 4)


def test_save_load_round_trip(tmp_path: Path) -> None:
    rng = random.Random(2)
    entries = _random_entries(rng, 2000) + AWKWARD
    index = MatchIndex.build(entries, metadata={"key_version": "3"})
    path = tmp_path / "residents.idx"
    index.save(path)
    assert os.stat(path).st_mode & 0o077 == 0  # readable by the node's user only
    loaded = MatchIndex.load(path)
    assert len(loaded) == len(index) and loaded.metadata == {"key_version": "3"}
    queries = entries[::3] + _random_entries(rng, 500)
    assert loaded.contains(queries).tolist() == index.contains(queries).tolist()
    MatchIndex.build([]).save(path)  # replaces the old file
    assert len(MatchIndex.load(path)) == 0
    assert sorted(os.listdir(tmp_path)) == ["residents.idx"]  # no temporary files left


def test_failed_save_leaves_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "r.idx"
    MatchIndex.build([b"a" * 32]).save(path)
    index = MatchIndex.build([b"b" * 32])

    def broken(self: MatchIndex, out: object) -> None:
        raise OSError("disk full")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MatchIndex, "_write", broken)
        with pytest.raises(OSError):
            index.save(path)
    assert os.listdir(tmp_path) == ["r.idx"]
    assert MatchIndex.load(path).contains([b"a" * 32]).tolist() == [True]


@pytest.fixture
def saved(tmp_path: Path) -> bytes:
    path = tmp_path / "i.idx"
    MatchIndex.build(_random_entries(random.Random(3), 100), metadata={"m": "v"}).save(path)
    return path.read_bytes()


def _load_bytes(tmp_path: Path, data: bytes) -> MatchIndex:
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    return MatchIndex.load(path)


@pytest.mark.parametrize("cut", [0, 5, 20, 40, 1000, -33, -1])
def test_truncated_file_refused(tmp_path: Path, saved: bytes, cut: int) -> None:
    with pytest.raises(IndexFormatError):
        _load_bytes(tmp_path, saved[:cut])


@pytest.mark.parametrize("offset", [0, 9, 12, 20, 40, 200, 3000, -1])
def test_corrupt_file_refused(tmp_path: Path, saved: bytes, offset: int) -> None:
    data = bytearray(saved)
    data[offset] ^= 0x01
    with pytest.raises(IndexFormatError):
        _load_bytes(tmp_path, bytes(data))


def test_trailing_data_and_unknown_files_refused(tmp_path: Path, saved: bytes) -> None:
    for data in (
        saved + b"\x00",
        b"",
        b"not an index at all" * 10,
        b"BIDUIIDX\x00\x02" + saved[10:],
    ):
        with pytest.raises(IndexFormatError):
            _load_bytes(tmp_path, data)


def test_missing_file_is_not_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        MatchIndex.load(tmp_path / "absent.idx")


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 16, 1001])
def test_pack_unpack_round_trip(count: int) -> None:
    rng = random.Random(count)
    flags = [rng.random() < 0.5 for _ in range(count)]
    packed = pack_matches(np.array(flags, dtype=bool))
    assert len(packed) == (count + 7) // 8
    assert unpack_matches(packed, count) == flags
    assert pack_matches(flags) == packed


def test_pack_bit_order() -> None:
    # Item i is bit i % 8 of byte i // 8, least significant bit first.
    assert pack_matches([True, False, False, False, False, False, False, False, False, True]) == (
        b"\x01\x02"
    )


def test_unpack_refuses_wrong_sizes_and_padding() -> None:
    with pytest.raises(InvalidInputError):
        unpack_matches(b"\x00", 9)
    with pytest.raises(InvalidInputError):
        unpack_matches(b"\x00\x00", 8)
    with pytest.raises(InvalidInputError):
        unpack_matches(b"\x80", 7)  # bit 7 is padding for 7 items
    with pytest.raises(InvalidInputError):
        unpack_matches(b"", -1)
    assert unpack_matches(b"", 0) == []


def test_from_buffer_is_build_without_a_copy() -> None:
    rng = random.Random(5)
    entries = [rng.randbytes(ENTRY_LENGTH) for _ in range(5_000)]
    entries += entries[:100]  # repeated entries are kept once, as by build
    rng.shuffle(entries)
    buffer = bytearray(b"".join(entries))
    built = MatchIndex.build(entries, metadata={"mode": "hashed"})
    taken = MatchIndex.from_buffer(buffer, metadata={"mode": "hashed"})
    assert len(taken) == len(built) == 5_000
    assert list(taken.contains(entries)) == [True] * len(entries)
    assert not taken.contains([rng.randbytes(ENTRY_LENGTH)])[0]
    assert bytes(buffer[:ENTRY_LENGTH]) == min(entries)  # sorted in place, not copied
    with pytest.raises(InvalidInputError, match="not whole entries"):
        MatchIndex.from_buffer(bytearray(ENTRY_LENGTH + 1))
