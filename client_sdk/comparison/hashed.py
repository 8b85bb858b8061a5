"""Hashed mode, the requester's side: HMAC tags under the resource's key, then CompareHashed.

::

    GetHashKey (once per resource and key, see catalog.Catalog.hasher)
    for each chunk:  canonical encodings -> HMAC-SHA-256 tags -> CompareHashed -> match bits

The fastest mode; the node sees the tags and could test guesses of the queried values (see the
design brief). The HMAC key stays inside its :class:`KeyedHasher` and is never logged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import comparison_pb2 as _comparison_pb2
from bidui.v1 import comparison_pb2_grpc as _comparison_pb2_grpc
from client_sdk.comparison.catalog import Catalog
from client_sdk.comparison.chunks import ChunkSender, Comparison, Record, run_chunks
from client_sdk.comparison.results import ComparisonResult
from client_sdk.connection.retry import NodeCalls

__all__ = ["compare_hashed", "hashed_sender"]


def compare_hashed(
    calls: NodeCalls,
    stub: _comparison_pb2_grpc.ComparisonServiceStub,
    catalog: Catalog,
    entry: _catalog_pb2.Resource,
    comparison: Comparison,
    items: list[Record],
    *,
    max_batch: int,
) -> ComparisonResult:
    """Compare ``items`` in hashed mode, ``max_batch`` tags per CompareHashed request."""
    hasher, domain = catalog.hasher(entry, comparison.comparison_key)
    send = hashed_sender(calls, stub.CompareHashed, "CompareHashed")
    return run_chunks(
        comparison, domain, items, max_batch=max_batch, prepare=hasher.tags, send=send
    )


def hashed_sender(calls: NodeCalls, method: Callable[..., Any], rpc: str) -> ChunkSender:
    """Sends one chunk of tags to ``method``, the stub's RPC named ``rpc`` (the header's
    answer's: CompareHashed, VerifyHashed or CountHashed), retried while the node is away."""

    def send(tags: Sequence[bytes], header: _comparison_pb2.ComparisonHeader) -> Any:
        request = _comparison_pb2.CompareHashedRequest(header=header, tags=tags)
        return calls.unary(rpc, method, request)

    return send
