"""Verification and counts (docs/PROTOCOL.md section 14), written from the document alone.

Built on ``thirdparty_client``'s sections 4 to 8 (normalisation, record bytes, tags) and nothing
of bidui but the wire stubs, in hashed mode: the items of 14.2, the answer of 14.3 unpacked and
checked as the document says a client must, and the count of 14.4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bidui.v1 import catalog_pb2, comparison_pb2
from tests.protocol import thirdparty_client as tp

__all__ = ["count_hashed", "verification_key", "verify_hashed"]

OUTCOMES = {0: "not_found", 1: "consistent", 2: "inconsistent"}  # 库无, 一致, 不一致


def verification_key(key: str, field: str) -> str:
    """14.1: the verification key's name."""
    return "verify:" + key + ":" + field


def _hash_key(client: tp.ThirdPartyClient, resource_id: str, key: str) -> tuple[bytes, int]:
    response = client._catalog.GetHashKey(
        catalog_pb2.GetHashKeyRequest(resource_id=resource_id, comparison_key=key),
        timeout=client._timeout,
    )
    return response.hmac_key, response.key_version


def verify_hashed(
    client: tp.ThirdPartyClient,
    resource_id: str,
    key: str,
    fields: Sequence[str],
    records: Sequence[Mapping[str, str | None]],
    *,
    purpose: str,
) -> list[tuple[str, tuple[str, ...]] | None]:
    """Per record (outcome, fields that differ), or None for an invalid record (not sent)."""
    entry = client.describe(resource_id)
    types = {f.name: f.type for f in entry.fields}
    key_fields = [
        (n, types[n]) for n in next(k for k in entry.comparison_keys if k.name == key).fields
    ]
    hmac_key, version = _hash_key(client, resource_id, key)
    # 14.2: per record the key's item, then one per field under its verification key.
    groups = [(key, key_fields)] + [
        (verification_key(key, f), [*key_fields, (f, types[f])]) for f in fields
    ]
    positions, tags = [], []
    for i, record in enumerate(records):
        try:
            encoded = [tp.encode_record(entry.id, name, version, fs, record) for name, fs in groups]
        except tp.FieldRefused:
            continue
        positions.append(i)
        tags += [
            tp.hmac_tag(hmac_key, tp.domain(entry.id, name, version), rec)
            for (name, _), rec in zip(groups, encoded, strict=True)
        ]
    header = comparison_pb2.ComparisonHeader(
        resource_id=entry.id, comparison_key=key, purpose=purpose, key_version=version,
        answer=catalog_pb2.ANSWER_VERIFY, verify_fields=list(fields),
    )  # fmt: skip
    result = client._comparison.VerifyHashed(
        comparison_pb2.CompareHashedRequest(header=header, tags=tags), timeout=client._timeout
    )
    n, width = len(positions), len(fields)
    # 14.3: the checks a client makes.
    if result.record_count != n or len(result.outcomes) != n:
        raise ValueError("the answer is not for this request (record count)")
    bits = tp.unpack_match_bits(
        comparison_pb2.MatchResult(
            match_bits=result.mismatch_bits,
            item_count=n * width,
            match_count=sum(bin(b).count("1") for b in result.mismatch_bits),
        ),
        n * width,
    )
    out: list[tuple[str, tuple[str, ...]] | None] = [None] * len(records)
    for i, position in enumerate(positions):
        row = bits[i * width : (i + 1) * width]
        outcome = OUTCOMES[result.outcomes[i]]
        if any(row) != (outcome == "inconsistent"):
            raise ValueError("the mismatch bits contradict the outcomes")
        out[position] = (
            outcome,
            tuple(f for f, differs in zip(fields, row, strict=True) if differs),
        )
    counted = [sum(1 for o in result.outcomes if o == code) for code in (0, 1, 2)]
    stated = [result.not_found_count, result.consistent_count, result.inconsistent_count]
    if counted != stated:
        raise ValueError("the counts per outcome disagree with the outcomes")
    return out


def count_hashed(
    client: tp.ThirdPartyClient,
    resource_id: str,
    key: str,
    records: Sequence[Mapping[str, str | None]],
    *,
    purpose: str,
) -> int:
    """14.4: how many of the valid records matched."""
    entry = client.describe(resource_id)
    types = {f.name: f.type for f in entry.fields}
    fields = [(n, types[n]) for n in next(k for k in entry.comparison_keys if k.name == key).fields]
    hmac_key, version = _hash_key(client, resource_id, key)
    tags = []
    for record in records:
        try:
            encoded = tp.encode_record(entry.id, key, version, fields, record)
        except tp.FieldRefused:
            continue
        tags.append(tp.hmac_tag(hmac_key, tp.domain(entry.id, key, version), encoded))
    header = comparison_pb2.ComparisonHeader(
        resource_id=entry.id, comparison_key=key, purpose=purpose, key_version=version,
        answer=catalog_pb2.ANSWER_COUNT,
    )  # fmt: skip
    result = client._comparison.CountHashed(
        comparison_pb2.CompareHashedRequest(header=header, tags=tags), timeout=client._timeout
    )
    if result.item_count != len(tags) or result.match_count > len(tags):
        raise ValueError("the count is not for this request")
    return int(result.match_count)
