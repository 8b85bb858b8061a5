"""What clerks type: every spelling of one person's name or ID number canonicalises alike.

Each group below is one value as a register holds it, then the ways clerks, forms, input methods
and copy-paste actually spell it (ideographic and no-break spaces, tabs, full-width forms, the dot
of every keyboard, zero-width characters from web pages, a byte order mark from a CSV file). All
of a group must give one canonical string, or a comparison would say "not matched" for the same
person. Invalid ID numbers are refused with a reason a clerk can act on, never silently.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comparator.errors import FieldError
from comparator.fields import FieldType, normalize, resident_id_check_character

NAME = FieldType.PERSON_NAME
RID = FieldType.CN_RESIDENT_ID

# GB/T 2260 province-level codes, and 83 (Taiwan residents' residence permits), written out here
# from the standard rather than read from the code under test.
PROVINCES = frozenset(
    map(str, [11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46])
) | frozenset(map(str, [50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83]))


def _id(body17: str) -> str:
    return body17 + resident_id_check_character(body17)


def _wide(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


SAME_NAMES: list[tuple[str, list[str]]] = [
    (
        "张三",
        [
            "张三",
            "张 三",
            "张\u3000三",  # ideographic space: a form padding two-character names
            "张\u00a0三",  # no-break space from a web page
            "张\t三",
            " 张  三 ",
            "张\u200b三",  # zero-width space
            "张\u200c三",  # zero-width non-joiner
            "张\u200d三",  # zero-width joiner
            "张\u2060三",  # word joiner
            "\ufeff张三",  # byte order mark at the start of a CSV cell
            "张\u00ad三",  # soft hyphen
            "\u200e张三\u200f",  # bidirectional marks
            "张\u3000\u200b 三",
        ],
    ),
    (
        "欧阳娜娜",
        ["欧阳娜娜", "欧阳 娜娜", "欧阳\u3000娜娜", "欧 阳 娜 娜", "欧阳\u2002娜娜"],
    ),
    (
        "阿依古丽·买买提",
        [
            "阿依古丽·买买提",
            "阿依古丽.买买提",  # a Latin keyboard's full stop
            "阿依古丽。买买提",  # a Chinese input method's full stop
            "阿依古丽．买买提",  # full-width full stop
            "阿依古丽｡买买提",  # half-width ideographic full stop
            "阿依古丽･买买提",  # half-width katakana middle dot
            "阿依古丽・买买提",  # katakana middle dot
            "阿依古丽‧买买提",  # hyphenation point (Big5)
            "阿依古丽•买买提",  # bullet
            "阿依古丽∙买买提",  # bullet operator
            "阿依古丽⋅买买提",  # dot operator
            "阿依古丽\u0387买买提",  # Greek ano teleia
            "阿依古丽\u2e33买买提",  # raised dot
            "阿依古丽\u2024买买提",  # one dot leader
            "阿依古丽 · 买买提",
            "阿依古丽\u3000·\u3000买买提",
            "阿依古丽..买买提",  # the key pressed twice
            "阿依古丽 。 . 买买提",
            "阿依古丽\u200b·买买提",
            "阿依古丽·买买提。",  # a full stop typed after the name
            "·阿依古丽·买买提",
        ],
    ),
    (
        "Zhang San",
        ["Zhang San", "Zhang  San", "Zhang\u00a0San", "Zhang\tSan", _wide("Zhang") + "\u3000San"],
    ),
    ("J·Smith", ["J.Smith", "J. Smith", "J · Smith", "Ｊ．Ｓｍｉｔｈ"]),
    # NFKC: a compatibility ideograph is the unified ideograph it duplicates.
    ("金三", ["金三", "\uf90a三", "\uf90a 三"]),
    # A rare character kept in the private use area, spaced like any Han character.
    ("王\ue000", ["王\ue000", "王 \ue000", "王\u3000\ue000"]),
    # Extension B ideographs (outside the BMP).
    ("\U00020000\U00020001", ["\U00020000 \U00020001", "\U00020000\u3000\U00020001"]),
    # A zero-width character between a letter and its accent: removed before NFKC composes them.
    ("Jos\u00e9", ["Jose\u0301", "Jose\u200b\u0301", "Jos\u00e9"]),
]


@pytest.mark.parametrize(
    ("canonical", "spelling"),
    [pytest.param(c, s, id=f"{c}-{i}") for c, group in SAME_NAMES for i, s in enumerate(group)],
)
def test_every_spelling_of_a_name_is_the_same_name(canonical: str, spelling: str) -> None:
    assert normalize(NAME, spelling) == canonical


DIFFERENT_NAMES: list[tuple[str, str, str]] = [
    ("张三", "张 San", "a space between Han and Latin is kept"),
    ("Zhang San", "ZhangSan", "Latin words keep their space"),
    ("zhang san", "Zhang San", "no case folding"),
    ("阿依古丽·买买提", "阿依古丽买买提", "a dot between name parts is not the same as none"),
    ("阿依古丽·买买提", "阿依古丽 买买提", "a space between Han characters is no dot: it goes"),
    ("张三", "張三", "traditional and simplified are not folded"),
    ("乾隆", "干隆", "乾 is a name character of its own, not traditional 干"),
    ("於丽", "于丽", "於 and 于 are two surnames"),
    ("萧红", "肖红", "萧 and 肖 are two surnames"),
]


@pytest.mark.parametrize(("a", "b", "why"), DIFFERENT_NAMES)
def test_names_that_stay_different(a: str, b: str, why: str) -> None:
    assert normalize(NAME, a) != normalize(NAME, b), why


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "is empty"),
        ("\u3000", "is empty"),
        ("\u200b", "is empty"),
        ("\ufeff\u00a0", "is empty"),
        ("·", "is empty"),
        (" 。 ", "is empty"),
        ("张\x00三", "contains control characters"),
        ("张\x1b三", "contains control characters"),
    ],
)
def test_names_with_nothing_left_or_control_characters_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(FieldError) as refused:
        normalize(NAME, raw, field="name")
    assert (refused.value.field, refused.value.reason) == ("name", reason)


# ---- resident ID numbers -------------------------------------------------------------------------

ID_A = _id("51050219850315007")
ID_X = _id("11010519491231002")
ID_HK = _id("81000019900101001")
ID_TW = _id("83000019900101008")

SAME_IDS: list[tuple[str, list[str]]] = [
    (ID_A, [ID_A, _wide(ID_A), f" {ID_A}\u3000", f"\ufeff{ID_A}", f"{ID_A[:9]}\u200b{ID_A[9:]}"]),
    (ID_X, [ID_X, ID_X[:17] + "x", _wide(ID_X[:17] + "x"), _wide(ID_X), "110105491231002"]),
    (_id("51050219850315003"), ["510502850315003", _wide("510502850315003")]),
    (ID_HK, [ID_HK]),
    (ID_TW, [ID_TW.lower()]),
]


@pytest.mark.parametrize(
    ("canonical", "spelling"),
    [pytest.param(c, s, id=f"{c}-{i}") for c, group in SAME_IDS for i, s in enumerate(group)],
)
def test_every_spelling_of_an_id_number_is_the_same_number(canonical: str, spelling: str) -> None:
    assert normalize(RID, spelling) == canonical


UNKNOWN_PROVINCE = "contains an unknown province code (digits 1-2)"
FOREIGNER = "begins with 9: a foreigner's permanent residence card number, not a resident ID"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_id("00000019900101001"), UNKNOWN_PROVINCE),
        ("000000000000000000", UNKNOWN_PROVINCE),
        (_id("99010219900101001"), FOREIGNER),
        (_id("99010219900101001")[:17] + "0", FOREIGNER),  # reported before the check character
        (_id("95115619900101001"), FOREIGNER),
        (_id("16010019900101001"), UNKNOWN_PROVINCE),
        (_id("20010019900101001"), UNKNOWN_PROVINCE),
        (_id("39010019900101001"), UNKNOWN_PROVINCE),
        (_id("47010019900101001"), UNKNOWN_PROVINCE),
        (_id("55010019900101001"), UNKNOWN_PROVINCE),
        (_id("66010019900101001"), UNKNOWN_PROVINCE),
        (_id("72010019900101001"), UNKNOWN_PROVINCE),
        (_id("80010019900101001"), UNKNOWN_PROVINCE),
        (_id("84010019900101001"), UNKNOWN_PROVINCE),
        ("990102900101001", UNKNOWN_PROVINCE),  # 15 digits: never a foreigner's number
        ("000000900101001", UNKNOWN_PROVINCE),
        (_wide(_id("00000019900101001")), UNKNOWN_PROVINCE),
        (ID_A[:17] + ("0" if ID_A[17] != "0" else "1"), "check character does not match"),
        (ID_A[:6] + " " + ID_A[6:], "must have 18 characters (or 15"),
        (ID_A[:6] + "-" + ID_A[6:], "must have 18 characters (or 15"),
        (_id("51050219851301001"), "contains an impossible birth date"),
    ],
)
def test_invalid_id_numbers_are_refused_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(FieldError) as refused:
        normalize(RID, raw, field="id_number")
    assert refused.value.field == "id_number"
    assert refused.value.reason.startswith(reason)
    assert raw not in str(refused.value)  # personal data is never repeated


def test_every_province_is_accepted_and_no_other_code() -> None:
    for code in range(100):
        province = f"{code:02d}"
        value = _id(f"{province}010019900101001")
        if province in PROVINCES:
            assert normalize(RID, value) == value
            assert normalize(RID, f"{province}0100900101001") == _id(f"{province}010019900101001")
        else:
            with pytest.raises(FieldError):
                normalize(RID, value)


# ---- properties ----------------------------------------------------------------------------------

NAME_ALPHABET = st.sampled_from(
    "张三李阿依古丽\ue000\uf90aAbc .。．·・･•\u3000\u00a0\t\u200b\u200d\ufeff\u00ad\u0301\ufe0f"
)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=NAME_ALPHABET, min_size=1, max_size=12))
def test_name_canonical_forms_are_stable(raw: str) -> None:
    try:
        once = normalize(NAME, raw)
    except FieldError:
        return
    assert normalize(NAME, once) == once
    assert unicodedata.is_normalized("NFKC", once)
    assert once == once.strip() and "  " not in once
    assert not once.startswith("\u00b7") and not once.endswith("\u00b7")
    assert "\u00b7\u00b7" not in once and " \u00b7" not in once and "\u00b7 " not in once
