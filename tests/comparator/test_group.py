"""comparator.group: ristretto255 through libsodium, with RFC 9497 deserialization rules."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from comparator import group
from comparator.errors import DeserializeError, InverseError
from comparator.xmd import Expander64

P_BYTES = (2**255 - 19).to_bytes(32, "little")  # the field prime: never a canonical encoding


def _random_element() -> bytes:
    return group.base_mult(group.random_scalar())


def test_constants() -> None:
    assert group.ELEMENT_LENGTH == 32
    assert group.SCALAR_LENGTH == 32
    assert group.libsodium_version() >= "1.0.18"


def test_hash_to_group_batch_matches_single() -> None:
    dst = b"test-dst"
    msgs = [bytes([i]) * i for i in range(10)]
    assert group.hash_to_group_batch(msgs, Expander64(dst)) == [
        group.hash_to_group(m, dst) for m in msgs
    ]
    assert group.hash_to_scalar_batch(msgs, Expander64(dst)) == [
        group.hash_to_scalar(m, dst) for m in msgs
    ]


def test_deserialize_element_accepts_valid() -> None:
    e = _random_element()
    assert group.deserialize_element(e) == e
    assert group.deserialize_element(bytes(bytearray(e))) == e


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes(32), "identity"),
        (P_BYTES, "canonical"),
        (b"\xff" * 32, "canonical"),
        (bytes(31) + b"\x80", "canonical"),  # top bit set: libsodium 1.0.18 alone would accept it
        (bytes(31), "32 bytes"),
        (bytes(33), "32 bytes"),
        (b"", "32 bytes"),
    ],
    ids=["identity", "p", "all-ff", "top-bit", "len31", "len33", "empty"],
)
def test_deserialize_element_refuses(data: bytes, reason: str) -> None:
    with pytest.raises(DeserializeError, match=reason):
        group.deserialize_element(data)


def test_top_bit_of_valid_element_refused() -> None:
    e = bytearray(_random_element())
    e[31] |= 0x80
    with pytest.raises(DeserializeError, match="canonical"):
        group.deserialize_element(bytes(e))
    with pytest.raises(DeserializeError, match="element 0"):
        group.scalar_mult_batch(group.random_scalar(), [bytes(e)], validate=True)


def test_scalar_mult_batch_validation_names_position() -> None:
    k = group.random_scalar()
    good = [_random_element() for _ in range(3)]
    with pytest.raises(DeserializeError, match="blinded element 12: identity"):
        group.scalar_mult_batch(
            k, [*good, bytes(32)], validate=True, start=9, what="blinded element"
        )
    assert group.scalar_mult_batch(k, good, validate=True) == [
        group.scalar_mult(k, e) for e in good
    ]


def test_deserialize_scalar() -> None:
    s = group.random_scalar()
    assert group.deserialize_scalar(s) == s
    order = group.ORDER.to_bytes(32, "little")
    for bad in (order, (group.ORDER + 1).to_bytes(32, "little"), b"\xff" * 32):
        with pytest.raises(DeserializeError, match="non-canonical"):
            group.deserialize_scalar(bad)
    for bad in (bytes(31), bytes(33), b""):
        with pytest.raises(DeserializeError, match="32 bytes"):
            group.deserialize_scalar(bad)
    assert group.deserialize_scalar(bytes(32)) == bytes(32)
    with pytest.raises(DeserializeError, match="zero"):
        group.deserialize_scalar(bytes(32), nonzero=True)
    assert group.deserialize_scalar((group.ORDER - 1).to_bytes(32, "little"), nonzero=True)


def test_scalar_arithmetic() -> None:
    a, b = group.random_scalar(), group.random_scalar()
    ia, ib = int.from_bytes(a, "little"), int.from_bytes(b, "little")
    n = group.ORDER

    def as_int(s: bytes) -> int:
        return int.from_bytes(s, "little")

    assert as_int(group.scalar_add(a, b)) == (ia + ib) % n
    assert as_int(group.scalar_sub(a, b)) == (ia - ib) % n
    assert as_int(group.scalar_mul(a, b)) == (ia * ib) % n
    assert as_int(group.scalar_negate(a)) == (-ia) % n
    assert as_int(group.scalar_invert(a)) == pow(ia, -1, n)
    with pytest.raises(InverseError):
        group.scalar_invert(bytes(32))
    wide = hashlib.sha512(b"x").digest()
    assert as_int(group.scalar_reduce(wide)) == int.from_bytes(wide, "little") % n


def test_batch_invert() -> None:
    scalars = group.random_scalars(50)
    assert group.batch_invert(scalars) == [group.scalar_invert(s) for s in scalars]
    assert group.batch_invert(scalars[:1]) == [group.scalar_invert(scalars[0])]
    assert group.batch_invert([]) == []
    with pytest.raises(InverseError):
        group.batch_invert([scalars[0], bytes(32), scalars[1]])


def test_random_scalars_from_injected_rng() -> None:
    scalars = group.random_scalars(3, lambda n: b"\x01" * n)
    assert len(set(scalars)) == 1
    assert all(group.scalar_is_canonical(s) and s != bytes(32) for s in scalars)
    assert len(set(group.random_scalars(100))) == 100


def test_element_arithmetic() -> None:
    a, b = group.random_scalar(), group.random_scalar()
    pa, pb = group.base_mult(a), group.base_mult(b)
    assert group.add(pa, pb) == group.base_mult(group.scalar_add(a, b))
    assert group.sub(pa, pb) == group.base_mult(group.scalar_sub(a, b))
    assert group.scalar_mult(b, pa) == group.base_mult(group.scalar_mul(a, b))
    assert group.scalar_mult(a, group.GENERATOR) == pa
    assert group.base_mult(bytes(32)) == group.IDENTITY
    assert group.add(group.IDENTITY, pa) == pa
    assert group.sum_of_products([a, b], [pb, pa]) == group.base_mult(
        group.scalar_mul(group.scalar_add(a, a), b)
    )
    assert group.scalar_mult_batch([a, b], [pb, pb]) == [
        group.scalar_mult(a, pb),
        group.scalar_mult(b, pb),
    ]


def test_missing_libsodium_gives_clear_import_error() -> None:
    code = (
        "import ctypes.util\n"
        "ctypes.util.find_library = lambda name: None\n"
        "try:\n"
        "    import comparator.group\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "libsodium23" in out
