"""A bidui requester written from docs/PROTOCOL.md alone, the way another team would write one.

It imports nothing of bidui's own code (no ``comparator``, ``client_sdk`` or ``provider_node``):
only the generated protobuf stubs ``bidui.v1`` (the wire types), grpc, the standard library and
pysodium (libsodium's ristretto255). Section numbers below are PROTOCOL.md's.

Field types implemented: ``cn_resident_id``, ``person_name`` and ``date``; a resource whose
comparison key uses another type is refused. Canonical version 2 (section 4): a node whose catalog
entry states another version is refused before anything is encoded. Both modes are implemented;
blinded mode in RFC 9497 modeOPRF by default (no proof) and in modeVOPRF with ``verifiable=True``,
where the batched DLEQ proof is verified unless ``verify=False`` (PROTOCOL.md 7.5: a client's
choice).
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import hmac
import re
import struct
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence

import grpc
import pysodium

from bidui.v1 import catalog_pb2, catalog_pb2_grpc, comparison_pb2, comparison_pb2_grpc

# ---- section 4: normalisation --------------------------------------------------------------------

CANONICAL_VERSION = 2  # section 4, "Canonical version"

_WHITESPACE_SPEC = (
    "U+0009..U+000D U+001C..U+0020 U+0085 U+00A0 U+1680 U+2000..U+200A U+2028 U+2029 U+202F "
    "U+205F U+3000"
)
_INVISIBLE_SPEC = (
    "U+00AD U+0600..U+0605 U+061C U+06DD U+070F U+0890 U+0891 U+08E2 U+180B..U+180F U+200B..U+200F "
    "U+202A..U+202E U+2060..U+2064 U+2066..U+206F U+FE00..U+FE0F U+FEFF U+FFF9..U+FFFB U+110BD "
    "U+110CD U+13430..U+13438 U+1BCA0..U+1BCA3 U+1D173..U+1D17A U+E0001 U+E0020..U+E007F "
    "U+E0100..U+E01EF"
)
# 4.5: the name dots after NFKC, and the Han characters after NFKC.
_NAME_DOTS_SPEC = (
    "U+002E U+00B7 U+16EB U+2022 U+2027 U+2219 U+22C5 U+2E31 U+2E33 U+3002 U+30FB U+A78F"
)
_HAN_SPEC = "U+3007 U+3400..U+4DBF U+4E00..U+9FFF U+E000..U+F8FF U+F900..U+FAFF U+20000..U+3FFFF"
# 4.3: the accepted provinces, characters 1 and 2.
_PROVINCES_SPEC = "11..15 21..23 31..37 41..46 50..54 61..65 71 81..83"


def _code_points(spec: str) -> str:
    """The characters of a list such as ``U+0009..U+000D U+0020``."""
    chars = []
    for part in spec.split():
        first, _, last = part.partition("..")
        lo = int(first[2:], 16)
        hi = int(last[2:], 16) if last else lo
        chars.extend(chr(c) for c in range(lo, hi + 1))
    return "".join(chars)


WHITESPACE = _code_points(_WHITESPACE_SPEC)
INVISIBLE = frozenset(_code_points(_INVISIBLE_SPEC))
NAME_DOTS = _code_points(_NAME_DOTS_SPEC)
HAN = frozenset(_code_points(_HAN_SPEC))
PROVINCES = frozenset(
    f"{code:02d}"
    for part in _PROVINCES_SPEC.split()
    for code in range(int(part[:2]), int(part[-2:]) + 1)
)
_WS_CLASS = "[" + re.escape(WHITESPACE) + "]"
_WS_RUN = re.compile(_WS_CLASS + "+")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_DOT_CLASS = "[" + re.escape(NAME_DOTS) + "]"
_NAME_DOT_RUN = re.compile(
    "[ " + re.escape(NAME_DOTS) + "]*" + _DOT_CLASS + "[ " + re.escape(NAME_DOTS) + "]*"
)


class FieldRefused(ValueError):
    """A value breaks its field type's rule: the record is invalid and is not sent."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class _Refuse(Exception):
    """Raised by a normaliser; the caller adds the field name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _prepare(value: str | None) -> str:
    """4.1: missing, valid UTF-8, invisible characters removed, NFKC, trimmed, not empty."""
    if value is None:
        raise _Refuse("is missing")
    if not isinstance(value, str):
        raise _Refuse(f"must be text, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refuse("contains characters that are not valid text") from None
    visible = "".join(c for c in value if c not in INVISIBLE)
    text = unicodedata.normalize("NFKC", visible).strip(WHITESPACE)
    if not text:
        raise _Refuse("is empty")
    return text


def _fold(text: str) -> str:
    """4.2: inner whitespace runs as one space; control characters refused."""
    text = _WS_RUN.sub(" ", text)
    if _CONTROL.search(text):
        raise _Refuse("contains control characters")
    return text


def _ascii_digits(text: str) -> bool:
    return all("0" <= c <= "9" for c in text) and text != ""


def _id_check(body17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(d) * w for d, w in zip(body17, weights, strict=True)) % 11]


def _birth_date(digits: str) -> None:
    """4.3, birth date check on characters 7 to 14 (1-based)."""
    yyyy, mm, dd = int(digits[6:10]), int(digits[10:12]), int(digits[12:14])
    february = 29 if calendar.isleap(yyyy) else 28
    month_days = (31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not (1 <= mm <= 12 and 1 <= dd <= month_days[mm - 1]):
        raise _Refuse("contains an impossible birth date (digits 7-14)")
    if yyyy < 1800 or digits[6:14] > datetime.date.today().strftime("%Y%m%d"):
        raise _Refuse("contains a birth date out of range (digits 7-14)")


def _province(digits: str) -> None:
    """4.3, province check on characters 1 and 2."""
    if digits[:2] in PROVINCES:
        return
    if len(digits) == 18 and digits[0] == "9":
        raise _Refuse(
            "begins with 9: a foreigner's permanent residence card number, not a resident ID"
        )
    raise _Refuse("contains an unknown province code (digits 1-2)")


def resident_id(value: str | None) -> str:
    """4.3 ``cn_resident_id``."""
    text = _prepare(value)
    if len(text) == 18:
        body, check = text[:17], text[17]
        if not _ascii_digits(body):
            raise _Refuse("the first 17 characters must be digits")
        check = "X" if check == "x" else check
        if not (check == "X" or "0" <= check <= "9"):
            raise _Refuse("the last character must be a digit or X")
        _province(text)
        _birth_date(text)
        if _id_check(body) != check:
            raise _Refuse("check character does not match: a character is mistyped")
        return body + check
    if len(text) == 15:
        if not _ascii_digits(text):
            raise _Refuse("a 15-character (first-generation) ID must be all digits")
        _province(text)
        body = text[:6] + "19" + text[6:]
        _birth_date(body)
        return body + _id_check(body)
    raise _Refuse(f"must have 18 characters (or 15 for a first-generation ID), not {len(text)}")


def person_name(value: str | None) -> str:
    """4.5 ``person_name``."""
    text = _NAME_DOT_RUN.sub("\u00b7", _fold(_prepare(value))).strip("\u00b7")
    if not text:
        raise _Refuse("is empty")
    kept = [
        c
        for i, c in enumerate(text)
        if not (c == " " and 0 < i < len(text) - 1 and text[i - 1] in HAN and text[i + 1] in HAN)
    ]
    return "".join(kept)


_DATE_PATTERNS = (
    re.compile(r"([0-9]{4})([-/.])([0-9]{1,2})\2([0-9]{1,2})"),
    re.compile(r"([0-9]{4})()([0-9]{2})([0-9]{2})"),
    re.compile(r"([0-9]{4})(年)([0-9]{1,2})月([0-9]{1,2})日?"),
)


def date(value: str | None) -> str:
    """4.7 ``date``."""
    text = _prepare(value)
    for pattern in _DATE_PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            year, month, day = int(match[1]), int(match[3]), int(match[4])
            try:
                return datetime.date(year, month, day).isoformat()
            except ValueError:
                raise _Refuse("is not a real calendar date") from None
    raise _Refuse("must be a date written year-month-day, e.g. 2024-01-05")


NORMALISERS: dict[str, Callable[[str | None], str]] = {
    "cn_resident_id": resident_id,
    "person_name": person_name,
    "date": date,
}


def normalise(field_type: str, value: str | None, field: str = "value") -> str:
    """The canonical string of ``value``; raises ``FieldRefused``."""
    try:
        return NORMALISERS[field_type](value)
    except _Refuse as refusal:
        raise FieldRefused(field, refusal.reason) from None


# ---- section 5: canonical record bytes -----------------------------------------------------------


def _u32(n: int) -> bytes:
    return struct.pack(">I", n)


def _prefixed(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _u32(len(raw)) + raw


def domain(resource_id: str, key_name: str, key_version: int) -> bytes:
    return _prefixed(resource_id) + _prefixed(key_name) + struct.pack(">Q", key_version)


def encode_record(
    resource_id: str,
    key_name: str,
    key_version: int,
    fields: Sequence[tuple[str, str]],
    record: Mapping[str, str | None],
) -> bytes:
    """``fields``: the key's (name, type) pairs in key order. Raises ``FieldRefused``."""
    values = [normalise(kind, record.get(name), name) for name, kind in fields]
    return (
        b"bidui-record-v%d" % CANONICAL_VERSION
        + domain(resource_id, key_name, key_version)
        + _u32(len(values))
        + b"".join(_prefixed(v) for v in values)
    )


# ---- section 6: hashed mode ----------------------------------------------------------------------


def hmac_tag(key: bytes, domain_bytes: bytes, record: bytes) -> bytes:
    return hmac.new(key, b"bidui-hmac-v1" + domain_bytes + record, hashlib.sha256).digest()


# ---- section 7: blinded mode (modeOPRF, or modeVOPRF) --------------------------------------------

MODE_OPRF, MODE_VOPRF = 0x00, 0x01  # 7.1


def context(mode: int) -> bytes:
    """7.1: the contextString of ``mode``."""
    return b"OPRFV1-" + bytes([mode]) + b"-ristretto255-SHA512"


CONTEXT = context(MODE_OPRF)  # the default mode's
VOPRF_CONTEXT = context(MODE_VOPRF)
SUITE = "ristretto255-SHA512"
ORDER = 2**252 + 27742317777372353535851937790883648493
IDENTITY = bytes(32)


class ProofFailed(Exception):
    """The node's DLEQ proof does not verify against its published key."""


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 5.3.1 with SHA-512."""
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha512(bytes(128) + msg + length.to_bytes(2, "big") + b"\0" + dst_prime).digest()
    blocks = [hashlib.sha512(b0 + b"\x01" + dst_prime).digest()]
    while len(blocks) * 64 < length:
        mixed = bytes(x ^ y for x, y in zip(b0, blocks[-1], strict=True))
        blocks.append(hashlib.sha512(mixed + bytes([len(blocks) + 1]) + dst_prime).digest())
    return b"".join(blocks)[:length]


def hash_to_group(data: bytes, ctx: bytes = CONTEXT) -> bytes:
    uniform = expand_message_xmd(data, b"HashToGroup-" + ctx, 64)
    return pysodium.crypto_core_ristretto255_from_hash(uniform)


def hash_to_scalar(data: bytes, ctx: bytes = VOPRF_CONTEXT) -> bytes:
    """Used by the proof only, hence modeVOPRF's context by default."""
    uniform = expand_message_xmd(data, b"HashToScalar-" + ctx, 64)
    return pysodium.crypto_core_ristretto255_scalar_reduce(uniform)


def valid_element(data: bytes) -> bool:
    if len(data) != 32 or data == IDENTITY:
        return False
    return bool(pysodium.crypto_core_ristretto255_is_valid_point(data))


def blind(
    data: bytes, blind_scalar: bytes | None = None, ctx: bytes = CONTEXT
) -> tuple[bytes, bytes]:
    """RFC 9497 Blind: (blind, blindedElement) in the mode of ``ctx``. ``blind_scalar`` only for
    test vectors."""
    r = blind_scalar or pysodium.crypto_core_ristretto255_scalar_random()
    element = hash_to_group(data, ctx)
    if element == IDENTITY:
        raise ValueError("the input hashes to the identity element")
    return r, pysodium.crypto_scalarmult_ristretto255(r, element)


def finalize(data: bytes, blind_scalar: bytes, evaluated: bytes) -> bytes:
    """RFC 9497 Finalize, after the proof: unblind and hash (64 bytes)."""
    if not valid_element(evaluated):
        raise ProofFailed("the node returned an invalid evaluated element")
    inverse = pysodium.crypto_core_ristretto255_scalar_invert(blind_scalar)
    unblinded = pysodium.crypto_scalarmult_ristretto255(inverse, evaluated)
    return hashlib.sha512(
        len(data).to_bytes(2, "big") + data + (32).to_bytes(2, "big") + unblinded + b"Finalize"
    ).digest()


def _lp(element: bytes) -> bytes:
    return len(element).to_bytes(2, "big") + element


def composites(
    public_key: bytes, blinded: Sequence[bytes], evaluated: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """7.5: (M, Z)."""
    seed_dst = b"Seed-" + VOPRF_CONTEXT
    seed = hashlib.sha512(_lp(public_key) + _lp(seed_dst)).digest()
    m = z = None
    for i, (c, d) in enumerate(zip(blinded, evaluated, strict=True)):
        di = hash_to_scalar(_lp(seed) + i.to_bytes(2, "big") + _lp(c) + _lp(d) + b"Composite")
        mc = pysodium.crypto_scalarmult_ristretto255(di, c)
        zd = pysodium.crypto_scalarmult_ristretto255(di, d)
        m = mc if m is None else pysodium.crypto_core_ristretto255_add(m, mc)
        z = zd if z is None else pysodium.crypto_core_ristretto255_add(z, zd)
    assert m is not None and z is not None
    return m, z


def verify_proof(
    public_key: bytes, blinded: Sequence[bytes], evaluated: Sequence[bytes], proof: bytes
) -> bool:
    """7.5: RFC 9497 VerifyProof(G, pkS, blinded, evaluated, proof)."""
    if len(proof) != 64 or not blinded or len(blinded) != len(evaluated):
        return False
    if not all(valid_element(e) for e in (public_key, *evaluated)):
        return False
    c, s = proof[:32], proof[32:]
    if int.from_bytes(c, "little") >= ORDER or int.from_bytes(s, "little") >= ORDER:
        return False
    try:
        m, z = composites(public_key, blinded, evaluated)
        add, mult = pysodium.crypto_core_ristretto255_add, pysodium.crypto_scalarmult_ristretto255
        t2 = add(pysodium.crypto_scalarmult_ristretto255_base(s), mult(c, public_key))
        t3 = add(mult(s, m), mult(c, z))
    except ValueError:  # libsodium refuses an identity result: not a proof of ours
        return False
    transcript = b"".join(_lp(x) for x in (public_key, m, z, t2, t3)) + b"Challenge"
    return hmac.compare_digest(hash_to_scalar(transcript), c)


# ---- section 8: match bits -----------------------------------------------------------------------


def unpack_match_bits(result: comparison_pb2.MatchResult, count: int) -> list[bool]:
    bits = result.match_bits
    flags = [bool(bits[i // 8] >> (i % 8) & 1) for i in range(len(bits) * 8)]
    if result.item_count != count or len(bits) != (count + 7) // 8 or any(flags[count:]):
        raise ValueError("the match bits are not an answer to this request")
    if sum(flags) != result.match_count:
        raise ValueError("the match count disagrees with the match bits")
    return flags[:count]


# ---- the client ----------------------------------------------------------------------------------


class OtherCanonicalVersion(ValueError):
    """The node encodes records under a canonical version this client does not implement."""


def check_canonical_version(entry: catalog_pb2.Resource) -> None:
    """Section 3: ``canonical_version`` 0 is a node older than the field, version 1."""
    version = entry.canonical_version or 1
    if version != CANONICAL_VERSION:
        raise OtherCanonicalVersion(
            f"{entry.id}: the node encodes records under canonical version {version}, "
            f"this client under {CANONICAL_VERSION}: nothing could match"
        )


class ThirdPartyClient:
    """A connection to one node over mutual TLS (section 1)."""

    def __init__(
        self,
        target: str,
        *,
        ca_pem: bytes,
        cert_pem: bytes | None,
        key_pem: bytes | None,
        timeout: float = 30.0,
    ) -> None:
        credentials = grpc.ssl_channel_credentials(ca_pem, key_pem, cert_pem)
        self._channel = grpc.secure_channel(target, credentials)
        self._catalog = catalog_pb2_grpc.CatalogServiceStub(self._channel)
        self._comparison = comparison_pb2_grpc.ComparisonServiceStub(self._channel)
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def describe(self, resource_id: str) -> catalog_pb2.Resource:
        """Section 2, step 1; refuses a node of another canonical version (section 3)."""
        request = catalog_pb2.DescribeResourceRequest(resource_id=resource_id)
        entry = self._catalog.DescribeResource(request, timeout=self._timeout)
        check_canonical_version(entry)
        return entry

    def _encode_all(
        self,
        entry: catalog_pb2.Resource,
        key_name: str,
        key_version: int,
        records: Sequence[Mapping[str, str | None]],
    ) -> tuple[list[int], list[bytes]]:
        """Positions and canonical bytes of the valid records (the others are not sent)."""
        types = {f.name: f.type for f in entry.fields}
        key = next(k for k in entry.comparison_keys if k.name == key_name)
        fields = [(name, types[name]) for name in key.fields]
        positions, encoded = [], []
        for i, record in enumerate(records):
            try:
                encoded.append(encode_record(entry.id, key_name, key_version, fields, record))
            except FieldRefused:
                continue
            positions.append(i)
        return positions, encoded

    def _header(
        self,
        entry: catalog_pb2.Resource,
        key_name: str,
        key_version: int,
        purpose: str,
        verifiable: bool = False,
    ) -> comparison_pb2.ComparisonHeader:
        return comparison_pb2.ComparisonHeader(
            resource_id=entry.id,
            comparison_key=key_name,
            purpose=purpose,
            request_id=uuid.uuid4().hex,
            key_version=key_version,
            verifiable=verifiable,
        )

    @staticmethod
    def _aligned(count: int, positions: list[int], flags: list[bool]) -> list[bool | None]:
        """One answer per input record: True / False, or None for an invalid record."""
        out: list[bool | None] = [None] * count
        for position, flag in zip(positions, flags, strict=True):
            out[position] = flag
        return out

    def compare_hashed(
        self,
        resource_id: str,
        key_name: str,
        records: Sequence[Mapping[str, str | None]],
        *,
        purpose: str,
    ) -> list[bool | None]:
        """Section 2, hashed mode."""
        entry = self.describe(resource_id)
        if catalog_pb2.MODE_HASHED not in entry.modes:
            raise ValueError(f"{resource_id} does not offer hashed mode")
        key = self._catalog.GetHashKey(
            catalog_pb2.GetHashKeyRequest(resource_id=resource_id, comparison_key=key_name),
            timeout=self._timeout,
        )
        if key.tag_length != 32 or len(key.hmac_key) != 32:
            raise ValueError("the node's hashed-mode key is not what section 6 describes")
        positions, encoded = self._encode_all(entry, key_name, key.key_version, records)
        dom = domain(entry.id, key_name, key.key_version)
        tags = [hmac_tag(key.hmac_key, dom, record) for record in encoded]
        result = self._comparison.CompareHashed(
            comparison_pb2.CompareHashedRequest(
                header=self._header(entry, key_name, key.key_version, purpose), tags=tags
            ),
            timeout=self._timeout,
        )
        return self._aligned(len(records), positions, unpack_match_bits(result, len(tags)))

    def compare_blinded(
        self,
        resource_id: str,
        key_name: str,
        records: Sequence[Mapping[str, str | None]],
        *,
        purpose: str,
        verifiable: bool = False,
        verify: bool = True,
    ) -> list[bool | None]:
        """Section 2, blinded mode: modeOPRF, or modeVOPRF (``verifiable``), whose proof is
        checked unless ``verify`` is False."""
        entry = self.describe(resource_id)
        if catalog_pb2.MODE_BLINDED not in entry.modes or entry.oprf_suite != SUITE:
            raise ValueError(f"{resource_id} offers no blinded mode this client speaks")
        wanted = catalog_pb2.OPRF_MODE_VOPRF if verifiable else catalog_pb2.OPRF_MODE_OPRF
        if wanted not in entry.oprf_modes:
            raise ValueError(f"{resource_id} does not offer this RFC 9497 mode (7.1)")
        verify = verify and verifiable
        if verify and not valid_element(entry.oprf_public_key):
            raise ValueError("the node publishes an invalid OPRF public key")
        ctx = VOPRF_CONTEXT if verifiable else CONTEXT
        positions, inputs = self._encode_all(entry, key_name, entry.key_version, records)
        blinds, blinded = zip(*(blind(x, ctx=ctx) for x in inputs), strict=True)
        evaluation = self._comparison.BlindEvaluate(
            comparison_pb2.BlindEvaluateRequest(
                header=self._header(entry, key_name, entry.key_version, purpose, verifiable),
                blinded_elements=list(blinded),
            ),
            timeout=self._timeout,
        )
        evaluated = list(evaluation.evaluated_elements)
        if evaluation.key_version != entry.key_version or len(evaluated) != len(inputs):
            raise ValueError("the evaluation does not answer this request")
        if verify and not verify_proof(entry.oprf_public_key, blinded, evaluated, evaluation.proof):
            raise ProofFailed("the node's proof does not verify against its published key")
        outputs = [finalize(x, r, e) for x, r, e in zip(inputs, blinds, evaluated, strict=True)]
        result = self._comparison.MatchBlinded(
            comparison_pb2.MatchBlindedRequest(
                comparison_id=evaluation.comparison_id, outputs=outputs
            ),
            timeout=self._timeout,
        )
        return self._aligned(len(records), positions, unpack_match_bits(result, len(outputs)))
