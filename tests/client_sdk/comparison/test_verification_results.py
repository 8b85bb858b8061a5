"""The SDK's verification pieces that need no node: results, the CSV output, the checks of the
node's answer, answers on the wire, and the plan built from a catalog entry."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from bidui.v1 import catalog_pb2, comparison_pb2
from client_sdk.comparison.answers import check_verification, verification_plan
from client_sdk.comparison.catalog import answer_to_wire, answers_from_wire, comparison_key_for
from client_sdk.comparison.chunks import Comparison
from client_sdk.comparison.verification_results import LABELS, VerificationResult
from client_sdk.errors import InvalidRequestError, ServiceError
from client_sdk.files.csv_io import read_csv
from client_sdk.files.verification_csv import write_verification
from comparator.canonical import RecordError


def _result() -> VerificationResult:
    codes = np.array([1, 2, 0, 3], dtype=np.uint8)
    return VerificationResult(
        codes,
        {1: ("name", "phone")},
        [RecordError(3, "id_number", "must have 18 characters")],
        resource_id="people",
        comparison_key="id_number",
        fields=("name", "phone"),
        mode="hashed",
        request_id="r",
    )


def test_a_result_reads_per_record_with_labels_and_counts() -> None:
    result = _result()
    assert [r.status for r in result] == ["consistent", "inconsistent", "not_found", "error"]
    assert [r.label for r in result] == ["一致", "不一致", "库无", "无效"]
    assert result[1].mismatched_fields == ("name", "phone") and result[-1].index == 3
    assert result[3].message == "id_number: must have 18 characters"
    assert (result.consistent_count, result.inconsistent_count) == (1, 1)
    assert (result.not_found_count, result.error_count) == (1, 1)
    assert result.indexes("not_found") == [2] and len(result[1:3]) == 2
    assert LABELS["inconsistent"] == "不一致"
    with pytest.raises(ValueError, match="every invalid record"):
        VerificationResult(
            np.array([3], dtype=np.uint8), {}, [], resource_id="p", comparison_key="k",
            fields=("a",), mode="hashed", request_id="r",
        )  # fmt: skip


def test_the_csv_output_adds_result_and_mismatched_fields(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id_number,bidui_result\n1,old\n2,old\n3,old\n4,old\n", encoding="utf-8")
    table = read_csv(source)
    write_verification(tmp_path / "out.csv", table, _result())
    with (tmp_path / "out.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id_number", "bidui_result", "bidui_mismatched_fields", "bidui_error"]
    assert rows[2] == ["2", "inconsistent", "name;phone", ""]
    assert rows[4] == ["4", "error", "", "id_number: must have 18 characters"]


def _answer(**fields: object) -> comparison_pb2.VerificationResult:
    values: dict[str, object] = {
        "outcomes": b"\x02\x00\x01", "mismatch_bits": b"\x02", "record_count": 3,
        "not_found_count": 1, "consistent_count": 1, "inconsistent_count": 1,
    }  # fmt: skip
    return comparison_pb2.VerificationResult(**{**values, **fields})  # type: ignore[arg-type]


def test_the_node_s_answer_is_checked() -> None:
    codes, rows = check_verification(_answer(), 3, 2)
    assert codes.tolist() == [2, 0, 1] and rows[0] == (False, True)
    for bad, says in (
        (_answer(record_count=2), "answered for 2"),
        (_answer(outcomes=b"\x01\x00\x01"), "not for this request"),
        (_answer(mismatch_bits=b"\x22"), "not for this request"),
        (_answer(consistent_count=2), "counts per outcome"),
    ):
        with pytest.raises(ServiceError, match=says):
            check_verification(bad, 3, 2)


def test_answers_on_the_wire() -> None:
    assert answer_to_wire("verify") == catalog_pb2.ANSWER_VERIFY
    with pytest.raises(InvalidRequestError):
        answer_to_wire("all")
    assert answers_from_wire([]) == ("match",)  # a node or grant older than answers
    assert answers_from_wire([catalog_pb2.ANSWER_COUNT, 99]) == ("count",)


def test_the_plan_comes_from_the_catalog_entry() -> None:
    entry = catalog_pb2.Resource(
        id="people", key_version=2, canonical_version=2,
        fields=[
            catalog_pb2.Field(name="id_number", type="cn_resident_id"),
            catalog_pb2.Field(name="name", type="person_name"),
        ],
        comparison_keys=[catalog_pb2.ComparisonKey(name="id_number", fields=["id_number"])],
    )  # fmt: skip
    comparison = Comparison(
        "people", comparison_key_for(entry, "id_number"), "hashed", "purpose", "r"
    )
    plan = verification_plan(entry, comparison, ["name"])
    assert [d.key_name for d in plan.domains] == ["id_number", "verify:id_number:name"]
    assert plan.key_version == 2
    with pytest.raises(InvalidRequestError, match="no field 'phone'"):
        verification_plan(entry, comparison, ["phone"])
    with pytest.raises(InvalidRequestError, match="part of comparison key"):
        verification_plan(entry, comparison, ["id_number"])
