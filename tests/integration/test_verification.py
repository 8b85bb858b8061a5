"""Verification (核验) and count-only answers against a real node over mutual TLS, in both modes.

- ``client.verify`` gives each record not found / consistent / inconsistent with the fields that
  differ, invalid records with their reason; one audit record per request with the counts per
  outcome (and, blinded, its opening record first); metrics by answer and outcome.
- ``compare(..., answer="count")`` gives the number of matches only; audited as a count.
- Each answer is its own permission: a resource that does not offer it, a grant that does not
  allow it, a field that is not verifiable, a header whose answer is not the call's are refused
  and audited.

The node's own clock starts on Monday 2026-03-02 (applications need known working days).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from bidui.v1 import catalog_pb2, comparison_pb2
from client_sdk import (
    ComparisonClient,
    CountResult,
    InvalidRequestError,
    PermissionDeniedError,
    VerificationResult,
)
from provider_node.governance import sharing
from tests.integration.audit_helpers import audit_records
from tests.integration.conftest import NodeUnderTest, start

PURPOSE = "housing benefit: check applicants' declared names and birth dates"
FIELDS = ["name", "birth_date"]
MONDAY = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
_BEGAN = time.monotonic()


def _clock() -> dt.datetime:
    return MONDAY + dt.timedelta(seconds=time.monotonic() - _BEGAN)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    running = start(tmp_path_factory.mktemp("verification"), clock=_clock, refusal_window=0)
    yield running
    running.started.stop(grace=1.0)


@pytest.fixture(scope="module")
def client(node: NodeUnderTest) -> Iterator[ComparisonClient]:
    with node.client() as connected:
        yield connected


def _declared(node: NodeUnderTest) -> list[dict[str, str]]:
    """Records as an applicant declares them: right, one field wrong, both wrong, unknown, bad."""
    r, absent = node.residents, node.absent[0]

    def person(i: int, **changes: str) -> dict[str, str]:
        return {"id_number": r[i][0], "name": r[i][1], "birth_date": r[i][2], **changes}

    return [
        person(0),
        person(1, name=r[1][1] + "甲"),
        person(2, birth_date="1900-01-01"),
        person(3, name=r[3][1] + "乙", birth_date="1900-01-02"),
        {"id_number": absent[0], "name": absent[1], "birth_date": absent[2]},
        person(4, id_number="12345"),
        person(5, birth_date="not a date"),
    ]


def _metric(node: NodeUnderTest, name: str, **labels: str) -> float:
    value = node.started.opened.registry.get_sample_value(name, labels)
    return value or 0.0


def _records_of(node: NodeUnderTest, request_id: str) -> list[dict[str, Any]]:
    return [r for r in audit_records(node) if r["request_id"] == request_id]


@pytest.mark.parametrize("mode", ["hashed", "blinded"])
def test_verification_gives_each_record_its_outcome_and_the_fields_that_differ(
    node: NodeUnderTest, client: ComparisonClient, mode: str
) -> None:
    before = _metric(
        node, "bidui_verified_records_total", resource="population", mode=mode,
        outcome="inconsistent",
    )  # fmt: skip
    result = client.verify(
        "population",
        _declared(node),
        key="id_number",
        fields=FIELDS,
        mode=mode,  # type: ignore[arg-type]
        purpose=PURPOSE,
        request_id=f"verify-{mode}",
    )
    assert isinstance(result, VerificationResult)
    assert [r.status for r in result] == [
        "consistent", "inconsistent", "inconsistent", "inconsistent", "not_found", "error",
        "error",
    ]  # fmt: skip
    assert [r.mismatched_fields for r in result[:4]] == [
        (), ("name",), ("birth_date",), ("name", "birth_date"),
    ]  # fmt: skip
    assert [r.label for r in result[:5]] == ["一致", "不一致", "不一致", "不一致", "库无"]
    assert [(e.field, e.index) for e in result.errors] == [("id_number", 5), ("birth_date", 6)]
    assert "not a date" not in result[6].message and result[6].message.startswith("birth_date:")
    counts = (result.not_found_count, result.consistent_count, result.inconsistent_count)
    assert counts == (1, 1, 3) and result.error_count == 2

    records = _records_of(node, f"verify-{mode}")
    answered = [r for r in records if r["outcome"] == "answered"]
    assert len(answered) == 1 and answered[0]["comparison_id"] == result.comparison_ids[0]
    (record,) = answered
    assert (record["item_count"], record["match_count"]) == (5, 4)
    assert record["reason"] == (
        "answer=verify fields=name,birth_date not_found=1 consistent=1 inconsistent=3 "
        "mismatched=name:2,birth_date:2"
    )
    if mode == "blinded":  # opened (before any evaluation left), then answered
        assert [r["outcome"] for r in records] == ["opened", "answered"]
        assert records[0]["reason"] == "answer=verify fields=name,birth_date"
    after = _metric(
        node, "bidui_verified_records_total", resource="population", mode=mode,
        outcome="inconsistent",
    )  # fmt: skip
    assert after - before == 3
    labels = {"resource": "population", "field": "birth_date"}
    assert _metric(node, "bidui_verification_mismatches_total", **labels) >= 2
    assert _metric(node, "bidui_answers_total", resource="population", mode=mode, answer="verify")


@pytest.mark.parametrize("mode", ["hashed", "blinded"])
def test_verification_chunks_stay_aligned(node: NodeUnderTest, mode: str) -> None:
    """Seven items a request: two records of three items each per chunk."""
    declared = _declared(node) * 2
    with ComparisonClient(node.target, node.credentials(), max_batch=7) as small:
        chunked = small.verify(
            "population", declared, key="id_number", fields=FIELDS,
            mode=mode, purpose=PURPOSE,  # type: ignore[arg-type]
        )  # fmt: skip
    assert [r.status for r in chunked][:7] == [r.status for r in chunked][7:]
    assert [r.mismatched_fields for r in chunked][1:4] == [
        ("name",), ("birth_date",), ("name", "birth_date"),
    ]  # fmt: skip
    assert len(chunked.comparison_ids) == 6  # chunks of 2 records; the invalid pair sends nothing


@pytest.mark.parametrize("mode", ["hashed", "blinded"])
def test_a_count_answers_only_how_many_matched(
    node: NodeUnderTest, client: ComparisonClient, mode: str
) -> None:
    ids = [{"id_number": r[0]} for r in node.residents[:3]] + [
        {"id_number": r[0]} for r in node.absent[:2]
    ]
    result = client.compare(
        "population",
        [*ids, {"id_number": "bad"}],
        key="id_number",
        mode=mode,  # type: ignore[arg-type]
        purpose="statistics: how many applicants are registered here",
        request_id=f"count-{mode}",
        answer="count",
    )
    assert isinstance(result, CountResult)
    assert (result.records, result.compared, result.matched_count) == (6, 5, 3)
    assert result.not_matched_count == 2 and [e.index for e in result.errors] == [5]
    (record,) = [r for r in _records_of(node, f"count-{mode}") if r["outcome"] == "answered"]
    assert (record["item_count"], record["match_count"], record["reason"]) == (5, 3, "answer=count")
    assert _metric(node, "bidui_answers_total", resource="population", mode=mode, answer="count")


@pytest.mark.parametrize("mode", ["hashed", "blinded"])
def test_verification_and_counts_are_refused_where_the_resource_gives_match_bits_only(
    node: NodeUnderTest, client: ComparisonClient, mode: str
) -> None:
    person = _declared(node)[:1]
    with pytest.raises(PermissionDeniedError, match="does not answer verify"):
        client.verify(
            "residents", person, key="id_number", fields=["name"], mode=mode,  # type: ignore[arg-type]
            purpose=PURPOSE, request_id=f"no-verify-{mode}",
        )  # fmt: skip
    with pytest.raises(PermissionDeniedError, match="does not answer count"):
        client.compare(
            "residents", person, key="id_number", mode=mode,  # type: ignore[arg-type]
            purpose=PURPOSE, request_id=f"no-count-{mode}", answer="count",
        )  # fmt: skip
    (verify,) = _records_of(node, f"no-verify-{mode}")
    assert (verify["outcome"], verify["status_code"]) == ("refused", "PERMISSION_DENIED")
    assert verify["reason"].startswith("answer=verify fields=name; resource 'residents' does")
    (count,) = _records_of(node, f"no-count-{mode}")
    assert count["reason"].startswith("answer=count; ")


def _header(node: NodeUnderTest, **fields: Any) -> comparison_pb2.ComparisonHeader:
    return comparison_pb2.ComparisonHeader(
        resource_id="population", comparison_key="id_number", purpose=PURPOSE,
        key_version=1, **fields,
    )  # fmt: skip


def test_a_field_that_is_not_verifiable_is_refused(node: NodeUnderTest) -> None:
    channel = node.channel()
    _, comparison = node.stubs(channel)
    for fields in (["id_number"], ["phone"]):
        header = _header(node, answer=catalog_pb2.ANSWER_VERIFY, verify_fields=fields)
        with pytest.raises(grpc.RpcError) as refused:
            comparison.VerifyHashed(
                comparison_pb2.CompareHashedRequest(header=header, tags=[b"\1" * 32] * 2)
            )
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "cannot be verified against key 'id_number'" in (refused.value.details() or "")
    channel.close()
    with node.client() as client, pytest.raises(InvalidRequestError, match="part of comparison"):
        client.verify(
            "population", _declared(node), key="id_number", fields=["id_number"], purpose=PURPOSE
        )


def test_the_header_s_answer_must_be_the_call_s(node: NodeUnderTest) -> None:
    channel = node.channel()
    _, comparison = node.stubs(channel)
    header = _header(node, answer=catalog_pb2.ANSWER_VERIFY, verify_fields=["name"])
    with pytest.raises(grpc.RpcError) as refused:
        comparison.CompareHashed(
            comparison_pb2.CompareHashedRequest(header=header, tags=[b"t" * 32])
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as refused:
        comparison.VerifyHashed(
            comparison_pb2.CompareHashedRequest(header=header, tags=[b"t" * 32] * 3)
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # not whole records of 2
    assert "whole records" in (refused.value.details() or "")
    # A blinded session opened for a count is closed by CountBlinded only.
    from comparator.oprf import VoprfClient

    catalog, _ = node.stubs(channel)
    entry = catalog.DescribeResource(catalog_pb2.DescribeResourceRequest(resource_id="population"))
    blind = VoprfClient(entry.oprf_public_key).blind([b"any input"])
    opened = comparison.BlindEvaluate(
        comparison_pb2.BlindEvaluateRequest(
            header=_header(node, answer=catalog_pb2.ANSWER_COUNT),
            blinded_elements=list(blind.message),
        )
    )
    step2 = comparison_pb2.MatchBlindedRequest(
        comparison_id=opened.comparison_id, outputs=[b"o" * 64]
    )
    with pytest.raises(grpc.RpcError) as refused:
        comparison.MatchBlinded(step2)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "count answers" in (refused.value.details() or "")
    with pytest.raises(grpc.RpcError) as closed:
        comparison.CountBlinded(step2)
    assert closed.value.code() is grpc.StatusCode.FAILED_PRECONDITION  # the session is closed
    channel.close()


def test_under_a_grant_each_answer_is_its_own_permission(
    node: NodeUnderTest, client: ComparisonClient
) -> None:
    audit = node.started.opened.audit
    common: dict[str, Any] = {
        "keys": ["id_number"], "modes": ["hashed", "blinded"], "duty": PURPOSE,
        "items_per_day": 1000, "valid_until": dt.date(2026, 12, 31),
    }  # fmt: skip
    matching = client.apply("civil_register", **common)
    assert matching.answers == ("match",)
    sharing.approve(audit, matching.id, operator="luzhou-psb", now=_clock())
    people = [{"id_number": r[0], "name": r[1]} for r in node.residents[:2]]
    people[1]["name"] += "丙"
    with pytest.raises(PermissionDeniedError, match="not verify"):
        client.verify("civil_register", people, key="id_number", fields=["name"], purpose=PURPOSE)

    wider = client.apply("civil_register", answers=["verify", "count"], **common)
    assert wider.answers == ("count", "verify")
    narrowed = sharing.Decision(answers=("verify",))
    sharing.approve(audit, wider.id, operator="luzhou-psb", now=_clock(), decision=narrowed)
    grant = client.application(wider.id).grant
    assert grant is not None and grant.answers == ("verify",)
    for mode in ("hashed", "blinded"):
        result = client.verify(
            "civil_register", people, key="id_number", fields=["name"],
            mode=mode, purpose=PURPOSE, request_id=f"granted-{mode}",  # type: ignore[arg-type]
        )  # fmt: skip
        assert [r.status for r in result] == ["consistent", "inconsistent"]
        (record,) = [r for r in _records_of(node, f"granted-{mode}") if r["outcome"] == "answered"]
        assert record["grant_id"] == grant.id
    with pytest.raises(PermissionDeniedError, match="not count"):
        client.compare("civil_register", people, key="id_number", purpose=PURPOSE, answer="count")
    with pytest.raises(InvalidRequestError, match="answers match only"):
        client.apply("household_register", answers=["verify"], **common)
