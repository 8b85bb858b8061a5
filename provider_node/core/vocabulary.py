"""The node's words, each defined once: sharing types, categories, modes and answers.

Every room speaks of a comparison in these types: the configuration reads them, the catalog
offers them, the policy checks them, the audit log and the metrics record them. A string that
means one of them is turned into it at the edge (configuration, protobuf, the command line).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Action",
    "Answer",
    "Category",
    "ComparisonMode",
    "OprfMode",
    "Outcome",
    "SharingType",
]


class SharingType(StrEnum):
    """Article 24."""

    UNCONDITIONAL = "unconditional"
    CONDITIONAL = "conditional"
    NOT_SHARED = "not_shared"


class Category(StrEnum):
    """Articles 4 and 18."""

    BASIC = "basic"
    THEMATIC = "thematic"
    DEPARTMENTAL = "departmental"


class ComparisonMode(StrEnum):
    HASHED = "hashed"
    BLINDED = "blinded"


class OprfMode(StrEnum):
    """Blinded mode's RFC 9497 protocol mode: ``oprf`` (modeOPRF, no proof, the default) or
    ``voprf`` (modeVOPRF, a batched DLEQ proof against the published key)."""

    OPRF = "oprf"
    VOPRF = "voprf"


class Answer(StrEnum):
    """What a comparison answers; each is its own permission (a resource offers, a grant allows)."""

    MATCH = "match"  # match bits, one per record
    VERIFY = "verify"  # verification (核验): not found / consistent / inconsistent per record
    COUNT = "count"  # how many records matched, nothing per record


class Outcome(StrEnum):
    """How a request ended, as the audit log and the metrics count it."""

    ANSWERED = "answered"
    REFUSED = "refused"  # the requester's mistake or policy
    FAILED = "failed"  # the node's own fault (e.g. the audit store is down)
    ABANDONED = "abandoned"  # a blinded comparison whose second step never came
    OPENED = "opened"  # a blinded comparison's first step, before its evaluations leave


class Action(StrEnum):
    """What an audit record is about: a comparison, or one governance action (article 35)."""

    COMPARISON = "comparison"
    #: Refusals of one source counted over a window after the first was recorded in full
    #: (item_count: how many); see provider_node.comparison.refusal_tally.
    REFUSALS = "refusals"
    # A department's reads and requests, each audited whatever its outcome.
    CATALOG_READ = "catalog_read"
    HASH_KEY_FETCH = "hash_key_fetch"
    APPLICATION = "application"
    APPLICATION_READ = "application_read"
    DISCREPANCY_REPORT = "discrepancy_report"
    DISCREPANCY_READ = "discrepancy_read"
    # The operator's decisions and changes.
    APPLICATION_APPROVAL = "application_approval"
    APPLICATION_REFUSAL = "application_refusal"
    GRANT_REVOCATION = "grant_revocation"
    DISCREPANCY_ANSWER = "discrepancy_answer"
    CERTIFICATE_SIGNING = "certificate_signing"
    CERTIFICATE_REVOCATION = "certificate_revocation"
    INDEX_LOAD = "index_load"
    KEY_ROTATION = "key_rotation"
    CA_ROTATION = "ca_rotation"
    #: Provisional deadlines recounted once the working-day calendar knows their year.
    DEADLINE_RECOMPUTATION = "deadline_recomputation"
    #: The catalog as served differs from the last one recorded (an edited node.toml).
    CATALOG_CHANGE = "catalog_change"
