"""Both comparison modes end to end: SDK -> gRPC over mutual TLS -> node -> audit -> answer;
blinded mode in RFC 9497 modeOPRF (the default) and modeVOPRF (``verifiable=True``)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bidui.v1 import catalog_pb2
from client_sdk import ComparisonClient, InvalidRequestError
from comparator.canonical import encode_record
from comparator.keyed_hash import KeyedHasher
from provider_node.resources.keys import NodeKeys
from tests.integration.audit_helpers import audit_records
from tests.integration.conftest import NodeUnderTest

PURPOSE = "integration test: residence check"


def _records(node: NodeUnderTest) -> tuple[list[dict[str, str]], list[str]]:
    rows: list[dict[str, str]] = []
    expected: list[str] = []
    for id_number, name, _ in node.residents[:40]:
        rows.append({"id_number": id_number, "name": name})
        expected.append("matched")
    for id_number, name, _ in node.absent[:30]:
        rows.append({"id_number": id_number, "name": name})
        expected.append("not_matched")
    # Right ID, wrong name: matches on id_number alone, not on id_number+name.
    rows.append({"id_number": node.residents[50][0], "name": "不是此人"})
    expected.append("name-mismatch")
    rows.append({"id_number": "110105194912310021", "name": "张三"})  # bad check digit
    expected.append("error")
    return rows, expected


@pytest.mark.parametrize("mode", ["hashed", "blinded", "blinded-voprf"])
@pytest.mark.parametrize("key", ["id_number", "id_number+name"])
def test_compare_gives_match_bits_aligned_with_input(
    node: NodeUnderTest, mode: str, key: str
) -> None:
    rows, expected = _records(node)
    before = len(audit_records(node))
    verifiable = mode == "blinded-voprf"
    mode = mode.removesuffix("-voprf")
    with node.client() as client:
        result = client.compare(
            "residents",
            rows,
            key=key,
            mode=mode,  # type: ignore[arg-type]
            purpose=PURPOSE,
            verifiable=verifiable,
        )
    want = [
        ("matched" if key == "id_number" else "not_matched") if e == "name-mismatch" else e
        for e in expected
    ]
    assert [r.status for r in result] == want
    assert result.error_count == 1
    assert result[len(rows) - 1].field == "id_number"
    # One request, one comparison, one audit record, committed before the answer came back.
    records = audit_records(node)[before:]
    if mode == "hashed":  # handing out the HMAC key is a governance action, audited too
        key_fetch = records.pop(0)
        assert (key_fetch["action"], key_fetch["outcome"]) == ("hash_key_fetch", "answered")
    else:  # the opening, committed before the evaluations left the node
        opening = records.pop(0)
        assert (opening["outcome"], opening["related_id"]) == ("opened", result.comparison_ids[0])
    assert [r["comparison_id"] for r in records] == list(result.comparison_ids)
    (record,) = records
    assert record["outcome"] == "answered"
    assert record["mode"] == mode
    assert record["requester"] == "luzhou-civil-affairs"
    assert record["item_count"] == len(rows) - 1
    assert record["match_count"] == result.matched_count
    assert record["purpose"] == PURPOSE
    assert len(record["payload_sha256"]) == 64
    assert len(record["cert_fingerprint"]) == 64


def test_large_input_is_split_into_several_audited_requests(node: NodeUnderTest) -> None:
    rows = [{"id_number": r[0]} for r in node.residents] * 2  # 600 rows > max_batch 250
    before = len(audit_records(node))
    seen: list[tuple[int, int]] = []
    with ComparisonClient(node.target, node.credentials(), max_batch=250) as client:
        result = client.compare(
            "residents",
            rows,
            key="id_number",
            mode="blinded",
            purpose=PURPOSE,
            progress=lambda done, total: seen.append((done, total)),
        )
    assert result.matched_count == 600
    assert len(result.comparison_ids) == 3
    records = audit_records(node)[before:]
    closing = [r for r in records if r["outcome"] == "answered"]
    assert [r["comparison_id"] for r in closing] == list(result.comparison_ids)
    openings = [r["related_id"] for r in records if r["outcome"] == "opened"]
    assert openings == list(result.comparison_ids)  # each opened before its evaluations left
    assert {r["request_id"] for r in records} == {result.request_id}
    assert seen[-1] == (600, 600)


def test_tuples_are_positional_in_key_order(node: NodeUnderTest) -> None:
    id_number, name, _ = node.residents[3]
    with node.client() as client:
        result = client.compare(
            "residents", [(id_number, name)], key="id_number+name", mode="hashed", purpose=PURPOSE
        )
    assert result[0].status == "matched"


def test_catalog_lists_metadata_and_public_key_never_counts_by_default(
    node: NodeUnderTest,
) -> None:
    with node.client() as client:
        resources = {r.id: r for r in client.list_resources()}
    residents = resources["residents"]
    assert len(residents.oprf_public_key) == 32  # modeVOPRF's: residents offers it
    assert list(residents.oprf_modes) == [catalog_pb2.OPRF_MODE_OPRF, catalog_pb2.OPRF_MODE_VOPRF]
    # modeOPRF only (the default): no public key to publish.
    household = resources["household_register"]
    assert list(household.oprf_modes) == [catalog_pb2.OPRF_MODE_OPRF]
    assert household.oprf_public_key == b""
    assert residents.oprf_suite == "ristretto255-SHA512"
    assert {k.name for k in residents.comparison_keys} == {"id_number", "id_number+name"}
    assert residents.last_refresh.seconds > 0
    assert not residents.HasField("record_count")
    assert resources["sealed_records"].sharing_type == 3  # SHARING_TYPE_NOT_SHARED


def test_a_mode_the_resource_does_not_offer_is_refused(node: NodeUnderTest) -> None:
    """The SDK refuses before sending; the node refuses FAILED_PRECONDITION mode_not_offered."""
    import grpc

    from bidui.v1 import comparison_pb2, comparison_pb2_grpc
    from comparator.oprf import OprfClient

    rows = [{"id_number": node.residents[0][0]}]
    with node.client() as client, pytest.raises(InvalidRequestError, match="it offers: oprf"):
        client.compare(
            "household_register", rows, key="id_number", purpose=PURPOSE, verifiable=True
        )
    pki = node.directory / "pki"
    credentials = grpc.ssl_channel_credentials(
        (pki / "ca.pem").read_bytes(),
        (pki / "clients" / "luzhou-civil-affairs.key").read_bytes(),
        (pki / "clients" / "luzhou-civil-affairs.pem").read_bytes(),
    )
    header = comparison_pb2.ComparisonHeader(
        resource_id="household_register", comparison_key="id_number", purpose=PURPOSE,
        key_version=1, verifiable=True,
    )  # fmt: skip
    with grpc.secure_channel(node.target, credentials) as channel:
        stub = comparison_pb2_grpc.ComparisonServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.BlindEvaluate(
                comparison_pb2.BlindEvaluateRequest(
                    header=header, blinded_elements=OprfClient().blind([b"x"]).message
                ),
                timeout=20,
            )
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "mode voprf (offered: oprf)" in (refused.value.details() or "")
    assert audit_records(node)[-1]["outcome"] == "refused"


@pytest.mark.parametrize("mode", ["hashed", "blinded"])
def test_chunks_stay_aligned_when_a_whole_chunk_is_invalid(node: NodeUnderTest, mode: str) -> None:
    present = [{"id_number": r[0]} for r in node.residents[:5]]
    invalid = [{"id_number": "12345"}] * 5
    absent = [{"id_number": r[0]} for r in node.absent[:5]]
    with ComparisonClient(node.target, node.credentials(), max_batch=5) as client:
        result = client.compare(
            "residents",
            present + invalid + absent + present,
            key="id_number",
            mode=mode,  # type: ignore[arg-type]
            purpose=PURPOSE,
        )
    statuses = [r.status for r in result]
    assert statuses == ["matched"] * 5 + ["error"] * 5 + ["not_matched"] * 5 + ["matched"] * 5
    assert len(result.comparison_ids) == 3
    assert result.errors[0].index == 5


def test_an_export_cannot_be_searched_with_the_hashed_mode_key(node: NodeUnderTest) -> None:
    # Issue 17: any department may fetch a resource's HMAC key, so a plain SHA-256 of a
    # one-record request's tags let whoever holds an export test candidates for what was asked.
    someone = node.residents[3][0]
    with node.client() as client:
        client.compare(
            "residents", [{"id_number": someone}], key="id_number", mode="hashed",
            purpose="payload digest test",
        )  # fmt: skip
    served = node.started.opened.node.describe("residents")
    domain = served.resource.domain("id_number")
    encoded = encode_record(domain, served.resource.comparison_key("id_number"), [someone])
    tag = KeyedHasher(served.hmac_key, domain).tag(encoded)  # what the department sent
    (record,) = [r for r in audit_records(node) if r["purpose"] == "payload digest test"]
    length = len(tag).to_bytes(4, "big")
    assert record["payload_sha256"] != hashlib.sha256(length + tag).hexdigest()
    keys = NodeKeys.load(node.started.opened.config.keys.dir)
    keyed = hmac.new(keys.payload_digest_key(), length + tag, hashlib.sha256)
    assert record["payload_sha256"] == keyed.hexdigest()
