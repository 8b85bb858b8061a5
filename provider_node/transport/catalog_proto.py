"""The catalog in protobuf: a resource's catalog entry as a requester receives it, and the wire's
numbers for sharing types, categories, modes and answers. The catalog itself
(``resources.catalog``) knows nothing of the wire."""

from __future__ import annotations

import datetime as _dt

from bidui.v1 import catalog_pb2 as _catalog_pb2
from comparator import oprf
from comparator.canonical import CANONICAL_VERSION
from provider_node.core.vocabulary import Answer, Category, ComparisonMode, OprfMode, SharingType
from provider_node.resources.catalog import Resource

__all__ = ["ANSWERS_TO_PROTO", "MODES_TO_PROTO", "OPRF_MODES_TO_PROTO", "resource_to_proto"]

_SHARING_TYPES = {
    SharingType.UNCONDITIONAL: _catalog_pb2.SHARING_TYPE_UNCONDITIONAL,
    SharingType.CONDITIONAL: _catalog_pb2.SHARING_TYPE_CONDITIONAL,
    SharingType.NOT_SHARED: _catalog_pb2.SHARING_TYPE_NOT_SHARED,
}
_CATEGORIES = {
    Category.BASIC: _catalog_pb2.CATEGORY_BASIC,
    Category.THEMATIC: _catalog_pb2.CATEGORY_THEMATIC,
    Category.DEPARTMENTAL: _catalog_pb2.CATEGORY_DEPARTMENTAL,
}
#: Comparison modes as the wire spells them (``bidui.v1.Mode``).
MODES_TO_PROTO = {
    ComparisonMode.HASHED: _catalog_pb2.MODE_HASHED,
    ComparisonMode.BLINDED: _catalog_pb2.MODE_BLINDED,
}
#: Blinded mode's RFC 9497 protocol modes as the wire spells them (``bidui.v1.OprfMode``).
OPRF_MODES_TO_PROTO = {
    OprfMode.OPRF: _catalog_pb2.OPRF_MODE_OPRF,
    OprfMode.VOPRF: _catalog_pb2.OPRF_MODE_VOPRF,
}

#: Answers as the wire spells them (``bidui.v1.Answer``).
ANSWERS_TO_PROTO = {
    Answer.MATCH: _catalog_pb2.ANSWER_MATCH,
    Answer.VERIFY: _catalog_pb2.ANSWER_VERIFY,
    Answer.COUNT: _catalog_pb2.ANSWER_COUNT,
}


def resource_to_proto(
    resource: Resource,
    *,
    oprf_public_key: bytes | None,
    last_refresh: _dt.datetime | None,
    record_count: int | None = None,
) -> _catalog_pb2.Resource:
    """The catalog entry a requester sees.

    ``record_count`` is published only when the operator set ``expose_record_count = true`` for
    the resource; by default, and for conditional data unless allowed, it is left out.
    ``oprf_public_key`` (modeVOPRF's) is only published when the resource offers modeVOPRF.
    """
    message = _catalog_pb2.Resource(
        id=resource.id,
        name=resource.name,
        owner_department=resource.owner_department,
        category=_CATEGORIES[resource.category],
        fields=[
            _catalog_pb2.Field(name=name, type=kind.value) for name, kind in resource.fields.items()
        ],
        comparison_keys=[
            _catalog_pb2.ComparisonKey(
                name=name,
                fields=[spec.name for spec in key.fields],
                verifiable_fields=resource.verifiable(name),
            )
            for name, key in resource.comparison_keys.items()
        ],
        sharing_type=_SHARING_TYPES[resource.sharing_type],
        usage_conditions=resource.usage_conditions,
        update_period=resource.update_period,
        key_version=resource.key_version,
        modes=[MODES_TO_PROTO[mode] for mode in resource.modes],
        answers=[ANSWERS_TO_PROTO[answer] for answer in resource.answers],
        oprf_modes=[OPRF_MODES_TO_PROTO[mode] for mode in resource.offered_oprf_modes],
        oprf_suite=oprf.SUITE_ID,
        # The node serves only indexes built under this version (loader.load_indexes).
        canonical_version=CANONICAL_VERSION,
    )
    if oprf_public_key is not None and OprfMode.VOPRF in resource.offered_oprf_modes:
        message.oprf_public_key = oprf_public_key
    if last_refresh is not None:
        if last_refresh.tzinfo is None:
            raise ValueError("last_refresh must be timezone-aware")
        message.last_refresh.FromDatetime(last_refresh.astimezone(_dt.UTC))
    if record_count is not None and resource.expose_record_count:
        message.record_count = record_count
    return message
