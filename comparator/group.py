"""ristretto255 (RFC 9496) behind one small module, for RFC 9497's ristretto255-SHA512 suite.

Every other module of bidui works on the bytes this module returns and never imports the binding,
so the binding can change here alone. Today it is pysodium, ctypes over the operating system's
libsodium (>= 1.0.18); ctypes releases the GIL during each libsodium call, so the batch helpers
below scale across threads (see ``comparator.oprf.parallel``).

Representation: an element is its canonical 32-byte encoding, a scalar its 32-byte little-endian
encoding, reduced modulo the group order. Serialization is therefore the identity function; the
``deserialize_*`` functions are where bytes from outside are validated.

Two kinds of helpers:

* single-value functions (``scalar_mult``, ``add``, ``hash_to_group`` ...) for the few operations
  a protocol run does once;
* batch functions (``hash_to_group_batch``, ``scalar_mult_batch`` ...) that run a tight loop over
  a slice of a batch, writing into one preallocated buffer. They are what the OPRF roles hand to the
  thread pool.

No curve arithmetic is done in Python: all of it is libsodium's.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence

from comparator.errors import DeserializeError, InverseError
from comparator.xmd import Expander64, expand_message_xmd

try:
    import pysodium as _pysodium
except (ImportError, OSError, AttributeError, ValueError, TypeError) as exc:  # pragma: no cover
    raise ImportError(
        "comparator.group needs the operating system's libsodium (>= 1.0.18), loaded through "
        "pysodium, and could not load it. Install the OS package (Debian/Ubuntu: "
        "`apt-get install libsodium23`; Fedora: `dnf install libsodium`) and the Python package "
        f"`pysodium`. Cause: {exc!r}"
    ) from exc

_lib = _pysodium.sodium
if not hasattr(_lib, "crypto_core_ristretto255_from_hash"):  # pragma: no cover
    raise ImportError(
        "the loaded libsodium has no ristretto255 functions: libsodium >= 1.0.18 is required "
        "(Debian/Ubuntu: `apt-get install libsodium23`)"
    )

ELEMENT_LENGTH = 32
SCALAR_LENGTH = 32
HASH_LENGTH = 64  # Hash = SHA-512, Nh = 64
#: The group order (RFC 9496 section 4.1), for documentation and tests.
ORDER = 2**252 + 27742317777372353535851937790883648493
#: The identity element's canonical encoding.
IDENTITY = bytes(ELEMENT_LENGTH)
ZERO_SCALAR = bytes(SCALAR_LENGTH)
ONE_SCALAR = b"\x01" + bytes(SCALAR_LENGTH - 1)
_ORDER_BYTES = ORDER.to_bytes(SCALAR_LENGTH, "little")

# Raw libsodium entry points. No argtypes are set (pysodium shares these function objects): bytes
# arguments pass as const pointers, outputs are ctypes buffers or byref(buffer, offset).
_from_hash = _lib.crypto_core_ristretto255_from_hash
_mult = _lib.crypto_scalarmult_ristretto255
_mult_base = _lib.crypto_scalarmult_ristretto255_base
_add = _lib.crypto_core_ristretto255_add
_sub = _lib.crypto_core_ristretto255_sub
_is_valid_point = _lib.crypto_core_ristretto255_is_valid_point
_s_reduce = _lib.crypto_core_ristretto255_scalar_reduce
_s_invert = _lib.crypto_core_ristretto255_scalar_invert
_s_mul = _lib.crypto_core_ristretto255_scalar_mul
_s_add = _lib.crypto_core_ristretto255_scalar_add
_s_sub = _lib.crypto_core_ristretto255_scalar_sub
_s_negate = _lib.crypto_core_ristretto255_scalar_negate
_byref = ctypes.byref
_buffer = ctypes.create_string_buffer

RandomSource = Callable[[int], bytes]


def libsodium_version() -> str:
    """The version string of the libsodium that was loaded."""
    fn = _lib.sodium_version_string
    fn.restype = ctypes.c_char_p
    value: bytes = fn()
    return value.decode()


def _split(raw: bytes, width: int) -> list[bytes]:
    return [raw[i : i + width] for i in range(0, len(raw), width)]


# --- hashing to the group (RFC 9380, with ``xmd``'s expand_message_xmd) ------------------


def hash_to_group(msg: bytes, dst: bytes) -> bytes:
    """RFC 9380 hash_to_ristretto255: expand to 64 bytes, then libsodium's one-way map."""
    out = _buffer(ELEMENT_LENGTH)
    _from_hash(out, expand_message_xmd(msg, dst, 64))
    return out.raw


def hash_to_group_batch(msgs: Sequence[bytes], expander: Expander64) -> list[bytes]:
    """hash_to_group for each message (the expander fixes the DST). May return the identity."""
    n = len(msgs)
    out = _buffer(ELEMENT_LENGTH * n)
    for i, msg in enumerate(msgs):
        _from_hash(_byref(out, ELEMENT_LENGTH * i), expander(msg))
    return _split(out.raw, ELEMENT_LENGTH)


def hash_to_scalar_batch(msgs: Sequence[bytes], expander: Expander64) -> list[bytes]:
    """hash_to_scalar for each message (the expander fixes the DST)."""
    out = _buffer(SCALAR_LENGTH * len(msgs))
    for i, msg in enumerate(msgs):
        _s_reduce(_byref(out, SCALAR_LENGTH * i), expander(msg))
    return _split(out.raw, SCALAR_LENGTH)


def hash_to_scalar(msg: bytes, dst: bytes) -> bytes:
    """RFC 9497 HashToScalar: expand_message_xmd to 64 bytes, read little-endian, mod the order."""
    return scalar_reduce(expand_message_xmd(msg, dst, 64))


# --- scalars -------------------------------------------------------------------------------


def scalar_reduce(wide: bytes) -> bytes:
    """A 64-byte little-endian integer reduced modulo the group order."""
    if len(wide) != 64:
        raise ValueError("scalar_reduce takes 64 bytes")
    out = _buffer(SCALAR_LENGTH)
    _s_reduce(out, wide)
    return out.raw


def random_scalar(rng: RandomSource = os.urandom) -> bytes:
    """A uniformly random non-zero scalar: 64 random bytes reduced (RFC 9497 section 4.7)."""
    return random_scalars(1, rng)[0]


def random_scalars(n: int, rng: RandomSource = os.urandom) -> list[bytes]:
    """``n`` random non-zero scalars from one read of ``rng`` (64 bytes each, reduced)."""
    wide = rng(64 * n)
    if len(wide) != 64 * n:
        raise ValueError("random source returned the wrong number of bytes")
    out = _buffer(SCALAR_LENGTH * n)
    for i in range(n):
        _s_reduce(_byref(out, SCALAR_LENGTH * i), wide[64 * i : 64 * i + 64])
    scalars = _split(out.raw, SCALAR_LENGTH)
    for i, s in enumerate(scalars):
        while s == ZERO_SCALAR:  # probability 2^-252; RFC: RandomScalar returns a non-zero scalar
            s = scalars[i] = scalar_reduce(rng(64))
    return scalars


def scalar_is_canonical(s: bytes) -> bool:
    """True when ``s`` is 32 bytes encoding an integer below the group order."""
    return len(s) == SCALAR_LENGTH and int.from_bytes(s, "little") < ORDER


def deserialize_scalar(data: bytes, *, nonzero: bool = False) -> bytes:
    """RFC 9497 section 2.1 DeserializeScalar, plus an optional non-zero check for keys.

    RFC 9497 requires rejecting encodings of integers >= the group order: accepting them would give
    one scalar several encodings (malleable proofs and keys).
    """
    if len(data) != SCALAR_LENGTH:
        raise DeserializeError(f"scalar must be {SCALAR_LENGTH} bytes, got {len(data)}")
    data = bytes(data)
    if int.from_bytes(data, "little") >= ORDER:
        raise DeserializeError("scalar is not reduced modulo the group order (non-canonical)")
    if nonzero and data == ZERO_SCALAR:
        raise DeserializeError("scalar must not be zero")
    return data


def scalar_add(a: bytes, b: bytes) -> bytes:
    out = _buffer(SCALAR_LENGTH)
    _s_add(out, a, b)
    return out.raw


def scalar_sub(a: bytes, b: bytes) -> bytes:
    out = _buffer(SCALAR_LENGTH)
    _s_sub(out, a, b)
    return out.raw


def scalar_mul(a: bytes, b: bytes) -> bytes:
    out = _buffer(SCALAR_LENGTH)
    _s_mul(out, a, b)
    return out.raw


def scalar_negate(a: bytes) -> bytes:
    out = _buffer(SCALAR_LENGTH)
    _s_negate(out, a)
    return out.raw


def scalar_invert(a: bytes) -> bytes:
    """The inverse modulo the group order; InverseError for zero (RFC 9497 ScalarInverse)."""
    out = _buffer(SCALAR_LENGTH)
    if _s_invert(out, a) != 0:
        raise InverseError("scalar zero has no inverse")
    return out.raw


def batch_invert(scalars: Sequence[bytes]) -> list[bytes]:
    """Invert every scalar with one inversion (Montgomery's trick): 3(n-1) multiplications.

    prefix[i] = a_0 * ... * a_i; inv = prefix[n-1]^-1; walking back, a_i^-1 = inv * prefix[i-1]
    and inv = inv * a_i. Raises InverseError if any scalar is zero (the product is then zero).
    """
    n = len(scalars)
    if n == 0:
        return []
    w = SCALAR_LENGTH
    prefix = _buffer(w * n)
    ctypes.memmove(prefix, scalars[0], w)
    for i in range(1, n):
        _s_mul(_byref(prefix, w * i), _byref(prefix, w * (i - 1)), scalars[i])
    inv = _buffer(w)
    if _s_invert(inv, _byref(prefix, w * (n - 1))) != 0:
        raise InverseError("a scalar in the batch is zero and has no inverse")
    out = _buffer(w * n)
    for i in range(n - 1, 0, -1):
        _s_mul(_byref(out, w * i), inv, _byref(prefix, w * (i - 1)))  # a_i^-1
        _s_mul(inv, inv, scalars[i])  # (a_0 ... a_(i-1))^-1
    ctypes.memmove(out, inv, w)
    return _split(out.raw, w)


# --- elements ------------------------------------------------------------------------------


def _why_invalid(data: object) -> str:
    if not isinstance(data, bytes | bytearray | memoryview):
        return f"expected bytes, got {type(data).__name__}"
    if len(data) != ELEMENT_LENGTH:
        return f"element must be {ELEMENT_LENGTH} bytes, got {len(data)}"
    data = bytes(data)
    if data == IDENTITY:
        # RFC 9497 section 2.1 / 3.3: DeserializeElement MUST reject the identity. A blinded or
        # evaluated element (or key) equal to the identity carries no information about the
        # input or key, and accepting it lets a party force a known, input-independent output.
        return "identity element is not allowed"
    # RFC 9496 section 4.3.1: decoding fails when the value is >= p (that includes any value with
    # the top bit set, which libsodium 1.0.18 masks off instead of refusing) or is "negative".
    # Accepting such strings would give one element several encodings.
    return "not a canonical ristretto255 encoding"


def is_valid_element(data: bytes) -> bool:
    """Canonical, 32 bytes, not the identity."""
    return (
        len(data) == ELEMENT_LENGTH
        and data[31] < 0x80
        and data != IDENTITY
        and _is_valid_point(bytes(data)) == 1
    )


def deserialize_element(data: bytes) -> bytes:
    """RFC 9497 section 2.1 DeserializeElement: wrong length, non-canonical and identity refused."""
    if not isinstance(data, bytes | bytearray | memoryview) or not is_valid_element(bytes(data)):
        raise DeserializeError(_why_invalid(data))
    return bytes(data)


def base_mult(k: bytes) -> bytes:
    """k * G (RFC 9497 ScalarMultGen). Returns the identity for k = 0."""
    out = _buffer(ELEMENT_LENGTH)
    _mult_base(out, k)  # returns -1 exactly when the result is the identity; out is then zeros
    return out.raw


#: The generator's canonical encoding.
GENERATOR = base_mult(ONE_SCALAR)


def scalar_mult(k: bytes, p: bytes) -> bytes:
    """k * P for a P this process computed or already validated. May return the identity."""
    out = _buffer(ELEMENT_LENGTH)
    _mult(out, k, p)  # -1 only for an identity result (P is known valid)
    return out.raw


def add(p: bytes, q: bytes) -> bytes:
    """P + Q for validated elements (the identity is allowed here)."""
    out = _buffer(ELEMENT_LENGTH)
    if _add(out, p, q) != 0:
        raise DeserializeError("invalid element in addition")
    return out.raw


def sub(p: bytes, q: bytes) -> bytes:
    """P - Q for validated elements (the identity is allowed here)."""
    out = _buffer(ELEMENT_LENGTH)
    if _sub(out, p, q) != 0:
        raise DeserializeError("invalid element in subtraction")
    return out.raw


def scalar_mult_batch(
    scalars: bytes | Sequence[bytes],
    elements: Sequence[bytes],
    *,
    validate: bool = False,
    start: int = 0,
    what: str = "element",
) -> list[bytes]:
    """k_i * P_i for each element (one shared scalar when ``scalars`` is a bytes object).

    ``validate=True`` is for elements from outside: each is deserialized as RFC 9497 requires, and
    the first bad one raises DeserializeError("{what} {start + i}: ..."). Validation costs almost
    nothing extra: libsodium's decoder refuses non-canonical encodings inside the multiplication,
    and with a non-zero scalar in a prime-order group the result is the identity only when the
    input was. The length and top-bit checks are done here. Scalars must be non-zero when
    validating. Without validation the elements must be ones this process computed.
    """
    n = len(elements)
    w = ELEMENT_LENGTH
    out = _buffer(w * n)
    single = isinstance(scalars, bytes)
    if not single and len(scalars) != n:
        raise ValueError("scalars and elements differ in length")
    if validate:
        for i, p in enumerate(elements):
            if type(p) is not bytes:
                if not isinstance(p, bytearray | memoryview):
                    raise DeserializeError(f"{what} {start + i}: {_why_invalid(p)}")
                p = bytes(p)
            if len(p) != w or p[31] >= 0x80:
                raise DeserializeError(f"{what} {start + i}: {_why_invalid(p)}")
            k = scalars if single else scalars[i]
            if _mult(_byref(out, w * i), k, p) != 0:
                raise DeserializeError(f"{what} {start + i}: {_why_invalid(p)}")
    elif single:
        for i, p in enumerate(elements):
            _mult(_byref(out, w * i), scalars, p)
    else:
        for i, p in enumerate(elements):
            _mult(_byref(out, w * i), scalars[i], p)
    return _split(out.raw, w)


def sum_of_products(
    scalars: Sequence[bytes],
    elements: Sequence[bytes],
    *,
    validate: bool = False,
    start: int = 0,
    what: str = "element",
) -> bytes:
    """sum_i k_i * P_i. May be the identity.

    With ``validate=True`` the elements come from outside and are checked as in
    ``scalar_mult_batch`` (non-zero scalars required); otherwise they must be known valid.
    """
    w = ELEMENT_LENGTH
    acc = _buffer(w)  # the identity
    term = _buffer(w)
    for i, (k, p) in enumerate(zip(scalars, elements, strict=True)):
        if validate and (type(p) is not bytes or len(p) != w or p[31] >= 0x80):
            raise DeserializeError(f"{what} {start + i}: {_why_invalid(p)}")
        if _mult(term, k, p) != 0 and validate:
            raise DeserializeError(f"{what} {start + i}: {_why_invalid(p)}")
        _add(acc, acc, term)
    return acc.raw


def bytes_list(items: Sequence[object]) -> list[bytes]:
    """Items as bytes: bytearray and memoryview are copied, anything else but bytes is refused."""
    out = list(items)
    for i, x in enumerate(out):
        if type(x) is not bytes:
            if not isinstance(x, bytearray | memoryview):
                raise TypeError(f"item {i}: expected bytes, got {type(x).__name__}")
            out[i] = bytes(x)
    return out  # type: ignore[return-value]
