"""Free text a department sends holds no resident ID or mobile number; case numbers and dates
pass."""

from __future__ import annotations

import pytest

from comparator.fields import resident_id_check_character
from provider_node.core.errors import InvalidRequestError
from provider_node.core.personal_data import check_free_text, personal_data_in

BODY = "51050219961109914"
ID_18 = BODY + resident_id_check_character(BODY)
FULL_WIDTH_ID = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in ID_18)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"低保复核 {ID_18}", "a resident ID number"),
        (f"review of {ID_18.lower()}", "a resident ID number"),
        (
            "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in ID_18),
            "a resident ID number",
        ),
        ("核查 510502961109914", "a resident ID number"),  # the old 15 digits
        ("联系 13812345678 张三", "a mobile number"),
        ("call +86 13812345678", "a mobile number"),
    ],
)
def test_record_values_are_found(text: str, kind: str) -> None:
    assert personal_data_in(text) == kind
    with pytest.raises(InvalidRequestError, match=f"purpose holds {kind}"):
        check_free_text("purpose", text)


@pytest.mark.parametrize(
    "text",
    [
        "minimum living allowance eligibility review",
        "低保资格复核 办件编号 20261207001",  # a case number: 11 digits, not a mobile's 1[3-9]
        "2026年第4季度 住房补贴核验",
        BODY + "0" if resident_id_check_character(BODY) != "0" else BODY + "1",  # wrong check
        "3f2a9b1c4d5e6f708192a3b4c5d6e7f8",  # a request id as the SDK makes one
        "batch-2024-07/civil",
        "ab13812345678cd",  # eleven digits inside a hexadecimal id: not a phone number
        "48c218c3499d4e7613812345678ab6b4",
    ],
)
def test_purposes_case_numbers_and_ids_of_requests_pass(text: str) -> None:
    assert personal_data_in(text) is None
    check_free_text("purpose", text)
