"""Verification keys, the requester's item encoding, and the packed verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from comparator.canonical import (
    ComparisonKey,
    Domain,
    FieldSpec,
    KeyDefinitionError,
    encode_record,
)
from comparator.errors import InvalidInputError
from comparator.fields import FieldType
from comparator.verification import (
    Verdict,
    VerificationPlan,
    decide,
    pack_verdicts,
    split_items,
    unpack_verdicts,
    verification_key,
    verification_key_name,
)

ID = FieldSpec("id_number", FieldType.CN_RESIDENT_ID)
NAME = FieldSpec("name", FieldType.PERSON_NAME)
PHONE = FieldSpec("phone", FieldType.PHONE)
KEY = ComparisonKey("id_number", (ID,))
PERSON = {"id_number": "510502198503150075", "name": "张三", "phone": "138 0000 0000"}


def test_verification_key_names_cannot_be_comparison_key_names() -> None:
    assert verification_key_name("id_number", "name") == "verify:id_number:name"
    key = verification_key(KEY, NAME)
    assert key.name == "verify:id_number:name"
    assert key.field_names == ("id_number", "name")
    with pytest.raises(KeyDefinitionError):
        verification_key_name("a:b", "name")
    with pytest.raises(KeyDefinitionError, match="part of comparison key"):
        verification_key(KEY, ID)


def test_verification_encoding_is_domain_separated_from_the_multi_field_key() -> None:
    """``id_number+name`` and ``verify:id_number:name`` take the same values, other bytes."""
    both = ComparisonKey("id_number+name", (ID, NAME))
    ordinary = encode_record(Domain("residents", both.name, 1), both, PERSON)
    verify = verification_key(KEY, NAME)
    verifying = encode_record(Domain("residents", verify.name, 1), verify, PERSON)
    assert ordinary != verifying
    assert ordinary.endswith(verifying[-30:])  # same values, different domain


def test_plan_encodes_the_key_then_each_field_per_record() -> None:
    plan = VerificationPlan("residents", KEY, (NAME, PHONE), 3)
    assert plan.width == 3
    batch = plan.encode([PERSON, {**PERSON, "phone": "12"}, PERSON])
    assert batch.positions == [0, 2]
    assert [(e.index, e.field) for e in batch.errors] == [(1, "phone")]
    assert len(batch.encoded) == 6
    key_domain, name_domain, phone_domain = plan.domains
    assert batch.encoded[0] == encode_record(key_domain, KEY, PERSON)
    assert batch.encoded[1] == encode_record(name_domain, verification_key(KEY, NAME), PERSON)
    assert batch.encoded[2] == encode_record(phone_domain, verification_key(KEY, PHONE), PERSON)
    assert batch.encoded[3:] == batch.encoded[:3]


def test_plan_reports_the_key_field_first() -> None:
    plan = VerificationPlan("residents", KEY, (NAME,), 1)
    batch = plan.encode([{"id_number": "bad", "name": ""}])
    assert [(e.field, e.index) for e in batch.errors] == [("id_number", 0)]


def test_plan_refuses_no_fields_repeats_and_key_fields() -> None:
    for fields in ((), (NAME, NAME), (ID,)):
        with pytest.raises(KeyDefinitionError):
            VerificationPlan("residents", KEY, fields, 1)


def test_decide_sets_mismatches_only_for_found_records() -> None:
    found = np.array([False, True, True, False])
    agree = np.array([[False, False], [True, True], [True, False], [True, True]])
    verdicts, mismatch = decide(found, agree)
    assert verdicts.tolist() == [0, 1, 2, 0]
    assert mismatch.tolist() == [[False, False], [False, False], [False, True], [False, False]]


def test_verdicts_round_trip_and_contradictions_are_refused() -> None:
    verdicts, mismatch = decide(np.array([True, False, True]), np.array([[1, 0], [0, 0], [1, 1]]))
    outcomes, bits = pack_verdicts(verdicts, mismatch)
    assert outcomes == b"\x02\x00\x01"
    assert bits == bytes([0b10])
    unpacked, rows = unpack_verdicts(outcomes, bits, 3, 2)
    assert unpacked == [Verdict.INCONSISTENT, Verdict.NOT_FOUND, Verdict.CONSISTENT]
    assert rows == [(False, True), (False, False), (False, False)]
    with pytest.raises(InvalidInputError, match="contradict"):
        unpack_verdicts(b"\x01\x00\x01", bits, 3, 2)
    with pytest.raises(InvalidInputError, match="contradict"):
        unpack_verdicts(b"\x02\x00\x02", bits, 3, 2)
    with pytest.raises(InvalidInputError, match="outcome bytes"):
        unpack_verdicts(outcomes[:2], bits, 3, 2)
    with pytest.raises(InvalidInputError, match="not 0, 1 or 2"):
        unpack_verdicts(b"\x03\x00\x00", b"\x00", 3, 2)
    with pytest.raises(InvalidInputError, match="padding"):
        unpack_verdicts(outcomes, bytes([0b1000010]), 3, 2)


def test_split_items_by_column() -> None:
    items = [b"k0", b"a0", b"k1", b"a1"]
    assert [list(c) for c in split_items(items, 2)] == [[b"k0", b"k1"], [b"a0", b"a1"]]
    with pytest.raises(InvalidInputError, match="whole number"):
        split_items(items[:3], 2)
