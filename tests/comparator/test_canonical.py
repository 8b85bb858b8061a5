"""Canonical records: keys, record shapes, batch errors, and property tests of the encoding."""

from __future__ import annotations

import datetime as dt
import struct
import unicodedata
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comparator.canonical import (
    RECORD_LABEL,
    ComparisonKey,
    Domain,
    FieldSpec,
    KeyDefinitionError,
    RecordError,
    canonicalize,
    encode_record,
    encode_records,
    encode_values,
)
from comparator.errors import FieldError
from comparator.fields import FieldType, normalize, resident_id_check_character

FIELD_TYPES = {"id_number": "cn_resident_id", "name": "person_name", "birth_date": "date"}
ID_KEY = ComparisonKey.from_names("id_number", ["id_number"], FIELD_TYPES)
ID_NAME_KEY = ComparisonKey.from_names("id_number+name", ["id_number", "name"], FIELD_TYPES)
DOMAIN = Domain("residents", "id_number+name", 1)
SETTINGS = settings(max_examples=100, deadline=None)


def decode(data: bytes) -> tuple[str, str, int, tuple[str, ...]]:
    """Parse an encoding back: if this always succeeds and round-trips, it is unambiguous."""
    assert data.startswith(RECORD_LABEL)
    pos = len(RECORD_LABEL)

    def text() -> str:
        nonlocal pos
        (n,) = struct.unpack_from(">I", data, pos)
        value = data[pos + 4 : pos + 4 + n]
        assert len(value) == n
        pos += 4 + n
        return value.decode("utf-8")

    resource, key_name = text(), text()
    (version, count) = struct.unpack_from(">QI", data, pos)
    pos += 12
    values = tuple(text() for _ in range(count))
    assert pos == len(data)
    return resource, key_name, version, values


# --- keys and domains ---------------------------------------------------------------------------


def test_from_names_keeps_order_and_types() -> None:
    key = ComparisonKey.from_names("k", ["name", "id_number"], FIELD_TYPES)
    assert key.fields == (
        FieldSpec("name", FieldType.PERSON_NAME),
        FieldSpec("id_number", FieldType.CN_RESIDENT_ID),
    )
    assert key.field_names == ("name", "id_number")


@pytest.mark.parametrize(
    ("name", "fields"),
    [("k", ["unknown"]), ("k", []), ("k", ["name", "name"]), ("", ["name"])],
)
def test_bad_key_definitions(name: str, fields: list[str]) -> None:
    with pytest.raises(KeyDefinitionError):
        ComparisonKey.from_names(name, fields, FIELD_TYPES)


def test_unknown_field_type() -> None:
    with pytest.raises(KeyDefinitionError, match="unknown field type"):
        ComparisonKey.from_names("k", ["x"], {"x": "colour"})


@pytest.mark.parametrize(
    "args", [("", "k", 1), ("r", "", 1), ("r", "k", -1), ("r", "k", 2**64), ("r", "k", True)]
)
def test_bad_domains(args: tuple[str, str, int]) -> None:
    with pytest.raises(KeyDefinitionError):
        Domain(*args)


# --- records ------------------------------------------------------------------------------------


def test_canonicalize_mapping_and_sequence_agree() -> None:
    by_name = {"name": " 张 三 ", "id_number": "110105491231002", "extra": "ignored"}
    positional = ["11010519491231002x", "张\u3000三"]
    expected = ("11010519491231002X", "张三")
    assert canonicalize(ID_NAME_KEY, by_name) == expected
    assert canonicalize(ID_NAME_KEY, positional) == expected
    assert encode_record(DOMAIN, ID_NAME_KEY, by_name) == encode_record(
        DOMAIN, ID_NAME_KEY, positional
    )


def test_encode_record_layout() -> None:
    encoded = encode_record(DOMAIN, ID_NAME_KEY, ["11010519491231002X", "张三"])
    assert decode(encoded) == ("residents", "id_number+name", 1, ("11010519491231002X", "张三"))


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"name": "张三"}, "id_number"),
        (["11010519491231002X"], "name"),
        (["11010519491231002X", "张三", "extra"], "record"),
        ("11010519491231002X张三", "record"),
        (42, "record"),
        ({"id_number": "11010519491231002X", "name": ""}, "name"),
    ],
)
def test_bad_records_name_the_field(record: object, field: str) -> None:
    with pytest.raises(FieldError) as info:
        canonicalize(ID_NAME_KEY, record)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize("key", [ID_KEY, ID_NAME_KEY])
def test_encode_records_reports_errors_with_positions(key: ComparisonKey) -> None:
    good = {"id_number": "11010519491231002X", "name": "张三"}
    positional = ["110105491231002", "王五"][: len(key.fields)]
    records: list[object] = [good, {"name": "李四"}, good, 17, positional]
    batch = encode_records(DOMAIN, key, records)  # type: ignore[arg-type]
    assert batch.positions == [0, 2, 4]
    assert [e.index for e in batch.errors] == [1, 3]
    assert batch.errors[0] == RecordError(1, "id_number", "is missing")
    assert batch.errors[1].field == "record"
    for position, encoded in zip(batch.positions, batch.encoded, strict=True):
        assert encoded == encode_record(DOMAIN, key, records[position])  # type: ignore[arg-type]


def test_encode_records_accepts_a_generator() -> None:
    rows = ({"id_number": "110105491231002"} for _ in range(3))
    batch = encode_records(Domain("r", "id_number", 2), ID_KEY, rows)
    assert batch.positions == [0, 1, 2] and len(set(batch.encoded)) == 1 and not batch.errors


# --- properties ---------------------------------------------------------------------------------

texts = st.text(min_size=0, max_size=12)
domains = st.builds(
    Domain,
    st.text(min_size=1, max_size=6),
    st.text(min_size=1, max_size=6),
    st.integers(min_value=0, max_value=2**64 - 1),
)


@st.composite
def resident_ids(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from(["11", "13", "23", "37", "46", "50", "54", "65", "71", "83"]))
    region = f"{province}{draw(st.integers(0, 9999)):04d}"
    born = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(1999, 12, 31)))
    serial = draw(st.integers(0, 999))
    body = f"{region}{born:%Y%m%d}{serial:03d}"
    return body + resident_id_check_character(body)


@SETTINGS
@given(st.sampled_from(list(FieldType)), st.text(max_size=20))
def test_normalisation_is_idempotent(field_type: FieldType, raw: str) -> None:
    try:
        once = normalize(field_type, raw)
    except FieldError:
        return
    assert normalize(field_type, once) == once


@SETTINGS
@given(resident_ids())
def test_resident_id_normalisation_is_idempotent(rid: str) -> None:
    assert normalize(FieldType.CN_RESIDENT_ID, rid.lower()) == rid
    assert normalize(FieldType.CN_RESIDENT_ID, rid) == rid


@SETTINGS
@given(resident_ids())
def test_fifteen_digit_id_equals_its_eighteen_digit_form(rid: str) -> None:
    first_generation = rid[:6] + rid[8:17]  # drop the century "19" and the check character
    assert normalize(FieldType.CN_RESIDENT_ID, first_generation) == rid


def _full_width(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s).replace(" ", "\u3000")


@SETTINGS
@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("张三李·"),
        min_size=1,
        max_size=16,
    )
)
def test_full_width_and_half_width_names_are_equal(name: str) -> None:
    try:
        half = normalize(FieldType.PERSON_NAME, name)
    except FieldError:
        return
    assert normalize(FieldType.PERSON_NAME, _full_width(name)) == half
    assert unicodedata.is_normalized("NFKC", half)


@SETTINGS
@given(domains, st.lists(texts, max_size=4), domains, st.lists(texts, max_size=4))
def test_distinct_records_never_encode_equal(
    d1: Domain, v1: Sequence[str], d2: Domain, v2: Sequence[str]
) -> None:
    e1, e2 = encode_values(d1, v1), encode_values(d2, v2)
    assert decode(e1) == (d1.resource_id, d1.key_name, d1.key_version, tuple(v1))
    if (d1, tuple(v1)) != (d2, tuple(v2)):
        assert e1 != e2
    else:
        assert e1 == e2


@SETTINGS
@given(texts, texts, texts)
def test_shifting_a_boundary_changes_the_encoding(a: str, b: str, c: str) -> None:
    if (a + b, c) != (a, b + c):
        assert encode_values(DOMAIN, [a + b, c]) != encode_values(DOMAIN, [a, b + c])


@SETTINGS
@given(domains, st.lists(texts, max_size=3), st.sampled_from(["resource", "key", "version"]))
def test_changing_the_domain_changes_the_encoding(
    domain: Domain, values: list[str], part: str
) -> None:
    other = Domain(
        domain.resource_id + "x" if part == "resource" else domain.resource_id,
        domain.key_name + "x" if part == "key" else domain.key_name,
        (domain.key_version + 1) % 2**64 if part == "version" else domain.key_version,
    )
    assert encode_values(domain, values) != encode_values(other, values)
