"""Verification (核验): does the register hold this key, and do these fields agree with it?

A resource declares, per comparison key, the fields that can be verified against it (``name`` and
``phone`` against ``id_number``). Each (key, field) pair is a comparison key of its own, the
**verification key**: the key's fields followed by the field, under a name no ordinary comparison
key can have (key names never contain ``:``)::

    verification key name = "verify:" || key name || ":" || field name
                          e.g. "verify:id_number:name"

so its encodings (``comparator.canonical``: the name is part of the domain) never equal an ordinary
key's. The provider indexes each verification key like any comparison key; the requester sends,
per record, the key's own tag (or PRF output) followed by one per requested field::

    record i, fields f_1 .. f_F  ->  item[i*(1+F)]     = tag(key;      key values)
                                     item[i*(1+F)+j]   = tag(verify:key:f_j; key values, f_j value)

and the node answers one outcome per record and a mismatch bit per (record, field)::

    not found     (库无)   the key's item is not in the key's index; no field bit is set
    consistent    (一致)   found, and every field's item is in its verification index
    inconsistent  (不一致) found, and the fields whose items are not in their index have bit 1

``outcomes`` is one byte per record (0, 1, 2 above); the mismatch bits are record-major, bit
``i*F + j`` for record i and field j, packed like match bits (``comparator.index.pack_matches``).
A register record whose field is empty or invalid has no verification entry for that field, so
the field never agrees.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from comparator.canonical import (
    ComparisonKey,
    Domain,
    EncodedBatch,
    FieldSpec,
    KeyDefinitionError,
    Record,
    RecordError,
    canonicalize,
    encode_values,
)
from comparator.errors import FieldError, InvalidInputError
from comparator.index import pack_matches, unpack_match_array

__all__ = [
    "VERIFY_PREFIX",
    "Verdict",
    "VerificationPlan",
    "decide",
    "pack_verdicts",
    "split_items",
    "unpack_verdicts",
    "verification_key",
    "verification_key_name",
]

VERIFY_PREFIX = "verify:"
"""Starts every verification key name; ``:`` never occurs in an ordinary comparison key name."""


class Verdict(IntEnum):
    """One record's verification outcome, as the wire carries it (one byte)."""

    NOT_FOUND = 0  # 库无
    CONSISTENT = 1  # 一致
    INCONSISTENT = 2  # 不一致


def verification_key_name(key_name: str, field_name: str) -> str:
    """``verify:<key>:<field>``: the name (and domain) of the (key, field) verification key."""
    if ":" in key_name or ":" in field_name or not key_name or not field_name:
        raise KeyDefinitionError("key and field names of a verification key cannot contain ':'")
    return f"{VERIFY_PREFIX}{key_name}:{field_name}"


def verification_key(key: ComparisonKey, field: FieldSpec) -> ComparisonKey:
    """The verification key of ``field`` against ``key``: the key's fields, then the field."""
    if field.name in key.field_names:
        raise KeyDefinitionError(
            f"field {field.name!r} is part of comparison key {key.name!r}: it cannot be verified "
            "against it"
        )
    return ComparisonKey(verification_key_name(key.name, field.name), (*key.fields, field))


@dataclass(frozen=True)
class VerificationPlan:
    """What a requester encodes for verifying ``fields`` against ``key`` under one key version.

    ``encode`` turns records into the items of section "verification" of the protocol: per valid
    record ``1 + len(fields)`` encodings in record-major order. A record is invalid when any of
    the key's fields or the requested fields fails (the first in that order is reported).
    """

    resource_id: str
    key: ComparisonKey
    fields: tuple[FieldSpec, ...]
    key_version: int

    def __post_init__(self) -> None:
        if not self.fields:
            raise KeyDefinitionError("name at least one field to verify")
        names = [spec.name for spec in self.fields]
        if len(set(names)) != len(names):
            raise KeyDefinitionError("a field to verify is named twice")
        for spec in self.fields:
            verification_key(self.key, spec)  # refuses a field of the key itself

    @property
    def width(self) -> int:
        """Items per record: the key's, then one per field."""
        return 1 + len(self.fields)

    @property
    def domains(self) -> tuple[Domain, ...]:
        """The key's domain, then each field's verification domain, in item order."""
        names = [self.key.name] + [
            verification_key_name(self.key.name, f.name) for f in self.fields
        ]
        return tuple(Domain(self.resource_id, name, self.key_version) for name in names)

    def encode(self, records: Iterable[Record]) -> EncodedBatch:
        """Encodings of the valid records (``width`` each, flattened) and errors of the others."""
        combined = ComparisonKey(self.key.name, (*self.key.fields, *self.fields))
        domains = self.domains
        k = len(self.key.fields)
        encoded: list[bytes] = []
        positions: list[int] = []
        errors: list[RecordError] = []
        for index, record in enumerate(records):
            try:
                values = canonicalize(combined, record)
            except FieldError as exc:
                errors.append(RecordError(index, exc.field, exc.reason))
                continue
            base = values[:k]
            encoded.append(encode_values(domains[0], base))
            for offset, value in enumerate(values[k:], start=1):
                encoded.append(encode_values(domains[offset], (*base, value)))
            positions.append(index)
        return EncodedBatch(encoded, positions, errors)


BoolArray = npt.NDArray[np.bool_]


def decide(found: BoolArray, agree: BoolArray) -> tuple[npt.NDArray[np.uint8], BoolArray]:
    """Verdicts and mismatches from the index lookups of ``n`` records and ``F`` fields.

    ``found`` (n,) says whether each key item is in the key's index; ``agree`` (n, F) whether each
    field item is in its verification index. A record not found gets no mismatch bit: nothing is
    said about its fields.
    """
    found = np.asarray(found, dtype=bool)
    agree = np.asarray(agree, dtype=bool)
    if agree.ndim != 2 or found.shape != (agree.shape[0],):
        raise InvalidInputError("found must have one flag per row of agree")
    mismatch: BoolArray = found[:, None] & ~agree
    verdicts = np.where(
        found, np.where(mismatch.any(axis=1), Verdict.INCONSISTENT, Verdict.CONSISTENT), 0
    ).astype(np.uint8)
    return verdicts, mismatch


def pack_verdicts(verdicts: npt.NDArray[np.uint8], mismatch: BoolArray) -> tuple[bytes, bytes]:
    """``(outcomes, mismatch_bits)`` as the wire carries them."""
    return np.asarray(verdicts, dtype=np.uint8).tobytes(), pack_matches(mismatch.reshape(-1))


def unpack_verdicts(
    outcomes: bytes, mismatch_bits: bytes, records: int, fields: int
) -> tuple[list[Verdict], list[tuple[bool, ...]]]:
    """Check and unpack an answer for ``records`` records and ``fields`` fields.

    Refuses (``InvalidInputError``) an answer of the wrong size, an unknown outcome byte, set
    padding bits, or mismatch bits that contradict the outcome (a consistent or not-found record
    with a mismatch, an inconsistent one without): any of these means it is not this request's.
    """
    if fields < 1:
        raise InvalidInputError("a verification names at least one field")
    if len(outcomes) != records:
        raise InvalidInputError(
            f"{records} records need {records} outcome bytes, not {len(outcomes)}"
        )
    codes = np.frombuffer(outcomes, dtype=np.uint8)
    if records and int(codes.max()) > max(Verdict):
        raise InvalidInputError("an outcome byte is not 0, 1 or 2")
    flags = unpack_match_array(mismatch_bits, records * fields)
    grid = flags.reshape(records, fields)
    expect_some = codes == Verdict.INCONSISTENT
    if not np.array_equal(grid.any(axis=1), expect_some):
        raise InvalidInputError("the mismatch bits contradict the outcomes")
    verdicts = [Verdict(int(code)) for code in codes]
    return verdicts, [tuple(bool(b) for b in row) for row in grid]


def split_items(items: Sequence[bytes], width: int) -> list[Sequence[bytes]]:
    """Items in record-major order -> one sequence per column (the key's, then each field's)."""
    if width < 2 or len(items) % width:
        raise InvalidInputError(
            f"{len(items)} items are not a whole number of records of {width} items"
        )
    return [items[column::width] for column in range(width)]
