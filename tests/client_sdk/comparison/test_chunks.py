"""The chunk pipeline's pieces that need no server: splitting the input, checking the node's
match bits."""

from __future__ import annotations

import pytest

from bidui.v1 import comparison_pb2 as _comparison_pb2
from client_sdk.comparison.chunks import chunk_ranges, match_bits
from client_sdk.errors import ServiceError


@pytest.mark.parametrize(
    ("count", "size", "expected"),
    [
        (0, 10, []),
        (1, 10, [(0, 1)]),
        (10, 10, [(0, 10)]),
        (11, 10, [(0, 10), (10, 11)]),
        (25, 10, [(0, 10), (10, 20), (20, 25)]),
        (3, 1, [(0, 1), (1, 2), (2, 3)]),
    ],
)
def test_chunk_ranges(count: int, size: int, expected: list[tuple[int, int]]) -> None:
    chunks = chunk_ranges(count, size)
    assert [(c.start, c.stop) for c in chunks] == expected
    assert [i for c in chunks for i in c] == list(range(count))


def test_chunk_ranges_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        chunk_ranges(10, 0)
    with pytest.raises(ValueError):
        chunk_ranges(-1, 10)


def test_match_bits_are_unpacked_least_significant_first() -> None:
    result = _comparison_pb2.MatchResult(
        match_bits=bytes([0b0000_0101, 0b1]), item_count=9, match_count=3, comparison_id="c"
    )
    assert match_bits(result, 9).tolist() == [
        True,
        False,
        True,
        False,
        False,
        False,
        False,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("bits", "item_count", "match_count"),
    [
        (b"\x01", 8, 1),  # answered for 8 items, 9 sent
        (b"\x01", 9, 1),  # one byte for nine items
        (b"\x01\x00\x00", 9, 1),  # three bytes
        (b"\x01\x01", 9, 1),  # match count disagrees
        (b"\x01\x02", 9, 2),  # a padding bit set after the ninth
    ],
)
def test_malformed_answers_are_refused(bits: bytes, item_count: int, match_count: int) -> None:
    result = _comparison_pb2.MatchResult(
        match_bits=bits, item_count=item_count, match_count=match_count
    )
    with pytest.raises(ServiceError):
        match_bits(result, 9)
