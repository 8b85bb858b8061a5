"""Bad input of every kind gets a precise gRPC status, no result, and an audit record."""

from __future__ import annotations

import grpc
import pytest

from bidui.v1 import catalog_pb2, comparison_pb2
from comparator.canonical import Domain, encode_record
from comparator.oprf import VoprfClient
from tests.integration.audit_helpers import audit_records
from tests.integration.conftest import MAX_BATCH, NodeUnderTest

IDENTITY = bytes(32)
# The field prime p = 2^255 - 19, little-endian: not a canonical ristretto255 encoding.
FIELD_PRIME = bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
ODD = (1).to_bytes(32, "little")  # s must be even ("non-negative") in ristretto255


def header(node: NodeUnderTest, **changes: object) -> comparison_pb2.ComparisonHeader:
    fields: dict[str, object] = {
        "resource_id": "residents",
        "comparison_key": "id_number",
        "purpose": "integration test",
        "key_version": 1,
    }
    fields.update(changes)
    return comparison_pb2.ComparisonHeader(**fields)  # type: ignore[arg-type]


def valid_blinded(node: NodeUnderTest, count: int = 2) -> list[bytes]:
    key = node.started.opened.node.describe("residents").resource.comparison_key("id_number")
    domain = Domain("residents", "id_number", 1)
    inputs = [encode_record(domain, key, {"id_number": r[0]}) for r in node.residents[:count]]
    public_key = node.started.opened.node.describe("residents").oprf_public_key
    return VoprfClient(public_key).blind(inputs).message


def expect(call: object, code: grpc.StatusCode, *words: str) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    error = caught.value
    assert error.code() == code, error.details()  # type: ignore[attr-defined]
    details = error.details()  # type: ignore[attr-defined]
    for word in words:
        assert word in details
    return str(details)


@pytest.fixture
def stubs(node: NodeUnderTest):  # type: ignore[no-untyped-def]
    channel = node.channel()
    yield node.stubs(channel)
    channel.close()


def test_unknown_resource_is_not_found(node: NodeUnderTest, stubs) -> None:  # type: ignore[no-untyped-def]
    catalog, compare = stubs
    expect(
        lambda: catalog.DescribeResource(catalog_pb2.DescribeResourceRequest(resource_id="nope")),
        grpc.StatusCode.NOT_FOUND,
        "nope",
    )
    before = len(audit_records(node))
    expect(
        lambda: compare.CompareHashed(
            comparison_pb2.CompareHashedRequest(
                header=header(node, resource_id="nope"), tags=[bytes(32)]
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "no resource 'nope'",
    )
    (record,) = audit_records(node)[before:]
    assert (record["outcome"], record["status_code"]) == ("refused", "NOT_FOUND")


def test_unknown_comparison_key_is_not_found(stubs) -> None:  # type: ignore[no-untyped-def]
    _, compare = stubs
    expect(
        lambda: compare.CompareHashed(
            comparison_pb2.CompareHashedRequest(
                header=header(None, comparison_key="name"),  # type: ignore[arg-type]
                tags=[bytes(32)],
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "no comparison key 'name'",
    )


def test_not_shared_resource_is_permission_denied_in_every_mode(
    node: NodeUnderTest,
    stubs,  # type: ignore[no-untyped-def]
) -> None:
    catalog, compare = stubs
    sealed = header(node, resource_id="sealed_records")
    before = len(audit_records(node))
    expect(
        lambda: compare.CompareHashed(
            comparison_pb2.CompareHashedRequest(header=sealed, tags=[bytes(32)])
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "not shared",
    )
    expect(
        lambda: compare.BlindEvaluate(
            comparison_pb2.BlindEvaluateRequest(header=sealed, blinded_elements=valid_blinded(node))
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "article 24",
    )
    expect(
        lambda: catalog.GetHashKey(
            catalog_pb2.GetHashKeyRequest(resource_id="sealed_records", comparison_key="id_number")
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    records = audit_records(node)[before:]
    assert [r["status_code"] for r in records] == ["PERMISSION_DENIED"] * 3
    assert all(r["outcome"] == "refused" for r in records)


@pytest.mark.parametrize(
    ("element", "words"),
    [
        (IDENTITY, ("blinded element 1", "identity")),
        (FIELD_PRIME, ("blinded element 1",)),
        (ODD, ("blinded element 1",)),
        (bytes(31), ("blinded element 1 is 31 bytes; expected 32",)),
        (bytes(33), ("blinded element 1 is 33 bytes; expected 32",)),
    ],
    ids=["identity", "non-canonical-p", "non-canonical-odd", "short", "long"],
)
def test_invalid_blinded_elements_are_invalid_argument(
    node: NodeUnderTest,
    stubs,  # type: ignore[no-untyped-def]
    element: bytes,
    words: tuple[str, ...],
) -> None:
    _, compare = stubs
    good = valid_blinded(node, 1)
    before = len(audit_records(node))
    expect(
        lambda: compare.BlindEvaluate(
            comparison_pb2.BlindEvaluateRequest(
                header=header(node), blinded_elements=[good[0], element]
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        *words,
    )
    *opened, record = audit_records(node)[before:]
    assert (record["outcome"], record["status_code"]) == ("refused", "INVALID_ARGUMENT")
    assert record["item_count"] == 2
    if len(element) == 32:
        # A well-sized but invalid element is found by the (costly) evaluation, which comes after
        # the charge and the opening record: the refusal closes the comparison under its id.
        assert [o["outcome"] for o in opened] == ["opened"]
        assert record["comparison_id"] == opened[0]["related_id"]
    else:
        assert opened == []  # refused by its length, before anything was recorded


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_wrong_tag_lengths_are_invalid_argument(stubs, length: int) -> None:  # type: ignore[no-untyped-def]
    _, compare = stubs
    expect(
        lambda: compare.CompareHashed(
            comparison_pb2.CompareHashedRequest(
                header=header(None),  # type: ignore[arg-type]
                tags=[bytes(32), bytes(length)],
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        f"tag 1 is {length} bytes; expected 32",
    )


def test_empty_and_oversized_batches_are_invalid_argument(
    node: NodeUnderTest,
    stubs,  # type: ignore[no-untyped-def]
) -> None:
    _, compare = stubs
    expect(
        lambda: compare.CompareHashed(comparison_pb2.CompareHashedRequest(header=header(node))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "empty batch",
    )
    expect(
        lambda: compare.BlindEvaluate(comparison_pb2.BlindEvaluateRequest(header=header(node))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "empty batch",
    )
    expect(
        lambda: compare.CompareHashed(
            comparison_pb2.CompareHashedRequest(
                header=header(node), tags=[bytes(32)] * (MAX_BATCH + 1)
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        f"at most {MAX_BATCH}",
        "split the batch",
    )


def test_header_problems(node: NodeUnderTest, stubs) -> None:  # type: ignore[no-untyped-def]
    _, compare = stubs

    def hashed(**changes: object) -> object:
        return lambda: compare.CompareHashed(
            comparison_pb2.CompareHashedRequest(header=header(node, **changes), tags=[bytes(32)])
        )

    expect(hashed(purpose="  "), grpc.StatusCode.INVALID_ARGUMENT, "purpose is required")
    expect(hashed(purpose="x" * 501), grpc.StatusCode.INVALID_ARGUMENT, "purpose")
    expect(hashed(request_id="has space"), grpc.StatusCode.INVALID_ARGUMENT, "request_id")
    someone = node.residents[0][0]  # a resident ID number typed into free text is refused
    expect(
        hashed(purpose=f"review of {someone}"), grpc.StatusCode.INVALID_ARGUMENT, "purpose holds"
    )
    expect(hashed(request_id=f"case-{someone}"), grpc.StatusCode.INVALID_ARGUMENT, "request_id hol")
    expect(hashed(key_version=2), grpc.StatusCode.FAILED_PRECONDITION, "key version 2")


def test_blinded_second_step_checks(node: NodeUnderTest, stubs) -> None:  # type: ignore[no-untyped-def]
    _, compare = stubs
    expect(
        lambda: compare.MatchBlinded(
            comparison_pb2.MatchBlindedRequest(comparison_id="not-a-session", outputs=[bytes(64)])
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "no open blinded comparison",
    )
    opened = compare.BlindEvaluate(
        comparison_pb2.BlindEvaluateRequest(
            header=header(node), blinded_elements=valid_blinded(node)
        )
    )
    # modeOPRF by default: no proof; modeVOPRF when the header asks.
    assert len(opened.evaluated_elements) == 2 and opened.proof == b""
    verifiable = comparison_pb2.ComparisonHeader()
    verifiable.CopyFrom(header(node))
    verifiable.verifiable = True
    proven = compare.BlindEvaluate(
        comparison_pb2.BlindEvaluateRequest(header=verifiable, blinded_elements=valid_blinded(node))
    )
    assert len(proven.evaluated_elements) == 2 and len(proven.proof) == 64
    closed = compare.MatchBlinded(
        comparison_pb2.MatchBlindedRequest(
            comparison_id=proven.comparison_id, outputs=[bytes(64)] * 2
        )
    )
    assert (closed.item_count, closed.match_count) == (2, 0)
    before = len(audit_records(node))
    expect(
        lambda: compare.MatchBlinded(
            comparison_pb2.MatchBlindedRequest(
                comparison_id=opened.comparison_id, outputs=[bytes(64)]
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "1 outputs for 2 evaluated elements",
    )
    (record,) = audit_records(node)[before:]
    assert record["comparison_id"] == opened.comparison_id
    assert record["outcome"] == "refused"
    # The session is closed: no second try with the same evaluations.
    expect(
        lambda: compare.MatchBlinded(
            comparison_pb2.MatchBlindedRequest(
                comparison_id=opened.comparison_id, outputs=[bytes(64)] * 2
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
