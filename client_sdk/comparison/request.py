"""A compare or verify call as the client checks it before anything is sent, and the loop that
runs it: the catalog entry read, the comparison described, run once more if the node's key
version changed under it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc

from bidui.v1 import catalog_pb2 as _catalog_pb2
from client_sdk.comparison.catalog import (
    Catalog,
    ComparisonMode,
    check_mode,
    comparison_key_for,
)
from client_sdk.comparison.chunks import Comparison, ProgressCallback, Record
from client_sdk.errors import InvalidRequestError

__all__ = ["ComparisonRequest", "check_request_id", "run_comparison"]

_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")


@dataclass(frozen=True)
class ComparisonRequest:
    """What a compare or verify call asks, before the catalog is read."""

    resource: str
    key: str
    mode: ComparisonMode
    purpose: str
    progress: ProgressCallback | None
    request_id: str | None
    grant_id: str | None
    answer: _catalog_pb2.Answer.ValueType
    verify_fields: tuple[str, ...] = ()
    verifiable: bool = False


def check_request_id(request_id: str | None) -> str:
    """The caller's request id if valid (1-64 printable ASCII characters), else a fresh one."""
    if request_id is None:
        return uuid.uuid4().hex
    if not _REQUEST_ID.fullmatch(request_id):
        raise InvalidRequestError(
            "request_id must be 1 to 64 printable ASCII characters without spaces"
        )
    return request_id


def run_comparison(
    catalog: Catalog,
    request: ComparisonRequest,
    records: Iterable[Record],
    run: Callable[[_catalog_pb2.Resource, Comparison, list[Record]], Any],
) -> Any:
    """The checks every comparison makes before sending, then ``run``; once more, described
    afresh, when the node says the key version changed."""
    check_mode(request.mode)
    if request.verifiable and request.mode != "blinded":
        raise InvalidRequestError("verifiable is for blinded mode (RFC 9497 modeVOPRF) only")
    if not request.purpose or not request.purpose.strip():
        raise InvalidRequestError("a purpose stating the duty the comparison serves is required")
    if request.grant_id is not None and not request.grant_id.strip():
        raise InvalidRequestError("grant_id must name a grant, or be left out")
    request_id = check_request_id(request.request_id)
    items = list(records)
    for attempt in (1, 2):
        entry = catalog.entry(request.resource)
        comparison = Comparison(
            resource_id=entry.id,
            comparison_key=comparison_key_for(entry, request.key, request.mode),
            mode=request.mode,
            purpose=request.purpose,
            request_id=request_id,
            progress=request.progress,
            grant_id=request.grant_id or "",
            answer=request.answer,
            verify_fields=request.verify_fields,
            verifiable=request.verifiable,
        )
        try:
            return run(entry, comparison, items)
        except InvalidRequestError as error:
            # The node's catalog changed (e.g. a key rotation): describe again, once.
            if attempt == 2 or error.code != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            catalog.forget(request.resource, request.key)
    raise AssertionError("unreachable")
