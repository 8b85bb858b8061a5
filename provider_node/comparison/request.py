"""One comparison as the node knows it, from its first RPC to its audit record.

Built once when a request arrives (caller, header, mode, start time, payload digest) and completed
as the request's path learns more (the grant it runs under, its comparison id); passed whole to
the audit trail, so a refusal at any step is recorded from the same facts as an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from provider_node.core.messages import Header
from provider_node.core.vocabulary import Action
from provider_node.core.vocabulary import ComparisonMode as Mode
from provider_node.identity.auth import Caller

__all__ = ["ComparisonRequest"]


@dataclass
class ComparisonRequest:
    caller: Caller
    header: Header
    #: "" where the request named no mode the node knows (a refused certificate, say).
    mode: Mode | str
    #: The node's monotonic clock when the request arrived: the audit record's duration.
    started: float
    action: Action = Action.COMPARISON
    #: The items the request counts for (records × (1 + fields) for a verification).
    records: int = 0
    payload_sha256: str = ""
    #: The grant the policy found or the header named; "" for unconditional resources.
    grant_id: str = ""
    #: "" until the node assigns one (blinded step 1, or the answer).
    comparison_id: str = field(default="")
