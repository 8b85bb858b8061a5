"""The node's answers: match bits, verification (核验) outcomes or a count; each its own permission.

Every comparison states its answer in its header (``Header.answer``) and is sent to the RPC of that
answer: ``CompareHashed``/``MatchBlinded`` for match bits, ``VerifyHashed``/``VerifyBlinded`` for
verification, ``CountHashed``/``CountBlinded`` for a count. Whatever the answer, the request path
is the same (``node.py``): permission (the resource offers the answer; a grant allows it), checks,
allowance, lookups, the audit record committed, then the answer. This module holds what differs::

    match    items = one per record   -> key index              -> match bits (+ count)
    count    items = one per record   -> key index              -> the count only
    verify   items = 1 + F per record -> key index, and the (key, field) verification index of
             each of the F fields     -> per record not found / consistent / inconsistent and
                                         a mismatch bit per field (comparator.verification)

The node sees tags or PRF outputs only, as in any comparison; nothing but the answer leaves it. A
verification's audit record counts records (``item_count``) and records found (``match_count``),
and its ``reason`` carries the counts per outcome::

    answer=verify fields=name,phone not_found=3 consistent=10 inconsistent=2
        mismatched=name:1,phone:2                                            (one line)

A count's reason is ``answer=count``; a refused or abandoned verification or count carries the
same prefix before its message (``audit_reason``). Match answers keep an empty reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from comparator.index import pack_matches
from comparator.verification import Verdict, decide, pack_verdicts, verification_key_name
from provider_node.comparison.checks import quote
from provider_node.config import FIELD_NAME_RE
from provider_node.core import errors
from provider_node.core.messages import CountOutcome, Header, MatchOutcome, VerificationOutcome
from provider_node.core.vocabulary import Answer
from provider_node.core.vocabulary import ComparisonMode as Mode
from provider_node.resources.catalog import ServedResource, index_mode

__all__ = [
    "AnswerResult",
    "Answered",
    "audit_reason",
    "check_answer",
    "check_fields",
    "check_width",
    "evaluate",
    "record_count",
    "width",
]

AnswerResult = MatchOutcome | VerificationOutcome | CountOutcome
# Field names shown in an audit record's reason (a refused request's come from the network).
_SHOWN_FIELDS = 16
#: Verdicts as the audit record, the metrics and the documentation name them.
VERDICT_NAMES = {
    Verdict.NOT_FOUND: "not_found",
    Verdict.CONSISTENT: "consistent",
    Verdict.INCONSISTENT: "inconsistent",
}


def check_answer(header: Header, expected: Answer) -> None:
    """The header asks for the answer of the RPC it was sent to (``expected``)."""
    if header.answer is None:
        raise errors.InvalidRequestError("header.answer is not an answer this node knows")
    if header.answer is not expected:
        raise errors.InvalidRequestError(
            f"the header asks for {header.answer} answers, this call gives {expected} answers: "
            "send it to the call of its answer"
        )


def check_fields(served: ServedResource, header: Header, mode: Mode) -> None:
    """A verification names 1 or more distinct fields verifiable against its key; others none."""
    fields = header.verify_fields
    if header.answer is not Answer.VERIFY:
        if fields:
            raise errors.InvalidRequestError("verify_fields are for verification only")
        return
    if not fields:
        raise errors.InvalidRequestError("name at least one field to verify (verify_fields)")
    if len(set(fields)) != len(fields):
        raise errors.InvalidRequestError("verify_fields names a field twice")
    resource = served.resource
    verifiable = resource.verifiable(header.comparison_key)
    indexed = index_mode(mode, header.verifiable)
    for name in fields:
        if (
            name not in verifiable
            or (verification_key_name(header.comparison_key, name), indexed) not in served.indexes
        ):
            raise errors.FieldNotVerifiableError(
                f"field {quote(name)} cannot be verified against key "
                f"{quote(header.comparison_key)} of {quote(resource.id)} (verifiable: "
                f"{', '.join(verifiable) or 'none'})"
            )


def width(header: Header) -> int:
    """Items per record: 1, or for a verification the key's and one per field."""
    return 1 + len(header.verify_fields) if header.answer is Answer.VERIFY else 1


def record_count(header: Header, items: int) -> int:
    """The records ``items`` items stand for (what the audit record counts)."""
    return items // width(header)


def check_width(header: Header, items: int) -> None:
    """A verification's items come in whole records of ``width`` items."""
    per_record = width(header)
    if items % per_record:
        raise errors.InvalidRequestError(
            f"{items} items are not whole records of {per_record} (the key's item, then one per "
            "field to verify)"
        )


@dataclass(frozen=True)
class Answered:
    """An answer before its audit record: the result (its ``comparison_id`` still "") and what the
    audit record and the metrics say of it."""

    result: AnswerResult
    #: The audit record's item_count (records) and match_count (matched, or found).
    records: int
    matches: int
    #: Added to the audit record's reason (after ``audit_reason``'s prefix).
    summary: str = ""
    #: Verification only: records per verdict name, and mismatches per field.
    verdicts: Mapping[str, int] = field(default_factory=dict)
    mismatched: Mapping[str, int] = field(default_factory=dict)


def evaluate(
    served: ServedResource, header: Header, mode: Mode, entries: Sequence[bytes]
) -> Answered:
    """Look ``entries`` (tags, or the index-length prefixes of PRF outputs) up and answer: in the
    indexes of ``mode`` (blinded: of the header's RFC 9497 mode)."""
    indexed = index_mode(mode, header.verifiable)
    key_index = served.indexes[(header.comparison_key, indexed)]
    if header.answer is not Answer.VERIFY:
        mask = key_index.contains(entries)
        n, matched = len(mask), int(mask.sum())
        if header.answer is Answer.COUNT:
            return Answered(CountOutcome(n, matched, ""), n, matched)
        return Answered(MatchOutcome(pack_matches(mask), n, matched, ""), n, matched)
    per_record = width(header)
    items = list(entries)
    found = key_index.contains(items[0::per_record])
    agree = np.column_stack(
        [
            served.indexes[(verification_key_name(header.comparison_key, name), indexed)].contains(
                items[column::per_record]
            )
            for column, name in enumerate(header.verify_fields, start=1)
        ]
    )
    verdicts, mismatch = decide(found, agree)
    outcomes, bits = pack_verdicts(verdicts, mismatch)
    counts = {name: int(np.count_nonzero(verdicts == v)) for v, name in VERDICT_NAMES.items()}
    per_field = dict(zip(header.verify_fields, mismatch.sum(axis=0).tolist(), strict=True))
    records = len(verdicts)
    result = VerificationOutcome(
        outcomes,
        bits,
        records,
        counts["not_found"],
        counts["consistent"],
        counts["inconsistent"],
        "",
    )
    summary = " ".join(f"{name}={count}" for name, count in counts.items())
    summary += " mismatched=" + ",".join(f"{name}:{n}" for name, n in per_field.items())
    found_count = records - counts["not_found"]
    return Answered(result, records, found_count, summary, counts, per_field)


def audit_reason(header: Header, *, summary: str = "", message: str = "") -> str:
    """An audit record's reason. For verification and count answers: the answer (and fields),
    then ``summary`` (an answer's counts); then, for any answer, ``message`` (why it was refused
    or abandoned) after ``; ``."""
    if header.answer is Answer.MATCH:
        return message
    if header.answer is None:
        prefix = "answer=unknown"
    elif header.answer is Answer.VERIFY:
        shown = [n if FIELD_NAME_RE.fullmatch(n) else "?" for n in header.verify_fields]
        more = ",..." if len(shown) > _SHOWN_FIELDS else ""
        prefix = f"answer=verify fields={','.join(shown[:_SHOWN_FIELDS])}{more}"
    else:
        prefix = f"answer={header.answer}"
    stated = f"{prefix} {summary}" if summary else prefix
    return f"{stated}; {message}" if message else stated
