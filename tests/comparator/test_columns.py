"""The batch paths equal the per-record ones: ``normalize_column`` against ``normalize`` value by
value, and ``encode_records`` (a column at a time) against ``encode_record`` record by record, on
random valid and invalid values: the same canonical strings, bytes, positions and error reasons."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from comparator.canonical import (
    ComparisonKey,
    Domain,
    EncodedBatch,
    RecordError,
    encode_record,
    encode_records,
)
from comparator.columns import ARRAY_MIN_ROWS, normalize_column
from comparator.errors import FieldError
from comparator.fields import (
    FieldType,
    normalize,
    resident_id_check_character,
)

SETTINGS = settings(max_examples=300, deadline=None)
# Shorter columns go value by value; this many and more are checked as one array.
ARRAY_ROWS = ARRAY_MIN_ROWS
FIELD_TYPES = {
    "id_number": "cn_resident_id",
    "name": "person_name",
    "phone": "phone",
    "birth_date": "date",
}
DOMAIN = Domain("residents", "id_number", 3)

# Province codes the rule knows, a few it does not, and 9 (a foreigner's permanent residence card).
_PROVINCES = ["11", "15", "21", "31", "37", "46", "50", "54", "65", "71", "81", "83"]
_NOT_PROVINCES = ["00", "10", "16", "47", "72", "84", "90", "99"]
_TODAY = dt.date.today()


@st.composite
def resident_ids(draw: st.DrawFn) -> str:
    """An 18-digit ID number: mostly valid, else wrong in one of the ways the rule checks."""
    province = draw(st.sampled_from(_PROVINCES) | st.sampled_from(_NOT_PROVINCES))
    area = draw(st.text("0123456789", min_size=4, max_size=4))
    born = draw(
        st.dates(dt.date(1800, 1, 1), _TODAY).map(lambda d: d.strftime("%Y%m%d"))
        | st.sampled_from(["18991231", "17991231", "19000229", "20000229", "20010229"])
        | st.sampled_from(["19801301", "19800001", "19800431", "19800100", "19800132"])
        | st.just((_TODAY + dt.timedelta(days=1)).strftime("%Y%m%d"))
        | st.just(_TODAY.strftime("%Y%m%d"))
    )
    body = province + area + born + draw(st.text("0123456789", min_size=3, max_size=3))
    right = resident_id_check_character(body)
    check = draw(
        st.just(right)
        | st.just(right.lower())
        | st.sampled_from("0123456789Xx")
        | st.sampled_from(["Y", "*", "\uff10"])
    )
    return body + check


def _first_generation(rid: str) -> str:
    """The 15-digit form: no century, no check character."""
    return rid[:6] + rid[8:17]


_SPELLINGS = [
    lambda rid: rid,
    lambda rid: rid,
    lambda rid: rid,
    lambda rid: f" {rid}\t",
    lambda rid: rid.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")),
    lambda rid: rid[:9] + "\u200b" + rid[9:],
    _first_generation,
    lambda rid: rid[:17],
    lambda rid: rid + "0",
    lambda rid: rid[:5] + "A" + rid[6:],
    lambda rid: rid[:5] + "\u0665" + rid[6:],  # an Arabic-Indic digit: isdigit, not ASCII
    lambda rid: rid[:17] + "\ud800",  # a lone surrogate
]

spelled_ids = st.builds(lambda rid, i: _SPELLINGS[i](rid), resident_ids(), st.integers(0, 11))
id_values = (
    spelled_ids
    | st.none()
    | st.integers(10**16, 10**18)
    | st.sampled_from(["", " ", "x" * 18, b"110105194912310021"])
    | st.text(max_size=20)
)


def _one_by_one(field_type: str, values: Sequence[object]) -> tuple[list[str | None], list]:
    canonical: list[str | None] = []
    errors = []
    for index, value in enumerate(values):
        try:
            canonical.append(normalize(field_type, value, field="f"))
        except FieldError as error:
            canonical.append(None)
            errors.append((index, error.field, error.reason))
    return canonical, errors


def _column(field_type: str, values: Sequence[object]) -> tuple[list[str | None], list]:
    column = normalize_column(field_type, values, "f")
    return column.values, [(i, e.field, e.reason) for i, e in column.errors]


@SETTINGS
@given(st.lists(id_values, max_size=40))
def test_resident_id_column_equals_value_by_value(values: list[object]) -> None:
    assert _column("cn_resident_id", values) == _one_by_one("cn_resident_id", values)


@SETTINGS
@given(st.lists(spelled_ids, min_size=ARRAY_ROWS, max_size=60))
def test_resident_id_column_of_text_equals_value_by_value(values: list[str]) -> None:
    # All str, enough of them: the path that checks the whole column with numpy at once.
    assert _column("cn_resident_id", values) == _one_by_one("cn_resident_id", values)


@SETTINGS
@given(st.lists(resident_ids(), min_size=1, max_size=60))
def test_eighteen_digit_column_equals_value_by_value(values: list[str]) -> None:
    # All 18 ASCII characters: the fast path sees every value of a column of ARRAY_ROWS or more.
    assert _column("cn_resident_id", values) == _one_by_one("cn_resident_id", values)


def test_a_plain_column_is_accepted_whole_and_x_is_upper_cased() -> None:
    values = ["11010519491231002x", "11010519491231002X", "510502198503150075"] * ARRAY_ROWS
    column = normalize_column("cn_resident_id", values, "id_number")
    assert column.values == ["11010519491231002X", "11010519491231002X", "510502198503150075"] * (
        ARRAY_ROWS
    )
    assert column.errors == []
    assert values[0].endswith("x")  # the caller's list is left as it was


@SETTINGS
@given(
    st.sampled_from([t.value for t in FieldType if t is not FieldType.CN_RESIDENT_ID]),
    st.lists(st.text(max_size=12) | st.none() | st.integers(-(10**12), 10**12), max_size=20),
)
def test_other_columns_equal_value_by_value(field_type: str, values: list[object]) -> None:
    assert _column(field_type, values) == _one_by_one(field_type, values)


# --- whole records: encode_records against encode_record ----------------------------------------


def _records_one_by_one(key: ComparisonKey, rows: Sequence[object]) -> EncodedBatch:
    encoded, positions, errors = [], [], []
    for index, row in enumerate(rows):
        try:
            encoded.append(encode_record(DOMAIN, key, row))  # type: ignore[arg-type]
        except FieldError as error:
            errors.append(RecordError(index, error.field, error.reason))
            continue
        positions.append(index)
    return EncodedBatch(encoded, positions, errors)


names = st.sampled_from(["张三", "阿依古丽.买买提", "  李　四 ", "", "Zhang San", "x\x00"])
phones = st.sampled_from(["13800138000", "+86 138 0013 8000", "028-12345678", "12", ""])
dates = st.sampled_from(["1985-03-15", "19850315", "1985年3月15日", "1985-02-30", "soon"])
columns = {"id_number": id_values, "name": names, "phone": phones, "birth_date": dates}
keys = st.sampled_from(
    [["id_number"], ["id_number", "name"], ["name", "id_number", "birth_date"], ["phone"]]
)


@st.composite
def batches(draw: st.DrawFn) -> tuple[ComparisonKey, list[object]]:
    """A key and rows for it: dicts, lists or tuples, now and then one of another shape."""
    fields = draw(keys)
    key = ComparisonKey.from_names("+".join(fields), fields, FIELD_TYPES)
    shape = draw(st.sampled_from(["dict", "list", "tuple", "mixed"]))
    rows: list[object] = []
    for _ in range(draw(st.integers(0, 30))):
        values = [draw(columns[name]) for name in fields]
        kind = shape if shape != "mixed" else draw(st.sampled_from(["dict", "list", "odd"]))
        if kind == "dict":
            row = dict(zip(fields, values, strict=True))
            if draw(st.integers(0, 20)) == 0:
                row.pop(fields[0])  # a missing field
            row["other"] = "ignored"
            rows.append(row)
        elif kind in ("list", "tuple"):
            if draw(st.integers(0, 20)) == 0:
                values = values[:-1]  # too few values
            rows.append(values if kind == "list" else tuple(values))
        else:
            rows.append(draw(st.sampled_from([None, "510502198503150075", 7])))
    return key, rows


@SETTINGS
@given(batches())
def test_encode_records_equals_record_by_record(batch: tuple[ComparisonKey, list[object]]) -> None:
    key, rows = batch
    assert encode_records(DOMAIN, key, rows) == _records_one_by_one(key, rows)  # type: ignore[arg-type]
