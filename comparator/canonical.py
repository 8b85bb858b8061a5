"""Canonical records: from a row of values to the exact bytes both sides hash or blind.

A comparison key (say ``id_number+name``) is an ordered list of typed fields. A record is
canonicalised field by field (see ``comparator.fields``) and then encoded as::

    b"bidui-record-v2"                             (the label names CANONICAL_VERSION)
    || u32(len(resource_id)) || resource_id        (UTF-8)
    || u32(len(key_name))    || key_name           (UTF-8)
    || u64(key_version)
    || u32(value_count)
    || for each value: u32(len(value)) || value     (UTF-8)

(all integers big-endian). Every variable-length part is length-prefixed, so no two different
records - nor the same record under two resources, keys or key versions - can produce the same
bytes: the encoding can be parsed back unambiguously. That is what stops ``("ab", "c")`` from
matching ``("a", "bc")`` and a tag made for one resource from matching in another.

The fixed part up to the value count depends only on the domain and the key, so it is computed once
per batch; ``encode_records`` canonicalises a batch a column at a time
(``columns.normalize_column``)
and prefixes fixed-length values with one shared prefix, since a batch is usually hundreds of
thousands of records and hashed mode must not wait for this step.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple, cast

import numpy as np

from comparator.columns import normalize_column
from comparator.errors import ComparatorError, FieldError
from comparator.fields import FieldType, Normalizer, normalizer

__all__ = [
    "CANONICAL_VERSION",
    "RECORD_LABEL",
    "ComparisonKey",
    "Domain",
    "EncodedBatch",
    "FieldSpec",
    "KeyDefinitionError",
    "Record",
    "RecordError",
    "canonicalize",
    "encode_record",
    "encode_records",
    "encode_values",
]

CANONICAL_VERSION = 2
"""The version of the canonical encoding: the field rules of ``comparator.fields`` and the bytes
below. Whatever changes what a value canonicalises to, or how a record is encoded, takes a new
version. It is part of every encoded record (``RECORD_LABEL``), so records of two versions never
compare equal; the node publishes it in its catalog and stamps it on every index it builds.

1: the first rules. 2: person names lose the spaces between Han characters and fold more dots
(``.`` and ``。`` among them); every value loses its format characters and variation selectors;
resident ID numbers must name a province."""

RECORD_LABEL = b"bidui-record-v%d" % CANONICAL_VERSION
"""Prefix of every encoded record, naming ``CANONICAL_VERSION``: a new encoding gets a new label,
never a silent change."""

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_MAX_U32 = 2**32 - 1

Record = Mapping[str, object] | Sequence[object]
"""A record: values by field name, or positional in the key's field order."""


class KeyDefinitionError(ComparatorError, ValueError):
    """A comparison key or domain is ill-defined (configuration, not record data)."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a comparison key: its name in the records and its type."""

    name: str
    type: FieldType

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise KeyDefinitionError("a field name must be a non-empty string")
        object.__setattr__(self, "type", _field_type(self.name, self.type))


def _field_type(name: str, type_name: str) -> FieldType:
    try:
        return FieldType(type_name)
    except ValueError:
        known = ", ".join(t.value for t in FieldType)
        raise KeyDefinitionError(
            f"field {name!r}: unknown field type {type_name!r} (known: {known})"
        ) from None


@dataclass(frozen=True)
class ComparisonKey:
    """An ordered list of fields whose canonical values together identify a record."""

    name: str
    fields: tuple[FieldSpec, ...]
    # (field name, normaliser) pairs bound once here rather than looked up per record.
    _plan: tuple[tuple[str, Normalizer], ...] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise KeyDefinitionError("a comparison key name must be a non-empty string")
        fields = tuple(self.fields)
        if not fields:
            raise KeyDefinitionError(f"comparison key {self.name!r} has no fields")
        names = [spec.name for spec in fields]
        if len(set(names)) != len(names):
            raise KeyDefinitionError(f"comparison key {self.name!r} repeats a field")
        object.__setattr__(self, "fields", fields)
        plan = tuple((spec.name, normalizer(spec.type)) for spec in fields)
        object.__setattr__(self, "_plan", plan)

    @classmethod
    def from_names(
        cls, name: str, field_names: Iterable[str], field_types: Mapping[str, str]
    ) -> ComparisonKey:
        """Build a key from field names and a resource's ``{field name: type name}`` table."""
        specs = []
        for field_name in field_names:
            if field_name not in field_types:
                raise KeyDefinitionError(
                    f"comparison key {name!r}: field {field_name!r} is not a field of the resource"
                )
            specs.append(FieldSpec(field_name, _field_type(field_name, field_types[field_name])))
        return cls(name, tuple(specs))

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.fields)


@dataclass(frozen=True, slots=True)
class Domain:
    """What a record is encoded for: resource, comparison key name and key version."""

    resource_id: str
    key_name: str
    key_version: int

    def __post_init__(self) -> None:
        for label, text in (("resource id", self.resource_id), ("key name", self.key_name)):
            if not isinstance(text, str) or not text:
                raise KeyDefinitionError(f"the {label} must be a non-empty string")
            if len(text.encode("utf-8")) > _MAX_U32:
                raise KeyDefinitionError(f"the {label} is too long")
        version = self.key_version
        if type(version) is not int or not 0 <= version < 2**64:
            raise KeyDefinitionError("the key version must be an integer from 0 to 2**64 - 1")

    def encode(self) -> bytes:
        """Length-prefixed resource id and key name, then the version as a u64."""
        resource = self.resource_id.encode("utf-8")
        key_name = self.key_name.encode("utf-8")
        return b"".join(
            (
                _U32.pack(len(resource)),
                resource,
                _U32.pack(len(key_name)),
                key_name,
                _U64.pack(self.key_version),
            )
        )


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why record ``index`` of a batch could not be encoded (``field`` names the culprit)."""

    index: int
    field: str
    reason: str


class EncodedBatch(NamedTuple):
    """The encodings of the valid records and the errors of the others.

    ``encoded[i]`` came from input row ``positions[i]``; rows listed in ``errors`` were skipped.
    """

    encoded: list[bytes]
    positions: list[int]
    errors: list[RecordError]


def _values_of(plan: tuple[tuple[str, Normalizer], ...], record: object) -> list[object]:
    """The raw values of ``record`` in key order; raises ``FieldError`` for a bad shape."""
    if isinstance(record, Mapping):
        try:
            return [record[name] for name, _ in plan]
        except KeyError:
            missing = next(name for name, _ in plan if name not in record)
            raise FieldError(missing, "is missing") from None
    if isinstance(record, Sequence) and not isinstance(record, str | bytes | bytearray):
        if len(record) < len(plan):
            raise FieldError(plan[len(record)][0], "is missing (the record has too few values)")
        if len(record) > len(plan):
            raise FieldError("record", f"has {len(record)} values but the key takes {len(plan)}")
        return list(record)
    raise FieldError("record", "must be a mapping of field names or a sequence of values")


def canonicalize(key: ComparisonKey, record: Record) -> tuple[str, ...]:
    """The canonical values of ``record`` for ``key``, in key order (raises ``FieldError``)."""
    plan = key._plan
    values = _values_of(plan, record)
    return tuple(fn(value, name) for (name, fn), value in zip(plan, values, strict=True))


def _header(domain: Domain, count: int) -> bytes:
    return RECORD_LABEL + domain.encode() + _U32.pack(count)


def encode_values(domain: Domain, values: Sequence[str]) -> bytes:
    """Encode already-canonical values under ``domain`` (see the module docstring)."""
    parts = [_header(domain, len(values))]
    for value in values:
        raw = value.encode("utf-8")
        parts.append(_U32.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def encode_record(domain: Domain, key: ComparisonKey, record: Record) -> bytes:
    """Canonicalise ``record`` for ``key`` and encode it under ``domain``; raises ``FieldError``."""
    return encode_values(domain, canonicalize(key, record))


def encode_records(domain: Domain, key: ComparisonKey, records: Iterable[Record]) -> EncodedBatch:
    """Encode a batch; a bad record becomes a ``RecordError`` with its index, never an exception.

    The same encodings and errors as ``encode_record`` record by record. Records of one plain
    shape (all dicts holding the key's fields, or all lists or tuples of its length: what the SDK,
    the CSV reader and the loader pass) are canonicalised a column at a time
    (``columns.normalize_column``) and encoded with one shared prefix per value length; any other
    batch goes record by record."""
    rows = records if isinstance(records, list) else list(records)
    columns = _columns_of(key, rows)
    if columns is None:
        return _encode_each(domain, key, rows)
    normalized = [
        normalize_column(spec.type, column, spec.name)
        for spec, column in zip(key.fields, columns, strict=True)
    ]
    # A record's error is that of its first invalid field in key order, as canonicalize raises.
    first: dict[int, FieldError] = {}
    for column_errors in normalized:
        for index, error in column_errors.errors:
            first.setdefault(index, error)
    errors = [RecordError(i, first[i].field, first[i].reason) for i in sorted(first)]
    if first:
        positions = [i for i in range(len(rows)) if i not in first]
        values = [[column.values[i] for i in positions] for column in normalized]
    else:
        positions = list(range(len(rows)))
        values = [column.values for column in normalized]
    header = _header(domain, len(key.fields))
    # The header goes into the first value's prefix: one concatenation per record for one field.
    pieces = [
        _prefixed(header if number == 0 else b"", cast("list[str]", column))
        for number, column in enumerate(values)
    ]
    encoded = pieces[0] if len(pieces) == 1 else list(map(b"".join, zip(*pieces, strict=True)))
    return EncodedBatch(encoded, positions, errors)


def _columns_of(key: ComparisonKey, rows: list[Record]) -> list[list[object]] | None:
    """The key's fields as columns when every row has the same plain shape, else ``None``."""
    kinds = set(map(type, rows))
    if kinds == {dict}:
        try:
            return [list(map(itemgetter(name), rows)) for name in key.field_names]
        except KeyError:  # a field missing somewhere: record by record says where
            return None
    width = len(key.fields)
    if kinds and kinds <= {list, tuple} and set(map(len, rows)) == {width}:
        return [list(map(itemgetter(i), rows)) for i in range(width)]
    return None


def _prefixed(prefix: bytes, values: list[str]) -> list[bytes]:
    """``prefix || u32(len(value)) || value`` (UTF-8) for each value."""
    lengths = set(map(len, values))
    joined = "".join(values)
    if len(lengths) == 1 and 0 not in lengths and joined.isascii():
        # Values of one length in ASCII (ID numbers, codes, dates) are the rows of a byte matrix
        # after one shared prefix; numpy cuts the rows into bytes objects without a Python loop.
        (size,) = lengths
        head = prefix + _U32.pack(size)
        rows = np.empty((len(values), len(head) + size), dtype=np.uint8)
        rows[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
        rows[:, len(head) :] = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(
            len(values), size
        )
        encoded: list[bytes] = rows.view(f"V{rows.shape[1]}").ravel().tolist()
        return encoded
    pack = _U32.pack
    return [prefix + pack(len(raw)) + raw for raw in map(str.encode, values)]


def _encode_each(domain: Domain, key: ComparisonKey, records: Iterable[Record]) -> EncodedBatch:
    """``encode_records`` one record at a time, for batches of mixed or unusual record shapes."""
    header = _header(domain, len(key.fields))
    pack = _U32.pack
    plan = key._plan
    required = frozenset(key.field_names)
    encoded: list[bytes] = []
    positions: list[int] = []
    errors: list[RecordError] = []
    add, add_position = encoded.append, positions.append
    for index, record in enumerate(records):
        try:
            if type(record) is dict and required <= record.keys():
                raws = [fn(record[name], name).encode("utf-8") for name, fn in plan]
            else:
                values = _values_of(plan, record)
                raws = [fn(v, n).encode("utf-8") for (n, fn), v in zip(plan, values, strict=True)]
        except FieldError as exc:
            errors.append(RecordError(index, exc.field, exc.reason))
            continue
        parts = [header]
        for raw in raws:
            parts.append(pack(len(raw)))
            parts.append(raw)
        add(b"".join(parts))
        add_position(index)
    return EncodedBatch(encoded, positions, errors)
