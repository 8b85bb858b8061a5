"""A catalog entry -> the comparator's comparison key, and why a request is refused before it
is sent."""

from __future__ import annotations

import pytest

from bidui.v1 import catalog_pb2 as _catalog_pb2
from client_sdk.comparison.catalog import comparison_key_for
from client_sdk.errors import InvalidRequestError, ServiceError
from comparator.canonical import CANONICAL_VERSION


def _residents(**overrides: object) -> _catalog_pb2.Resource:
    resource = _catalog_pb2.Resource(
        id="residents",
        fields=[
            _catalog_pb2.Field(name="id_number", type="cn_resident_id"),
            _catalog_pb2.Field(name="name", type="person_name"),
            _catalog_pb2.Field(name="birth_date", type="date"),
        ],
        comparison_keys=[
            _catalog_pb2.ComparisonKey(name="id_number", fields=["id_number"]),
            _catalog_pb2.ComparisonKey(name="id_number+name", fields=["id_number", "name"]),
        ],
        modes=[_catalog_pb2.MODE_HASHED, _catalog_pb2.MODE_BLINDED],
        key_version=3,
        canonical_version=CANONICAL_VERSION,
    )
    for name, value in overrides.items():
        if isinstance(value, list):
            field = getattr(resource, name)
            del field[:]
            field.extend(value)
        else:
            setattr(resource, name, value)
    return resource


def test_comparison_key_from_the_catalog_entry() -> None:
    key = comparison_key_for(_residents(), "id_number+name", "blinded")
    assert key.name == "id_number+name"
    assert [(f.name, str(f.type)) for f in key.fields] == [
        ("id_number", "cn_resident_id"),
        ("name", "person_name"),
    ]


def test_unknown_key_lists_the_offered_ones() -> None:
    with pytest.raises(InvalidRequestError, match="no comparison key 'name'") as caught:
        comparison_key_for(_residents(), "name")
    assert "'id_number', 'id_number+name'" in str(caught.value)


def test_mode_not_offered() -> None:
    resource = _residents(modes=[_catalog_pb2.MODE_BLINDED])
    with pytest.raises(InvalidRequestError, match="does not offer hashed mode; it offers: blinded"):
        comparison_key_for(resource, "id_number", "hashed")
    assert comparison_key_for(resource, "id_number", "blinded").name == "id_number"


def test_unknown_mode() -> None:
    with pytest.raises(InvalidRequestError, match="mode must be"):
        comparison_key_for(_residents(), "id_number", "plain")  # type: ignore[arg-type]


def test_inconsistent_catalog_entry_is_the_node_s_fault() -> None:
    resource = _residents(
        comparison_keys=[_catalog_pb2.ComparisonKey(name="k", fields=["missing_field"])]
    )
    with pytest.raises(ServiceError, match="cannot use"):
        comparison_key_for(resource, "k")
    resource = _residents(fields=[_catalog_pb2.Field(name="id_number", type="blood_type")])
    with pytest.raises(ServiceError, match="cannot use"):
        comparison_key_for(resource, "id_number")


@pytest.mark.parametrize(
    ("node_version", "remedy"),
    [
        (0, "the provider must upgrade its node and rebuild its indexes"),  # older than the field
        (1, "the provider must upgrade its node and rebuild its indexes"),
        (CANONICAL_VERSION + 1, "upgrade bidui on this side"),
    ],
)
def test_a_node_of_another_canonical_version_is_refused_before_anything_is_encoded(
    node_version: int, remedy: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        comparison_key_for(_residents(canonical_version=node_version), "id_number", "hashed")
    message = str(caught.value)
    assert f"version {node_version or 1}, this SDK under version {CANONICAL_VERSION}" in message
    assert "no record could match" in message and remedy in message
