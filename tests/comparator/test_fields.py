"""Behaviour of each field type's normalisation: known valid and invalid values, clear errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comparator.china_time import china_today
from comparator.errors import FieldError
from comparator.fields import (
    FieldType,
    normalize,
    resident_id_check_character,
    uscc_check_character,
)


def _refused(field_type: FieldType, value: object) -> FieldError:
    with pytest.raises(FieldError) as info:
        normalize(field_type, value, field="f")
    assert info.value.field == "f"
    if isinstance(value, str) and len(value.strip()) > 3:
        # Personal data must never be echoed back in an error.
        assert value.strip() not in str(info.value)
    return info.value


# --- cn_resident_id -----------------------------------------------------------------------------

RID = FieldType.CN_RESIDENT_ID


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("11010519491231002X", "11010519491231002X"),
        ("11010519491231002x", "11010519491231002X"),
        ("  11010519491231002X\n", "11010519491231002X"),
        ("１１０１０５１９４９１２３１００２ｘ", "11010519491231002X"),  # full-width
        ("110105491231002", "11010519491231002X"),  # first generation, upgraded
        ("440524188001010014", "440524188001010014"),
        ("110101200002290018", "110101200002290018"),  # leap day
    ],
)
def test_resident_id_valid(raw: str, canonical: str) -> None:
    assert normalize(RID, raw) == canonical


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("110105194912310021", "check character"),  # wrong check digit
        ("11010519491231003X", "check character"),  # one digit mistyped
        ("1101051949123100", "18 characters"),
        ("11010519491231002XX", "18 characters"),
        ("1101051949A231002X", "17 characters must be digits"),
        ("11010519491231002Y", "last character"),
        ("110105194913310027", "birth date"),  # month 13
        ("110101200102290013", "birth date"),  # 29 Feb 2001
        ("110105299901010011", "birth date"),  # in the future
        ("11010549123100A", "digits"),
        ("110105491331002", "birth date"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_resident_id_invalid(raw: str, words: str) -> None:
    assert words in _refused(RID, raw).reason


@pytest.mark.parametrize("value", [None, 11010519491231002, 1.5, b"11010519491231002X", True])
def test_resident_id_not_text(value: object) -> None:
    _refused(RID, value)


def test_resident_id_refuses_non_ascii_digits() -> None:
    arabic_indic = "".join(chr(0x0660 + int(c)) for c in "11010519491231002") + "X"
    _refused(RID, arabic_indic)


# --- cn_uscc ------------------------------------------------------------------------------------

USCC = FieldType.CN_USCC


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("91350100M000100Y43", "91350100M000100Y43"),
        ("91350100m000100y43", "91350100M000100Y43"),
        (" ９１３５０１００Ｍ０００１００Ｙ４３ ", "91350100M000100Y43"),
    ],
)
def test_uscc_valid(raw: str, canonical: str) -> None:
    assert normalize(USCC, raw) == canonical


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("91350100M000100Y44", "check character"),
        ("91350100M000101Y43", "check character"),
        ("91350100M000100Y4", "18 characters"),
        ("91350100M00O100Y43", "capital letters"),  # letter O is not in the alphabet
        ("91350100M000100I43", "capital letters"),
        ("", "empty"),
    ],
)
def test_uscc_invalid(raw: str, words: str) -> None:
    assert words in _refused(USCC, raw).reason


# --- person_name --------------------------------------------------------------------------------

NAME = FieldType.PERSON_NAME


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("张三", "张三"),
        ("  张  三 ", "张三"),
        ("张\u3000三", "张三"),  # ideographic space: none between Han characters
        ("  Zhang  San ", "Zhang San"),  # one between Latin words
        ("ＪＯＨＮ　ＳＭＩＴＨ", "JOHN SMITH"),
        ("John\t\nSmith", "John Smith"),
        ("阿卜杜拉·买买提", "阿卜杜拉·买买提"),
        ("阿卜杜拉・买买提", "阿卜杜拉·买买提"),  # katakana middle dot
        ("阿卜杜拉･买买提", "阿卜杜拉·买买提"),  # half-width katakana middle dot
        ("阿卜杜拉‧买买提", "阿卜杜拉·买买提"),  # hyphenation point
        ("阿卜杜拉•买买提", "阿卜杜拉·买买提"),  # bullet
        ("阿卜杜拉⋅买买提", "阿卜杜拉·买买提"),  # dot operator
        ("阿卜杜拉∙买买提", "阿卜杜拉·买买提"),  # bullet operator
        ("阿卜杜拉\u0387买买提", "阿卜杜拉·买买提"),  # Greek ano teleia
        ("阿卜杜拉\u16eb买买提", "阿卜杜拉·买买提"),  # runic single punctuation
        ("阿卜杜拉 · 买买提", "阿卜杜拉·买买提"),
    ],
)
def test_person_name(raw: str, canonical: str) -> None:
    assert normalize(NAME, raw) == canonical


@pytest.mark.parametrize("raw", ["", "   ", "\u3000", "张\x00三"])
def test_person_name_invalid(raw: str) -> None:
    _refused(NAME, raw)


def test_lone_surrogate_refused() -> None:
    assert "not valid text" in _refused(NAME, "张\udc80").reason


# --- phone --------------------------------------------------------------------------------------

PHONE = FieldType.PHONE


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("13800138000", "13800138000"),
        ("138 0013 8000", "13800138000"),
        ("138-0013-8000", "13800138000"),
        ("+86 138 0013 8000", "13800138000"),
        ("+86-13800138000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("１３８００１３８０００", "13800138000"),
        (13800138000, "13800138000"),
        ("(0830) 123-4567", "08301234567"),
        ("028.8765.4321", "02887654321"),
        ("+86 28 8765 4321", "02887654321"),
        ("+86 10 6552 9988", "01065529988"),
        ("87654321", "87654321"),
        ("+1 (202) 555-0100", "0012025550100"),
        ("001 202 555 0100", "0012025550100"),
    ],
)
def test_phone(raw: object, canonical: str) -> None:
    assert normalize(PHONE, raw) == canonical


@pytest.mark.parametrize(
    "raw",
    ["1380013800", "138001380001", "12800138000", "tel 13800138000", "028123", "+12", "0", ""],
)
def test_phone_invalid(raw: str) -> None:
    _refused(PHONE, raw)


# --- date ---------------------------------------------------------------------------------------

DATE = FieldType.DATE


@pytest.mark.parametrize(
    "raw",
    [
        "2024-01-05",
        "2024-1-5",
        "2024/1/5",
        "2024/01/05",
        "2024.01.05",
        "20240105",
        "2024年1月5日",
        "2024年01月05日",
        " ２０２４－０１－０５ ",
        dt.date(2024, 1, 5),
        dt.datetime(2024, 1, 5),
        20240105,
    ],
)
def test_date(raw: object) -> None:
    assert normalize(DATE, raw) == "2024-01-05"


@pytest.mark.parametrize(
    "raw",
    [
        "2023-02-29",
        "2024-13-01",
        "2024-01-32",
        "2024/01-05",  # mixed separators
        "05/01/2024",  # day first is ambiguous
        "2024-01-05T10:00",
        dt.datetime(2024, 1, 5, 10, 0),
        "",
        3.0,
    ],
)
def test_date_invalid(raw: object) -> None:
    _refused(DATE, raw)


# --- text and integer ---------------------------------------------------------------------------


def test_text() -> None:
    assert normalize(FieldType.TEXT, "  瀘州市\t江陽區  ") == "瀘州市 江陽區"
    assert normalize(FieldType.TEXT, "ＡＢＣ１２３") == "ABC123"
    assert normalize(FieldType.TEXT, 42) == "42"
    _refused(FieldType.TEXT, "")
    _refused(FieldType.TEXT, True)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        (42, "42"),
        (-7, "-7"),
        (" 0042 ", "42"),
        ("+42", "42"),
        ("-0042", "-42"),
        ("-0", "0"),
        ("000", "0"),
        ("１２", "12"),
        (42.0, "42"),
        (Decimal("42.00"), "42"),
        (10**30, str(10**30)),
    ],
)
def test_integer(raw: object, canonical: str) -> None:
    assert normalize(FieldType.INTEGER, raw) == canonical


@pytest.mark.parametrize(
    "raw", [True, False, 1.5, float("nan"), float("inf"), Decimal("1.5"), "1.5", "1e3", "", "--1"]
)
def test_integer_invalid(raw: object) -> None:
    _refused(FieldType.INTEGER, raw)


def test_type_by_name_and_unknown_type() -> None:
    assert normalize("integer", "7") == "7"
    with pytest.raises(ValueError):
        normalize("colour", "red")


def test_default_field_name() -> None:
    with pytest.raises(FieldError) as info:
        normalize(FieldType.CN_RESIDENT_ID, "123")
    assert info.value.field == "value"


# --- check characters against their textbook definitions ----------------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _reference_id_check(body: str) -> str:
    total = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(body))
    return "10X98765432"[total % 11]


def _reference_uscc_check(body: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * (3**i % 31) for i, c in enumerate(body))
    return USCC_ALPHABET[(31 - total % 31) % 31]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_resident_id_check_matches_definition(body: str) -> None:
    assert resident_id_check_character(body) == _reference_id_check(body)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17))
def test_uscc_check_matches_definition(body: str) -> None:
    assert uscc_check_character(body) == _reference_uscc_check(body)


def test_birth_dates_at_the_edges() -> None:
    # "Today" is China's date on every machine, whatever its own clock's timezone (PROTOCOL §4.3).
    today = china_today()
    body = f"110105{today:%Y%m%d}001"
    assert normalize(RID, body + resident_id_check_character(body)) == body + (
        resident_id_check_character(body)
    )
    tomorrow = f"110105{today + dt.timedelta(days=1):%Y%m%d}001"
    _refused(RID, tomorrow + resident_id_check_character(tomorrow))
    for born, ok in [
        ("18000101", True),
        ("17991231", False),
        ("20000229", True),
        ("19000229", False),
    ]:
        body = f"110105{born}001"
        if ok:
            normalize(RID, body + resident_id_check_character(body))
        else:
            _refused(RID, body + resident_id_check_character(body))
