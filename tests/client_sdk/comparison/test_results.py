"""ComparisonResult: aligned with the input, counts, and the audit ids."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from client_sdk.comparison.results import ComparisonResult, RecordResult, build_result


@dataclass(frozen=True)
class _Error:
    index: int
    field: str | None
    reason: str


def _result() -> ComparisonResult:
    return build_result(
        5,
        [(0, True), (2, False), (4, True)],
        [_Error(1, "id_number", "check digit is wrong"), _Error(3, None, "expected 2 fields")],
        resource_id="residents",
        comparison_key="id_number",
        mode="hashed",
        request_id="r1",
        comparison_ids=["c1", "c2"],
    )


def test_records_are_aligned_with_the_input() -> None:
    result = _result()
    assert len(result) == 5
    assert [r.index for r in result] == [0, 1, 2, 3, 4]
    assert [r.status for r in result] == ["matched", "error", "not_matched", "error", "matched"]
    assert result[1] == RecordResult(1, "error", "id_number", "check digit is wrong")
    assert list(result[3:]) == [result[3], result[4]]


def test_counts_and_index_lists() -> None:
    result = _result()
    assert result.matched_count == 2
    assert result.not_matched_count == 1
    assert result.error_count == 2
    assert result.matched == [0, 4]
    assert result.not_matched == [2]
    assert [e.index for e in result.errors] == [1, 3]


def test_ids_and_metadata() -> None:
    result = _result()
    assert result.request_id == "r1"
    assert result.comparison_ids == ("c1", "c2")
    assert (result.resource_id, result.comparison_key, result.mode) == (
        "residents",
        "id_number",
        "hashed",
    )
    assert "matched=2" in repr(result)


def test_error_messages() -> None:
    result = _result()
    assert result[1].message == "id_number: check digit is wrong"
    assert result[3].message == "expected 2 fields"
    assert result[0].message == ""
    assert result[0].is_match and not result[0].is_error
    assert result[1].is_error


def test_empty_result() -> None:
    result = build_result(
        0, [], [], resource_id="r", comparison_key="k", mode="blinded", request_id="x"
    )
    assert len(result) == 0
    assert result.matched == []
    assert result.comparison_ids == ()


@pytest.mark.parametrize(
    ("matches", "errors", "message"),
    [
        ([(0, True)], [], "no outcome"),
        ([(0, True), (0, False), (1, True)], [], "two outcomes"),
        ([(0, True), (1, True)], [_Error(1, "f", "r")], "two outcomes"),
        ([(0, True), (2, True)], [], "out of range"),
    ],
)
def test_every_index_is_covered_exactly_once(
    matches: list[tuple[int, bool]], errors: list[_Error], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_result(
            2, matches, errors, resource_id="r", comparison_key="k", mode="hashed", request_id="x"
        )


def test_records_must_be_in_index_order() -> None:
    with pytest.raises(ValueError, match="position 0 has index 1"):
        ComparisonResult(
            [RecordResult(1, "matched")],
            resource_id="r",
            comparison_key="k",
            mode="hashed",
            request_id="x",
        )
