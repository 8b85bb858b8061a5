"""Bad input of every kind gets a precise gRPC status, no result, and an audit record."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from bidui.v1 import catalog_pb2, comparison_pb2
from comparator.canonical import Domain, encode_record
from comparator.oprf import VoprfClient
from provider_node.pki import IssuedCertificate, create_ca, issue_client_cert
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
    (record,) = audit_records(node)[before:]
    assert (record["outcome"], record["status_code"]) == ("refused", "INVALID_ARGUMENT")
    assert record["item_count"] == 2


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
    assert len(opened.evaluated_elements) == 2 and len(opened.proof) == 64
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


def test_certificate_from_our_ca_without_department_is_unauthenticated(
    node: NodeUnderTest,
) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from provider_node.pki import load_ca

    ca = load_ca(node.directory / "pki")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not A Department!")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("somewhere.example")]), False)
        .sign(ca.private_key, hashes.SHA256())
    )
    cert_path = node.directory / "anonymous.pem"
    key_path = node.directory / "anonymous.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    channel = node.channel(cert=cert_path, key=key_path)
    _, compare = node.stubs(channel)
    before = len(audit_records(node))
    expect(
        lambda: compare.CompareHashed(
            comparison_pb2.CompareHashedRequest(header=header(node), tags=[bytes(32)])
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        "names no usable department",
    )
    channel.close()
    (record,) = audit_records(node)[before:]
    assert (record["outcome"], record["status_code"]) == ("refused", "UNAUTHENTICATED")
    assert record["requester"] == ""
    assert record["resource_id"] == "residents"
    assert len(record["cert_fingerprint"]) == 64


def test_no_client_certificate_is_unauthenticated_and_audited(node: NodeUnderTest) -> None:
    channel = node.channel(cert=Path())
    catalog, compare = node.stubs(channel)
    before = len(audit_records(node))
    expect(
        lambda: compare.CompareHashed(
            comparison_pb2.CompareHashedRequest(header=header(node), tags=[bytes(32)])
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        "no client certificate",
    )
    expect(
        lambda: catalog.ListResources(catalog_pb2.ListResourcesRequest()),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    channel.close()
    records = audit_records(node)[before:]
    assert [(r["action"], r["status_code"]) for r in records] == [
        ("comparison", "UNAUTHENTICATED"),
        ("catalog_read", "UNAUTHENTICATED"),
    ]
    assert records[0]["cert_fingerprint"] == ""


def _rogue_certificate(directory: Path) -> IssuedCertificate:
    """The requester's department name, issued by a CA the node does not trust."""
    rogue_ca = create_ca(directory / "rogue", "rogue CA")
    return issue_client_cert(rogue_ca, directory / "rogue", "luzhou-civil-affairs")


def test_certificate_from_another_ca_is_unauthenticated(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    rogue = _rogue_certificate(tmp_path)
    channel = node.channel(cert=rogue.cert_path, key=rogue.key_path)
    _, compare = node.stubs(channel)
    before = len(audit_records(node))
    expect(
        lambda: compare.CompareHashed(
            comparison_pb2.CompareHashedRequest(header=header(node), tags=[bytes(32)])
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        "not issued by this node's CA",
    )
    channel.close()
    (record,) = audit_records(node)[before:]
    assert record["requester"] == "" and len(record["cert_fingerprint"]) == 64


def test_sdk_reports_a_rejected_certificate_as_authentication_error(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    from client_sdk import AuthenticationError, ComparisonClient, Credentials

    rogue = _rogue_certificate(tmp_path)
    creds = Credentials.from_files(node.ca_cert, rogue.cert_path, rogue.key_path)
    with ComparisonClient(node.target, creds) as client, pytest.raises(AuthenticationError):
        client.compare(
            "residents", [{"id_number": node.residents[0][0]}], key="id_number", purpose="x"
        )


def test_the_internal_port_is_not_a_way_around_tls(node: NodeUnderTest) -> None:
    port = node.started.grpc.front.upstream[1]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    _, compare = node.stubs(channel)
    expect(
        lambda: compare.CompareHashed(
            comparison_pb2.CompareHashedRequest(header=header(node), tags=[bytes(32)])
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        "did not come through",
    )
    channel.close()
