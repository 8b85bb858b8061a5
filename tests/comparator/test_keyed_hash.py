"""Keyed hashing: RFC 4231 known answers for the HMAC construction, then the hasher's behaviour."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from comparator.canonical import Domain
from comparator.errors import InvalidInputError
from comparator.keyed_hash import (
    HASH_LABEL,
    HMAC_KEY_LENGTH,
    TAG_LENGTH,
    KeyedHasher,
    _hmac_states,
    generate_hmac_key,
)

DOMAIN = Domain("residents", "id_number", 1)
KEY = bytes(range(32))

# RFC 4231 section 4, test cases 1-4 (HMAC-SHA-256; cases 6-7 use keys longer than a block).
RFC4231 = [
    (
        b"\x0b" * 20,
        b"Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        b"\xaa" * 20,
        b"\xdd" * 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        bytes(range(1, 26)),
        b"\xcd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
]


@pytest.mark.parametrize(("key", "data", "expected"), RFC4231, ids=["tc1", "tc2", "tc3", "tc4"])
def test_rfc4231_known_answers(key: bytes, data: bytes, expected: str) -> None:
    # Split the message between the precomputed prefix and the per-item part, as the hasher does.
    inner, outer = _hmac_states(key, data[:3])
    inner.update(data[3:])
    outer.update(inner.digest())
    assert outer.hexdigest() == expected


def test_tag_is_hmac_sha256_of_label_domain_and_record() -> None:
    encoded = b"some encoded record"
    expected = hmac.new(KEY, HASH_LABEL + DOMAIN.encode() + encoded, hashlib.sha256).digest()
    hasher = KeyedHasher(KEY, DOMAIN)
    assert hasher.tag(encoded) == expected
    assert len(expected) == TAG_LENGTH == 32


def test_tags_match_tag_and_keep_order() -> None:
    hasher = KeyedHasher(KEY, DOMAIN)
    items = [b"", b"a", b"b", b"a" * 1000]
    assert hasher.tags(items) == [hasher.tag(i) for i in items]
    assert hasher.tags([]) == []
    assert len(set(hasher.tags(items))) == len(items)


@pytest.mark.parametrize(
    "other",
    [
        Domain("residents2", "id_number", 1),
        Domain("residents", "id_number+name", 1),
        Domain("residents", "id_number", 2),
    ],
)
def test_domain_separation(other: Domain) -> None:
    assert KeyedHasher(KEY, DOMAIN).tag(b"x") != KeyedHasher(KEY, other).tag(b"x")


def test_key_changes_the_tag() -> None:
    assert KeyedHasher(KEY, DOMAIN).tag(b"x") != KeyedHasher(KEY[::-1], DOMAIN).tag(b"x")


@pytest.mark.parametrize("key", [b"", b"k" * 31, b"k" * 33, "k" * 32])
def test_wrong_key_refused(key: bytes) -> None:
    with pytest.raises(InvalidInputError):
        KeyedHasher(key, DOMAIN)


def test_key_never_shown() -> None:
    hasher = KeyedHasher(KEY, DOMAIN)
    for text in (repr(hasher), str(hasher)):
        assert KEY.hex() not in text and repr(KEY) not in text
        assert "residents" in text


def test_generate_hmac_key() -> None:
    a, b = generate_hmac_key(), generate_hmac_key()
    assert len(a) == len(b) == HMAC_KEY_LENGTH and a != b
