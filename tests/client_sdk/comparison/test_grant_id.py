"""``compare(..., grant_id=...)``: the grant a comparison of a conditional resource relies on is
named in the header of every request of it, in both modes; left out, the header names none and
the node finds the covering grant (tests/integration/test_sdk_sharing.py shows both at a node).
"""

from __future__ import annotations

import pytest

from client_sdk import ComparisonClient, InvalidRequestError
from tests.client_sdk.conftest import PRESENT, Pki
from tests.client_sdk.fake_node import KEY, RESOURCE, FakeNode

GRANT = "7f3c2a10-5b6d-4e8f-8a9b-0c1d2e3f4a5b"


def _compare(pki: Pki, node: FakeNode, mode: str, **options: object) -> None:
    with ComparisonClient(node.target, pki.credentials(), timeout=10, max_batch=3) as client:
        client.compare(
            RESOURCE,
            [{KEY: i} for i in PRESENT[:7]],  # three requests of at most 3
            key=KEY,
            mode=mode,  # type: ignore[arg-type]
            purpose="grant test",
            **options,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("mode", ["hashed", "blinded"])
def test_every_request_names_the_grant(pki: Pki, fake_node: FakeNode, mode: str) -> None:
    _compare(pki, fake_node, mode, grant_id=GRANT)
    assert [h.grant_id for h in fake_node.headers] == [GRANT] * 3
    assert len({h.request_id for h in fake_node.headers}) == 1


def test_without_a_grant_id_the_header_names_none(pki: Pki, fake_node: FakeNode) -> None:
    _compare(pki, fake_node, "hashed")
    assert [h.grant_id for h in fake_node.headers] == [""] * 3


@pytest.mark.parametrize("grant_id", ["", "  "])
def test_a_blank_grant_id_is_refused_before_sending(
    pki: Pki, fake_node: FakeNode, grant_id: str
) -> None:
    with pytest.raises(InvalidRequestError, match="grant_id"):
        _compare(pki, fake_node, "hashed", grant_id=grant_id)
    assert fake_node.headers == []
