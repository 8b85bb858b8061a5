"""The node's catalog as the requester sees it: entries, comparison keys, hashed-mode keys.

A catalog entry (article 7–10) tells the requester the resource's fields and their types, the
comparison keys it offers, the modes, the key version, the OPRF public key and the canonical
version its records are normalised and encoded under, which must be this SDK's. :class:`Catalog`
keeps the entries and the hashed-mode keys it fetched so that a one-record comparison costs one or
two RPCs, not four; :meth:`Catalog.forget` drops them when the node reports a changed key version.
Everything is held in memory only, never written anywhere, and the HMAC key never leaves its
:class:`KeyedHasher`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import catalog_pb2_grpc as _catalog_pb2_grpc
from client_sdk.connection.retry import NodeCalls
from client_sdk.errors import InvalidRequestError, ServiceError
from comparator.canonical import CANONICAL_VERSION, ComparisonKey, Domain
from comparator.errors import ComparatorError
from comparator.keyed_hash import TAG_LENGTH, KeyedHasher

__all__ = [
    "AnswerName",
    "Catalog",
    "ComparisonMode",
    "answer_to_wire",
    "answers_from_wire",
    "check_canonical_version",
    "check_mode",
    "comparison_key_for",
    "mode_from_wire",
    "mode_to_wire",
]

ComparisonMode = Literal["blinded", "hashed"]
#: What a comparison answers: match bits, a verification (核验), or a count only.
AnswerName = Literal["match", "verify", "count"]

_MODES: dict[ComparisonMode, _catalog_pb2.Mode.ValueType] = {
    "hashed": _catalog_pb2.MODE_HASHED,
    "blinded": _catalog_pb2.MODE_BLINDED,
}
_MODE_NAMES: dict[int, ComparisonMode] = {value: name for name, value in _MODES.items()}
_ANSWERS: dict[AnswerName, _catalog_pb2.Answer.ValueType] = {
    "match": _catalog_pb2.ANSWER_MATCH,
    "verify": _catalog_pb2.ANSWER_VERIFY,
    "count": _catalog_pb2.ANSWER_COUNT,
}
_ANSWER_NAMES: dict[int, AnswerName] = {value: name for name, value in _ANSWERS.items()}


def answer_to_wire(answer: str) -> _catalog_pb2.Answer.ValueType:
    """The ``bidui.v1.Answer`` number of ``answer`` (InvalidRequestError for another name)."""
    for name, number in _ANSWERS.items():
        if name == answer:
            return number
    raise InvalidRequestError(f"answer must be 'match', 'verify' or 'count', not {answer!r}")


def answers_from_wire(numbers: Sequence[int]) -> tuple[AnswerName, ...]:
    """The SDK's names of ``bidui.v1.Answer`` numbers; none at all means match bits only (a node
    or a grant older than answers). Numbers this SDK does not know are left out."""
    if not numbers:
        return ("match",)
    return tuple(_ANSWER_NAMES[n] for n in numbers if n in _ANSWER_NAMES)


def check_mode(mode: str) -> None:
    """Raise :class:`InvalidRequestError` unless ``mode`` is one this SDK speaks."""
    if mode not in _MODES:
        raise InvalidRequestError(f"mode must be 'blinded' or 'hashed', not {mode!r}")


def mode_to_wire(mode: ComparisonMode) -> _catalog_pb2.Mode.ValueType:
    """The ``bidui.v1.Mode`` number of ``mode`` (InvalidRequestError for a mode the SDK lacks)."""
    check_mode(mode)
    return _MODES[mode]


def mode_from_wire(number: int) -> ComparisonMode | None:
    """The SDK's name of the ``bidui.v1.Mode`` ``number``, or None for one it does not speak."""
    return _MODE_NAMES.get(number)


def check_canonical_version(resource: _catalog_pb2.Resource) -> None:
    """Raise :class:`ServiceError` unless the node encodes records under this SDK's canonical
    version (docs/PROTOCOL.md section 4): otherwise no record could match, and every one would
    come back "not matched" without saying why."""
    node_version = resource.canonical_version or 1  # unset: a node older than the field
    if node_version == CANONICAL_VERSION:
        return
    if node_version < CANONICAL_VERSION:
        remedy = "the provider must upgrade its node and rebuild its indexes (bidui provider load)"
    else:
        remedy = "upgrade bidui on this side"
    raise ServiceError(
        f"the node normalises and encodes the records of {resource.id!r} under canonical "
        f"version {node_version}, this SDK under version {CANONICAL_VERSION}: no record could "
        f"match, so nothing is compared; {remedy}"
    )


def comparison_key_for(
    resource: _catalog_pb2.Resource, key_name: str, mode: ComparisonMode | None = None
) -> ComparisonKey:
    """The comparator's :class:`ComparisonKey` for ``key_name`` from a catalog entry.

    Raises :class:`InvalidRequestError` when the resource offers no such key or not ``mode``, and
    :class:`ServiceError` when the catalog entry itself is inconsistent (a key naming a field the
    entry does not declare, or a field type this SDK does not know) or states a canonical version
    this SDK does not implement (:func:`check_canonical_version`).
    """
    check_canonical_version(resource)
    if mode is not None:
        check_mode(mode)
        offered = [_MODE_NAMES[m] for m in resource.modes if m in _MODE_NAMES]
        if resource.modes and _MODES[mode] not in resource.modes:
            raise InvalidRequestError(
                f"resource {resource.id!r} does not offer {mode} mode; it offers: "
                + (", ".join(offered) or "none")
            )
    keys = {k.name: k for k in resource.comparison_keys}
    entry = keys.get(key_name)
    if entry is None:
        offered_keys = ", ".join(repr(name) for name in keys) or "none"
        raise InvalidRequestError(
            f"resource {resource.id!r} has no comparison key {key_name!r}; it offers: "
            f"{offered_keys}"
        )
    field_types = {f.name: f.type for f in resource.fields}
    try:
        return ComparisonKey.from_names(entry.name, list(entry.fields), field_types)
    except (ComparatorError, ValueError, KeyError) as exc:
        raise ServiceError(
            f"the catalog entry of {resource.id!r} defines key {key_name!r} in a way this SDK "
            f"cannot use: {exc}"
        ) from exc


class Catalog:
    """The catalog RPCs of one node, with the entries and hashed-mode keys already fetched."""

    def __init__(self, stub: _catalog_pb2_grpc.CatalogServiceStub, calls: NodeCalls) -> None:
        self._stub = stub
        self._calls = calls
        self._entries: dict[str, _catalog_pb2.Resource] = {}
        # (resource, comparison key, domain key names) -> one hasher per domain, in that order.
        self._hashers: dict[tuple[str, str, tuple[str, ...]], list[KeyedHasher]] = {}

    def list_resources(self) -> list[_catalog_pb2.Resource]:
        """The catalog entries the node publishes (always asked afresh)."""
        response = self._calls.unary(
            "ListResources", self._stub.ListResources, _catalog_pb2.ListResourcesRequest()
        )
        return list(response.resources)

    def describe(self, resource_id: str) -> _catalog_pb2.Resource:
        """The catalog entry of ``resource_id``, asked afresh (ResourceNotFoundError if unknown)."""
        return self._calls.unary(
            f"DescribeResource {resource_id!r}",
            self._stub.DescribeResource,
            _catalog_pb2.DescribeResourceRequest(resource_id=resource_id),
        )

    def entry(self, resource_id: str) -> _catalog_pb2.Resource:
        """The catalog entry of ``resource_id``, from memory when already described."""
        entry = self._entries.get(resource_id) or self.describe(resource_id)
        self._entries[resource_id] = entry
        return entry

    def hasher(
        self, entry: _catalog_pb2.Resource, comparison_key: ComparisonKey
    ) -> tuple[KeyedHasher, Domain]:
        """The hashed-mode tagger for ``comparison_key`` of ``entry``, fetched once (GetHashKey)."""
        (hasher,) = self.hashers(entry, comparison_key.name, (comparison_key.name,))
        return hasher, hasher.domain

    def hashers(
        self, entry: _catalog_pb2.Resource, key_name: str, domain_names: tuple[str, ...]
    ) -> list[KeyedHasher]:
        """Taggers under the resource's key (asked for ``key_name``) for each of ``domain_names``
        (a verification: the key's own and each field's verification key), fetched once."""
        cached = self._hashers.get((entry.id, key_name, domain_names))
        if cached is None:
            cached = self._fetch_hashers(entry, key_name, domain_names)
            self._hashers[(entry.id, key_name, domain_names)] = cached
        return cached

    def forget(self, resource_id: str, key_name: str) -> None:
        """Drop what is held for ``resource_id`` (its key version changed at the node)."""
        self._entries.pop(resource_id, None)
        for held in [k for k in self._hashers if k[:2] == (resource_id, key_name)]:
            del self._hashers[held]

    def clear(self) -> None:
        """Forget every entry and key."""
        self._entries.clear()
        self._hashers.clear()

    def _fetch_hashers(
        self, entry: _catalog_pb2.Resource, key_name: str, domain_names: tuple[str, ...]
    ) -> list[KeyedHasher]:
        hash_key = self._calls.unary(
            f"GetHashKey {entry.id!r}",
            self._stub.GetHashKey,
            _catalog_pb2.GetHashKeyRequest(resource_id=entry.id, comparison_key=key_name),
        )
        if hash_key.tag_length and hash_key.tag_length != TAG_LENGTH:
            raise ServiceError(
                f"the node uses {hash_key.tag_length}-byte tags; this SDK makes {TAG_LENGTH}"
            )
        key_version = hash_key.key_version or entry.key_version
        try:
            hashers = [
                KeyedHasher(hash_key.hmac_key, Domain(entry.id, name, key_version))
                for name in domain_names
            ]
        except ComparatorError as exc:
            raise ServiceError(f"the node sent an unusable hashed-mode key: {exc}") from None
        del hash_key  # the key now lives only inside the hashers
        return hashers
