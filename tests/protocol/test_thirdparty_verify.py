"""Section 14 from the document alone: a client that verifies and counts in hashed mode with
nothing of bidui but the wire stubs gets the SDK's answers from a real node over mutual TLS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import NodeUnderTest, start
from tests.protocol import thirdparty_client as tp
from tests.protocol.thirdparty_verify import count_hashed, verify_hashed

PURPOSE = "protocol conformance: verification from the document"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    running = start(tmp_path_factory.mktemp("thirdparty-verify"))
    yield running
    running.started.stop(grace=1.0)


def _records(node: NodeUnderTest) -> list[dict[str, str | None]]:
    r = node.residents
    rows: list[dict[str, str | None]] = [
        {"id_number": i, "name": n, "birth_date": b} for i, n, b in r[:4]
    ]
    rows[1]["name"] = f"{r[1][1]}丁"
    rows[2]["birth_date"] = "1900-01-01"
    rows[3] = {"id_number": r[3][0].lower(), "name": f"\u3000{r[3][1]}", "birth_date": r[3][2]}
    rows.append(dict(zip(("id_number", "name", "birth_date"), node.absent[0], strict=True)))
    rows.append({"id_number": "12345", "name": "某", "birth_date": "2000-01-01"})
    return rows


def test_verification_and_counts_agree_with_the_sdk(node: NodeUnderTest) -> None:
    records = _records(node)
    client = tp.ThirdPartyClient(
        node.target,
        ca_pem=node.ca_cert.read_bytes(),
        cert_pem=node.client_cert.read_bytes(),
        key_pem=node.client_key.read_bytes(),
    )
    try:
        verified = verify_hashed(
            client, "population", "id_number", ["name", "birth_date"], records, purpose=PURPOSE
        )
        counted = count_hashed(client, "population", "id_number", records, purpose=PURPOSE)
    finally:
        client.close()
    with node.client() as sdk:
        expected = sdk.verify(
            "population", records, key="id_number", fields=["name", "birth_date"],
            mode="hashed", purpose=PURPOSE,
        )  # fmt: skip
    assert verified == [
        None if r.status == "error" else (r.status, r.mismatched_fields) for r in expected
    ]
    assert verified[:5] == [
        ("consistent", ()), ("inconsistent", ("name",)), ("inconsistent", ("birth_date",)),
        ("consistent", ()), ("not_found", ()),
    ]  # fmt: skip
    assert counted == 4
