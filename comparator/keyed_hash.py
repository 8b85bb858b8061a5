"""Keyed hashing for the hashed comparison mode: HMAC-SHA-256 tags of encoded records.

The provider node holds one secret key per resource and hands it only to authorised requesters;
both sides turn each encoded record (``comparator.canonical``) into a tag and the node matches tags.
Without the key nobody can compute a tag of a guessed ID number, which is what keeps an outsider who
sees tags from testing guesses. (An authorised requester can, which is why the blinded mode exists.)

Tags are domain-separated twice: the encoded record already names resource, key and version, and the
hasher absorbs its own prefix as well::

    tag = HMAC-SHA-256(key, b"bidui-hmac-v1" || u32(len(resource_id)) || resource_id
                            || u32(len(key_name)) || key_name || u64(key_version) || encoded)

so a key reused by mistake across resources or versions still yields unrelated tags.

HMAC is computed from its RFC 2104 definition, ``H((K ^ opad) || H((K ^ ipad) || m))``, with the
two SHA-256 states after ``K ^ ipad || prefix`` and ``K ^ opad`` computed once; each tag then costs
two state copies and two small hashes. Measured per tag (Python 3.11, OpenSSL 3.0, 2026-12):
0.65 µs this way, 1.5 µs with ``hmac.new(...).digest()``, 1.7 µs with the one-shot ``hmac.digest``
(OpenSSL 3 looks the digest up again on every call), 1.1 µs copying an ``hmac.HMAC`` keyed once,
0.77 µs hashing ``K ^ ipad`` again each time. The tests check it against RFC 4231 and the standard
library's ``hmac``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from comparator.canonical import Domain
from comparator.errors import InvalidInputError

__all__ = ["HMAC_KEY_LENGTH", "TAG_LENGTH", "KeyedHasher", "generate_hmac_key"]

TAG_LENGTH = 32
"""Bytes in a tag: the full SHA-256 output, so tags are also usable as match index entries."""

HMAC_KEY_LENGTH = 32
"""Bytes in a hashed-mode key (256 bits, as RFC 2104 recommends: at least the output length)."""

HASH_LABEL = b"bidui-hmac-v1"

_BLOCK_SIZE = 64  # SHA-256 block size in bytes (RFC 2104's B)
_IPAD = bytes(0x36 for _ in range(_BLOCK_SIZE))
_OPAD = bytes(0x5C for _ in range(_BLOCK_SIZE))


def generate_hmac_key() -> bytes:
    """A new random hashed-mode key. Keep it secret: whoever holds it can test guesses."""
    return secrets.token_bytes(HMAC_KEY_LENGTH)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _hmac_states(key: bytes, prefix: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states after ``(K ^ ipad) || prefix`` and after ``K ^ opad`` (RFC 2104).

    ``HMAC(K, prefix || m)`` is then ``outer.update(inner.update(m).digest()).digest()``.
    Keys longer than the block size would first be hashed; hashed-mode keys never are.
    """
    if len(key) > _BLOCK_SIZE:
        raise InvalidInputError(f"an HMAC key here is at most {_BLOCK_SIZE} bytes")
    # RFC 2104: keys shorter than the block size are padded with zeros to B bytes.
    padded = bytes(key).ljust(_BLOCK_SIZE, b"\0")
    return hashlib.sha256(_xor(padded, _IPAD) + prefix), hashlib.sha256(_xor(padded, _OPAD))


class KeyedHasher:
    """Computes the tags of encoded records under one resource key and one domain.

    The key is never shown by ``repr`` or ``str``.
    """

    __slots__ = ("_domain", "_inner", "_outer")

    def __init__(self, key: bytes, domain: Domain) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) != HMAC_KEY_LENGTH:
            raise InvalidInputError(f"a hashed-mode key must be {HMAC_KEY_LENGTH} bytes")
        if not isinstance(domain, Domain):
            raise InvalidInputError("domain must be a comparator.canonical.Domain")
        self._domain = domain
        self._inner, self._outer = _hmac_states(bytes(key), HASH_LABEL + domain.encode())

    @property
    def domain(self) -> Domain:
        return self._domain

    def __repr__(self) -> str:
        return f"KeyedHasher(key=<hidden>, domain={self._domain!r})"

    __str__ = __repr__

    def tag(self, encoded: bytes) -> bytes:
        """The ``TAG_LENGTH``-byte tag of one encoded record."""
        inner = self._inner.copy()
        inner.update(encoded)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def tags(self, encoded_list: Sequence[bytes]) -> list[bytes]:
        """The tags of many encoded records, in order."""
        # Bound methods hoisted out of the loop: at ~1 µs per tag, attribute lookups show.
        inner_copy = self._inner.copy
        outer_copy = self._outer.copy
        out: list[bytes] = []
        add = out.append
        for encoded in encoded_list:
            inner = inner_copy()
            inner.update(encoded)
            outer = outer_copy()
            outer.update(inner.digest())
            add(outer.digest())
        return out
