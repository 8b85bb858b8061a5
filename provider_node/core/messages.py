"""What a comparison states and what it gets back, in the node's own terms (no protobuf here)."""

from __future__ import annotations

from dataclasses import dataclass

from comparator.oprf import Evaluation
from provider_node.core.vocabulary import Answer

__all__ = [
    "EMPTY_HEADER",
    "BlindOutcome",
    "CountOutcome",
    "Header",
    "MatchOutcome",
    "VerificationOutcome",
]


@dataclass(frozen=True)
class Header:
    """What every comparison states: resource, comparison key, purpose (articles 31, 32)."""

    resource_id: str
    comparison_key: str
    purpose: str
    request_id: str
    key_version: int
    #: The grant relied on (conditional resources); "" lets the node find the covering grant.
    grant_id: str = ""
    #: What the comparison answers; None for a number the node does not know (refused).
    answer: Answer | None = Answer.MATCH
    #: Verification only: the fields verified against ``comparison_key``, in item order.
    verify_fields: tuple[str, ...] = ()
    #: Blinded mode: RFC 9497 modeVOPRF (a batched DLEQ proof) rather than modeOPRF.
    verifiable: bool = False


EMPTY_HEADER = Header("", "", "", "", 0)


@dataclass(frozen=True)
class MatchOutcome:
    """The only thing a comparison returns: match bits aligned with the request."""

    match_bits: bytes
    item_count: int
    match_count: int
    comparison_id: str


@dataclass(frozen=True)
class VerificationOutcome:
    """A verification's answer: one outcome byte per record and the mismatch bits
    (``comparator.verification``), with the counts per outcome."""

    outcomes: bytes
    mismatch_bits: bytes
    record_count: int
    not_found: int
    consistent: int
    inconsistent: int
    comparison_id: str


@dataclass(frozen=True)
class CountOutcome:
    """A count-only answer: how many items matched, never which."""

    item_count: int
    match_count: int
    comparison_id: str


@dataclass(frozen=True)
class BlindOutcome:
    comparison_id: str
    evaluation: Evaluation
    key_version: int
