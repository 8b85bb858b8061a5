"""Checks of what a request states, before any work: header fields, item counts and lengths.

Every message is written for the requesting department's engineer and echoes requester-supplied
names only bounded and quoted (``quote``), never a queried value.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence

from provider_node.core import errors
from provider_node.core.errors import quote
from provider_node.core.messages import Header
from provider_node.core.personal_data import check_free_text
from provider_node.resources.catalog import Resource

__all__ = ["MAX_PURPOSE_CHARS", "check_header", "check_items", "digest_more", "quote"]

MAX_PURPOSE_CHARS = 500
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")


def check_header(header: Header, resource: Resource) -> None:
    """Purpose, request id and key version of a comparison on ``resource``."""
    if not header.purpose.strip():
        raise errors.InvalidRequestError(
            "purpose is required: state the duty this comparison serves (article 31)"
        )
    if len(header.purpose) > MAX_PURPOSE_CHARS:
        raise errors.InvalidRequestError(f"purpose is longer than {MAX_PURPOSE_CHARS} characters")
    if header.request_id and not _REQUEST_ID.fullmatch(header.request_id):
        raise errors.InvalidRequestError(
            "request_id must be 1 to 64 printable ASCII characters without spaces"
        )
    check_free_text("purpose", header.purpose)
    check_free_text("request_id", header.request_id)
    if header.key_version != resource.key_version:
        raise errors.KeyVersionMismatchError(
            f"key version {header.key_version} is not the current version "
            f"{resource.key_version} of {quote(resource.id)}: describe the resource again"
        )


def check_items(items: Sequence[bytes], length: int, what: str, limit: int) -> None:
    """A non-empty batch of at most ``limit`` items of exactly ``length`` bytes each."""
    if not items:
        raise errors.InvalidRequestError(f"empty batch: send at least one {what}")
    if len(items) > limit:
        raise errors.BatchTooLargeError(
            f"{len(items)} items in one request; this node accepts at most {limit} "
            f"in this mode: split the batch"
        )
    if set(map(len, items)) == {length}:
        return  # the usual case, checked in C; the loop below only finds the first bad item
    for position, item in enumerate(items):
        if len(item) != length:
            raise errors.InvalidRequestError(
                f"{what} {position} is {len(item)} bytes; expected {length}"
            )


def digest_more(digest: hmac.HMAC, items: Sequence[bytes]) -> hmac.HMAC:
    """Fold length-prefixed ``items`` into ``digest`` (the audit record's payload_sha256: an
    HMAC-SHA-256 under the node's payload digest key, ``ProviderNode``)."""
    for item in items:
        digest.update(len(item).to_bytes(4, "big"))
        digest.update(item)
    return digest
