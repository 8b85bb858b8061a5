"""Field types and their normalisation: the first step of every comparison.

Two departments only find a match if they spell the same value the same way. A resident ID typed
with a lower-case ``x`` or in full-width digits, a name typed ``张　三`` with an ideographic space
or ``阿依古丽.买买提`` with a full stop for the middle dot, a zero-width space pasted from a web
page, a phone number with ``+86`` in front: all of these must canonicalise to the same string on
both sides, or the comparison silently says "no match". So each field type has one ``normalize``
rule here, and a value that cannot be normalised is refused with a ``FieldError`` whose reason
tells the clerk what to fix. The value itself never appears in the error: it is personal data.

What is deliberately not folded: traditional and simplified characters (张 and 張 are compared as
typed). The mapping is one-to-many and depends on context (乾 is its own character in 乾隆, 於 and
于 are two surnames), a converter's tables change between its releases while both sides must
produce the same bytes, and a register holds a person's name as registered. docs/PROTOCOL.md
section 4 states every rule; changing any of them is a new ``canonical.CANONICAL_VERSION``.

The functions are written for throughput (hashed mode hashes hundreds of thousands of records per
second): an ASCII fast path skips Unicode normalisation, a name of letters only skips the space
and dot rules, each checksum is one C call (``int`` in base 13 or 34), ``normalizer()`` hands
``canonical`` the bound function once so no lookup happens per record.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import decimal
import math
import re
from collections.abc import Callable
from enum import StrEnum

from comparator.china_time import china_today
from comparator.errors import FieldError
from comparator.text import is_ascii_digits, text_of

__all__ = [
    "EARLIEST_BIRTH_YEAR",
    "ID_CHECK_CHARACTERS",
    "MONTH_DAYS",
    "PROVINCES",
    "FieldType",
    "Normalizer",
    "normalize",
    "normalizer",
    "resident_id_check_character",
    "today_yyyymmdd",
    "uscc_check_character",
]


class FieldType(StrEnum):
    """The kinds of value a comparison key can be built from."""

    CN_RESIDENT_ID = "cn_resident_id"
    """Chinese resident identity card number (GB 11643-1999), 18 characters."""
    CN_USCC = "cn_uscc"
    """Unified social credit code of a legal entity (GB 32100-2015), 18 characters."""
    PERSON_NAME = "person_name"
    PHONE = "phone"
    DATE = "date"
    TEXT = "text"
    INTEGER = "integer"


Normalizer = Callable[[object, str], str]
"""``(value, field_name) -> canonical string``; raises ``FieldError`` naming ``field_name``."""

# --- cn_resident_id: GB 11643-1999 --------------------------------------------------------------

# ISO 7064 MOD 11-2: the check makes sum(d_i * 2^(17-i)) + check ≡ 1 (mod 11), i = 0..16 from the
# left, with 10 written as X. The weighted sum is 2 * P(2) for the digit polynomial P, and since
# 13 ≡ 2 (mod 11), P(2) ≡ P(13) = int(digits, 13): one C call instead of 17 multiplications.
ID_CHECK_CHARACTERS = "10X98765432"  # check character indexed by (weighted sum mod 11)
EARLIEST_BIRTH_YEAR = "1800"
# Every month-day that exists in a leap year; 29 February is then checked against the year.
MONTH_DAYS = frozenset(
    f"{d:%m%d}" for d in (_dt.date(2000, 1, 1) + _dt.timedelta(days=i) for i in range(366))
)
_today = [china_today().strftime("%Y%m%d")]
# Digits 1-2: the province-level division of GB/T 2260 where the number was first issued. Every
# code that division has held since resident ID numbers began (1984): 11-15 North, 21-23
# North-East, 31-37 East, 41-46 Centre-South (46 Hainan since 1988), 50-54 South-West (50 Chongqing
# since 1997), 61-65 North-West, 71 Taiwan, 81 Hong Kong, 82 Macao; and 83, the address code
# (830000) of Taiwan residents' residence permits, whose numbers follow the same standard as
# 810000 and 820000 do for Hong Kong and Macao residents. Only the province is checked: codes
# below it are renamed and merged every year, and a number keeps the code it was issued with.
_PROVINCE_RANGES = ((11, 15), (21, 23), (31, 37), (41, 46), (50, 54), (61, 65), (71, 71), (81, 83))
PROVINCES = frozenset(str(code) for lo, hi in _PROVINCE_RANGES for code in range(lo, hi + 1))


def resident_id_check_character(body17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for 17 ASCII digits."""
    return ID_CHECK_CHARACTERS[2 * int(body17, 13) % 11]


def _is_future(yyyymmdd: str) -> bool:
    # The cached date only ever lags behind the real one, so re-read the clock only when needed.
    if yyyymmdd <= _today[0]:
        return False
    return yyyymmdd > today_yyyymmdd()


def today_yyyymmdd() -> str:
    """Today's date in China as YYYYMMDD, read from the clock (and kept for ``_is_future``)."""
    _today[0] = max(_today[0], china_today().strftime("%Y%m%d"))
    return _today[0]


def _check_province(s: str, field: str) -> None:
    if s[:2] in PROVINCES:
        return
    if s[0] == "9" and len(s) == 18:
        # Since 2023 a foreigner's permanent residence card has an 18-digit number of the same
        # form, marked by a first digit 9 (a citizen's starts 1 to 8): another document.
        raise FieldError(
            field, "begins with 9: a foreigner's permanent residence card number, not a resident ID"
        )
    raise FieldError(field, "contains an unknown province code (digits 1-2)")


def _check_birth_date(s: str, field: str) -> None:
    # Strings of 8 ASCII digits compare like the dates they spell, which keeps this off datetime.
    born = s[6:14]
    month_day = born[4:]
    if month_day not in MONTH_DAYS or (month_day == "0229" and not calendar.isleap(int(born[:4]))):
        raise FieldError(field, "contains an impossible birth date (digits 7-14)")
    if born[:4] < EARLIEST_BIRTH_YEAR or _is_future(born):
        raise FieldError(field, "contains a birth date out of range (digits 7-14)")


def _resident_id(value: object, field: str) -> str:
    s = text_of(value, field)
    n = len(s)
    if n == 18:
        body = s[:17]
        if not is_ascii_digits(body):
            raise FieldError(field, "the first 17 characters must be digits")
        check = s[17]
        if check == "x":
            check = "X"
        elif not (check == "X" or "0" <= check <= "9"):
            raise FieldError(field, "the last character must be a digit or X")
        _check_province(s, field)
        _check_birth_date(s, field)
        if resident_id_check_character(body) != check:
            raise FieldError(field, "check character does not match: a character is mistyped")
        return body + check
    if n == 15:
        # First-generation IDs (before 1999) have a 2-digit year of the 1900s and no check digit.
        if not is_ascii_digits(s):
            raise FieldError(field, "a 15-character (first-generation) ID must be all digits")
        _check_province(s, field)
        body = s[:6] + "19" + s[6:]
        _check_birth_date(body, field)
        return body + resident_id_check_character(body)
    raise FieldError(field, f"must have 18 characters (or 15 for a first-generation ID), not {n}")


# --- cn_uscc: GB 32100-2015 ---------------------------------------------------------------------

# 31 characters: the digits and the capitals without I, O, S, V, Z (easily confused when written).
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
# The check makes sum(v_i * 3^i) + check ≡ 0 (mod 31). Since 34 ≡ 3 (mod 31), the sum is
# int(reversed characters, 34) once each character is rewritten as the base-34 digit of its value.
_USCC_AS_BASE34 = str.maketrans(_USCC_ALPHABET, "0123456789ABCDEFGHIJKLMNOPQRSTU")
_USCC_RE = re.compile(r"[0-9A-HJ-NP-RTUW-Y]{18}")


def uscc_check_character(body17: str) -> str:
    """The GB 32100-2015 check character for the first 17 characters of a USCC."""
    total = int(body17[::-1].translate(_USCC_AS_BASE34), 34)
    return _USCC_ALPHABET[-total % 31]


def _uscc(value: object, field: str) -> str:
    s = text_of(value, field).upper()
    if len(s) != 18:
        raise FieldError(field, f"must have 18 characters, not {len(s)}")
    if _USCC_RE.fullmatch(s) is None:
        raise FieldError(field, "may contain only digits and capital letters other than I O S V Z")
    if uscc_check_character(s[:17]) != s[17]:
        raise FieldError(field, "check character does not match: a character is mistyped")
    return s


# --- person_name --------------------------------------------------------------------------------

# Separators clerks and input methods put between the parts of a transliterated name
# (阿依古丽·买买提): all fold to U+00B7 MIDDLE DOT, the one GB 18030 names prescribe. Listed as they
# stand after NFKC, which has already made U+0387 a U+00B7, U+FF0E U+2024 U+FE52 a ".", U+FF61 a
# "。" and U+FF65 a U+30FB.
_NAME_DOTS = (
    "."  # FULL STOP: a Latin keyboard's dot
    "\u00b7"  # MIDDLE DOT: the canonical separator
    "\u16eb"  # RUNIC SINGLE PUNCTUATION
    "\u2022"  # BULLET: word processors' autocorrect
    "\u2027"  # HYPHENATION POINT: the middle dot of Big5 and traditional-character input
    "\u2219"  # BULLET OPERATOR
    "\u22c5"  # DOT OPERATOR
    "\u2e31"  # WORD SEPARATOR MIDDLE DOT
    "\u2e33"  # RAISED DOT
    "\u3002"  # IDEOGRAPHIC FULL STOP: a Chinese input method's "." key
    "\u30fb"  # KATAKANA MIDDLE DOT: Japanese fonts and input methods, and Shift-JIS data
    "\ua78f"  # LATIN LETTER SINOLOGICAL DOT
)
# A run of dots and the spaces around them (typing noise) is one separator: "阿依古丽 .. 买买提".
_DOT_RUN_RE = re.compile(f" ?[{_NAME_DOTS}][ {_NAME_DOTS}]*")
_find_dot = re.compile(f"[{_NAME_DOTS}]").search
# Han characters, as they stand after NFKC. Chinese is written without spaces, so a space between
# two of them is a typing or layout artefact ("张　三" from a form that pads two-character names
# to the width of three). The private use area counts: Chinese registers store the rare
# characters their encoding lacked there (GB 18030's user-defined area); planes 2 and 3 hold the
# ideograph extensions B to I and those still to come.
_HAN = (
    "\u3007"  # IDEOGRAPHIC NUMBER ZERO
    "\u3400-\u4dbf"  # CJK Unified Ideographs Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\ue000-\uf8ff"  # Private Use Area
    "\uf900-\ufaff"  # CJK Compatibility Ideographs (NFKC maps all but the 12 unified ones)
    "\U00020000-\U0003ffff"  # Supplementary and Tertiary Ideographic Planes
)
_HAN_SPACE_RE = re.compile(f"(?<=[{_HAN}]) (?=[{_HAN}])")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _fold_whitespace(s: str, field: str) -> str:
    """Inner runs of whitespace as one space; refuses control characters."""
    # Fast path: printable text (no tabs, line breaks or odd spaces) without double spaces is
    # already folded. Otherwise str.split() splits on every Unicode space, tab and line break.
    if s.isprintable() and "  " not in s:
        return s
    s = " ".join(s.split())
    if _CONTROL_RE.search(s) is not None:
        raise FieldError(field, "contains control characters")
    return s


def _person_name(value: object, field: str) -> str:
    s = text_of(value, field)
    if s.isalpha():  # most names: letters only, no space, dot or control character
        return s
    s = _fold_whitespace(s, field)
    if _find_dot(s) is not None:
        # Dots at either end separate nothing: a stray "。" typed after the name goes.
        s = _DOT_RUN_RE.sub("\u00b7", s).strip("\u00b7")
        if not s:
            raise FieldError(field, "is empty")
    if " " in s and not s.isascii():
        # Latin words keep their one space; Han characters are written without.
        s = _HAN_SPACE_RE.sub("", s)
    return s


def _text(value: object, field: str) -> str:
    if type(value) is int:  # not bool: True is not the text "True"
        return str(value)
    return _fold_whitespace(text_of(value, field), field)


# --- phone --------------------------------------------------------------------------------------

_PHONE_SEPARATORS = str.maketrans("", "", " -().\u00a0")
_MOBILE_RE = re.compile(r"1[3-9]\d{9}")


def _phone(value: object, field: str) -> str:
    if type(value) is int and value > 0:
        s = str(value)
    else:
        s = text_of(value, field).translate(_PHONE_SEPARATORS)
    international = s.startswith("+")
    if international:
        s = s[1:]
    elif s.startswith("00"):
        international, s = True, s[2:]
    if not is_ascii_digits(s):
        raise FieldError(field, "may contain only digits, spaces, dashes, dots, brackets and +")
    if international:
        if not s.startswith("86"):
            # Foreign numbers are kept in international form so +1… and 001… compare equal.
            if not 7 <= len(s) <= 15:
                raise FieldError(field, "an international number has 7 to 15 digits")
            return "00" + s
        s = s[2:]
        if _MOBILE_RE.fullmatch(s) is None:
            # +86 landlines drop the trunk 0 of the area code (+86 28 … is 028 …).
            s = "0" + s
    elif len(s) == 13 and s.startswith("86") and _MOBILE_RE.fullmatch(s, 2) is not None:
        s = s[2:]
    if s.startswith("1"):
        if _MOBILE_RE.fullmatch(s) is None:
            raise FieldError(field, "a mobile number has 11 digits starting 13-19")
    elif s.startswith("0"):
        if not 10 <= len(s) <= 12:
            raise FieldError(field, "a landline with area code has 10 to 12 digits")
    elif not 7 <= len(s) <= 8:
        raise FieldError(field, "a local number without area code has 7 or 8 digits")
    return s


# --- date ---------------------------------------------------------------------------------------

_DATE_RES = (
    re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})", re.ASCII),
    re.compile(r"(\d{4})()(\d{2})(\d{2})", re.ASCII),
    re.compile(r"(\d{4})(年)(\d{1,2})月(\d{1,2})日?", re.ASCII),
)


def _date(value: object, field: str) -> str:
    if isinstance(value, _dt.datetime):
        # A date column read through some drivers arrives as midnight; anything else is a time.
        if value.tzinfo is not None or value.time() != _dt.time():
            raise FieldError(field, "must be a date without a time of day")
        value = value.date()
    if isinstance(value, _dt.date):
        return value.isoformat()
    if type(value) is int:
        value = str(value)
    s = text_of(value, field)
    for pattern in _DATE_RES:
        m = pattern.fullmatch(s)
        if m is not None:
            try:
                return _dt.date(int(m.group(1)), int(m.group(3)), int(m.group(4))).isoformat()
            except ValueError:
                raise FieldError(field, "is not a real calendar date") from None
    raise FieldError(field, "must be a date written year-month-day, e.g. 2024-01-05")


# --- integer ------------------------------------------------------------------------------------

_INTEGER_RE = re.compile(r"([+-]?)0*(\d+)", re.ASCII)


def _integer(value: object, field: str) -> str:
    if type(value) is int:
        return str(value)
    if isinstance(value, bool):
        raise FieldError(field, "must be a whole number, not true/false")
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise FieldError(field, "must be a whole number, without a fraction")
        return str(int(value))
    if isinstance(value, decimal.Decimal):
        if not (value.is_finite() and value == value.to_integral_value()):
            raise FieldError(field, "must be a whole number, without a fraction")
        return str(int(value))
    if isinstance(value, int):  # an int subclass such as an IntEnum member
        return str(int(value))
    m = _INTEGER_RE.fullmatch(text_of(value, field))
    if m is None:
        raise FieldError(field, "must be a whole number written with digits only")
    sign, digits = m.groups()
    if digits == "0":  # "-0" and "+000" are zero
        return "0"
    return "-" + digits if sign == "-" else digits


_NORMALIZERS: dict[FieldType, Normalizer] = {
    FieldType.CN_RESIDENT_ID: _resident_id,
    FieldType.CN_USCC: _uscc,
    FieldType.PERSON_NAME: _person_name,
    FieldType.PHONE: _phone,
    FieldType.DATE: _date,
    FieldType.TEXT: _text,
    FieldType.INTEGER: _integer,
}


def normalizer(field_type: FieldType | str) -> Normalizer:
    """The normalising function for ``field_type``, looked up once (``ValueError`` if unknown)."""
    return _NORMALIZERS[FieldType(field_type)]


def normalize(field_type: FieldType | str, value: object, *, field: str = "value") -> str:
    """The canonical form of ``value`` as ``field_type``.

    Raises ``FieldError(field, reason)`` if the value is missing or invalid for the type; the reason
    says what is wrong without repeating the value.
    """
    return normalizer(field_type)(value, field)


# --- whole columns ------------------------------------------------------------------------------
