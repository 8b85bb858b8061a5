"""The node's answers without gRPC: verification and count outcomes from the indexes, the checks
of a verification's header, the audit record's reason, permission per answer, fail closed."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from comparator.canonical import FieldSpec, encode_record
from comparator.index import MatchIndex
from comparator.keyed_hash import KeyedHasher
from comparator.oprf import Mode as OprfMode
from comparator.oprf import OprfServer, generate_key_pair
from comparator.verification import VerificationPlan, unpack_verdicts
from provider_node.access.policy import AccessPolicy, ItemsPerMinute
from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.comparison.answers import audit_reason, check_answer, check_fields, evaluate
from provider_node.comparison.node import NodeLimits, ProviderNode
from provider_node.comparison.open_comparisons import reconcile
from provider_node.config import load_config
from provider_node.core import errors
from provider_node.core.messages import CountOutcome, Header, MatchOutcome, VerificationOutcome
from provider_node.core.vocabulary import Answer
from provider_node.core.vocabulary import ComparisonMode as Mode
from provider_node.core.vocabulary import OprfMode as OfferedMode
from provider_node.identity.auth import Caller
from provider_node.observability.metrics import NodeMetrics
from provider_node.resources.catalog import ServedResource, build_catalog
from provider_node.store.engine import make_engine, migrate, session_factory

CONFIG = """
[node]
department = "psb"
[audit]
database_url = "sqlite:///audit.db"
[[resources]]
id = "people"
name = "People"
category = "basic"
sharing_type = "unconditional"
modes = ["hashed"]
answers = ["match", "verify", "count"]
fields = { id_number = "cn_resident_id", name = "person_name", phone = "phone", note = "text" }
keys = { "id_number" = ["id_number"] }
verify = { "id_number" = ["name", "phone"] }
source = { csv = "people.csv" }
[[resources]]
id = "plain"
name = "Plain"
category = "basic"
sharing_type = "unconditional"
modes = ["hashed"]
fields = { id_number = "cn_resident_id" }
keys = { "id_number" = ["id_number"] }
source = { csv = "plain.csv" }
"""
HMAC_KEY = b"h" * 32
REGISTER = [
    {"id_number": "11010519491231002X", "name": "张三", "phone": "13800000000"},
    {"id_number": "510502199611099144", "name": "李四", "phone": "13900000000"},
]
CALLER = Caller("civil-affairs", "ab" * 32)


def _header(answer: Answer | None = Answer.VERIFY, **changes: Any) -> Header:
    fields = ("name", "phone") if answer is Answer.VERIFY else ()
    values: dict[str, Any] = {
        "resource_id": "people", "comparison_key": "id_number", "purpose": "benefit check",
        "request_id": "r-1", "key_version": 1, "answer": answer, "verify_fields": fields,
    }  # fmt: skip
    return Header(**{**values, **changes})


@pytest.fixture
def node(tmp_path: Path) -> tuple[ProviderNode, dict[str, ServedResource], AuditLog]:
    (tmp_path / "node.toml").write_text(CONFIG)
    config = load_config(tmp_path / "node.toml")
    served: dict[str, ServedResource] = {}
    sk, _ = generate_key_pair(OprfMode.OPRF)
    for resource in build_catalog(config).values():
        indexes = {}
        for name, key in resource.index_keys.items():
            hasher = KeyedHasher(HMAC_KEY, resource.domain(name))
            encoded = [encode_record(resource.domain(name), key, r) for r in REGISTER]
            indexes[(name, "hashed")] = MatchIndex.build(hasher.tags(encoded))
        servers = {OfferedMode.OPRF: OprfServer(sk)}
        served[resource.id] = ServedResource(resource, servers, None, HMAC_KEY, indexes)
    engine = make_engine(config.audit.database_url)
    migrate(engine)
    sessions = session_factory(engine)
    audit = AuditLog(sessions)
    access = AccessPolicy(sessions, ItemsPerMinute(hashed=0, blinded=0))
    provider = ProviderNode(
        served, audit, NodeMetrics(CollectorRegistry()), access, NodeLimits(max_batch_items=100)
    )
    return provider, served, audit


def _tags(served: ServedResource, declared: list[dict[str, str]]) -> list[bytes]:
    resource = served.resource
    key = resource.comparison_keys["id_number"]
    fields = tuple(FieldSpec(n, resource.fields[n]) for n in ("name", "phone"))
    plan = VerificationPlan("people", key, fields, 1)
    batch = plan.encode(declared)
    hashers = [KeyedHasher(HMAC_KEY, domain) for domain in plan.domains]
    return [hashers[i % 3].tag(item) for i, item in enumerate(batch.encoded)]


DECLARED = [
    REGISTER[0],
    {**REGISTER[1], "phone": "13911111111"},
    {"id_number": "510502199805027771", "name": "王五", "phone": "13700000000"},
]


def _records(audit: AuditLog) -> list[dict[str, Any]]:
    out = io.StringIO()
    audit.export(out, "jsonl")
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_evaluate_gives_outcomes_mismatches_and_counts(node: Any) -> None:
    _, served, _ = node
    answered = evaluate(served["people"], _header(), Mode.HASHED, _tags(served["people"], DECLARED))
    result = answered.result
    assert isinstance(result, VerificationOutcome)
    verdicts, rows = unpack_verdicts(result.outcomes, result.mismatch_bits, 3, 2)
    assert [int(v) for v in verdicts] == [1, 2, 0]
    assert rows == [(False, False), (False, True), (False, False)]
    assert (answered.records, answered.matches) == (3, 2)
    assert answered.summary == ("not_found=1 consistent=1 inconsistent=1 mismatched=name:0,phone:1")
    key_tags = _tags(served["people"], DECLARED)[0::3]
    counted = evaluate(served["people"], _header(Answer.COUNT), Mode.HASHED, key_tags)
    assert counted.result == CountOutcome(3, 2, "") and counted.summary == ""
    matched = evaluate(served["people"], _header(Answer.MATCH), Mode.HASHED, key_tags)
    assert isinstance(matched.result, MatchOutcome) and matched.result.match_bits == b"\x03"


@pytest.mark.parametrize(
    ("header", "refusal", "says"),
    [
        (_header(verify_fields=()), errors.InvalidRequestError, "at least one field"),
        (_header(verify_fields=("name", "name")), errors.InvalidRequestError, "twice"),
        (_header(verify_fields=("note",)), errors.FieldNotVerifiableError, "'note' cannot"),
        (_header(verify_fields=("id_number",)), errors.FieldNotVerifiableError, "cannot"),
        (_header(verify_fields=("a:b",)), errors.FieldNotVerifiableError, "cannot"),
        (_header(Answer.COUNT, verify_fields=("name",)), errors.InvalidRequestError, "only"),
    ],
)
def test_check_fields(node: Any, header: Header, refusal: type[Exception], says: str) -> None:
    _, served, _ = node
    with pytest.raises(refusal, match=says):
        check_fields(served["people"], header, Mode.HASHED)


def test_check_answer() -> None:
    check_answer(_header(), Answer.VERIFY)
    with pytest.raises(errors.InvalidRequestError, match="not an answer"):
        check_answer(_header(None), Answer.MATCH)
    with pytest.raises(errors.InvalidRequestError, match="asks for verify answers"):
        check_answer(_header(), Answer.MATCH)


def test_audit_reason_states_the_answer_first() -> None:
    assert audit_reason(_header(Answer.MATCH), message="refused") == "refused"
    assert audit_reason(_header(Answer.COUNT)) == "answer=count"
    assert audit_reason(_header(), summary="a=1", message="m") == (
        "answer=verify fields=name,phone a=1; m"
    )
    assert audit_reason(_header(verify_fields=("x y", "name"))) == "answer=verify fields=?,name"
    many = _header(verify_fields=tuple(f"f{i}" for i in range(40)))
    assert audit_reason(many).endswith(",f15,...")
    assert audit_reason(_header(None), message="m") == "answer=unknown; m"


def test_a_verification_is_one_audit_record_with_its_counts(node: Any) -> None:
    provider, served, audit = node
    tags = _tags(served["people"], DECLARED)
    result = provider.compare_hashed(CALLER, _header(), tags, Answer.VERIFY)
    assert isinstance(result, VerificationOutcome)
    (record,) = _records(audit)
    assert record["comparison_id"] == result.comparison_id
    assert (record["item_count"], record["match_count"]) == (3, 2)
    assert record["reason"].startswith("answer=verify fields=name,phone not_found=1")


def test_answers_a_resource_does_not_offer_are_refused_and_audited(node: Any) -> None:
    provider, served, audit = node
    tags = _tags(served["people"], DECLARED)[0::3]
    with pytest.raises(errors.AnswerNotOfferedError, match="does not answer count"):
        provider.compare_hashed(
            CALLER, _header(Answer.COUNT, resource_id="plain"), tags, Answer.COUNT
        )
    (record,) = _records(audit)
    assert (record["outcome"], record["status_code"]) == ("refused", "PERMISSION_DENIED")
    assert record["reason"].startswith("answer=count; resource 'plain' does not answer count")


def test_no_verification_is_answered_unless_its_record_is_committed(node: Any) -> None:
    provider, served, audit = node
    with audit.sessions.begin() as session:
        session.execute(text("ALTER TABLE audit_record RENAME TO audit_record_away"))
    with pytest.raises(errors.AuditUnavailableError):
        provider.compare_hashed(CALLER, _header(), _tags(served["people"], DECLARED), Answer.VERIFY)


def test_a_count_left_open_by_a_crashed_node_is_abandoned_as_a_count(node: Any) -> None:
    _, _, audit = node
    opened = str(uuid.uuid4())
    audit.append(
        AuditEntry(
            action="comparison", outcome="opened", status_code="OK", requester="civil-affairs",
            resource_id="people", comparison_key="id_number", mode="blinded", item_count=4,
            reason="answer=count", related_id=opened,
        )
    )  # fmt: skip
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert reconcile(audit, later) == 1
    abandoned = _records(audit)[-1]
    assert (abandoned["outcome"], abandoned["comparison_id"]) == ("abandoned", opened)
    assert abandoned["reason"].startswith("answer=count; found open in the audit log")
