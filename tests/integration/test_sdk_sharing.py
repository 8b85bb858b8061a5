"""The SDK against a real node over mutual TLS: conditional sharing, enrolment, a busy node.

- A department applies through ``ComparisonClient.apply``, the operator decides on the node's
  machine (``provider_node.governance.sharing``), and the SDK sees the decision as its own
  dataclasses; it
  compares under the grant with and without ``grant_id``, and a wrong one is refused.
- A department makes its key and request with ``make_key_and_request``, the operator signs the
  request (``provider_node.identity.enrolment.sign``), and the node audits its comparisons under
  that
  department and certificate.
- Blinded sessions at the department's cap are waited for; a used-up quota is raised at once.

The node's own clock (audit, grants, allowances) starts at Monday 2026-03-02 09:00 China time,
so deadlines are known dates; TLS and certificates use real time.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from bidui.v1 import comparison_pb2
from client_sdk import (
    Application,
    ApplicationStatus,
    ComparisonClient,
    ComparisonResult,
    Credentials,
    Grant,
    InvalidRequestError,
    PermissionDeniedError,
    QuotaExceededError,
    ResourceNotFoundError,
    make_key_and_request,
)
from provider_node.governance import sharing
from provider_node.identity import enrolment
from provider_node.identity.names import certificate_fingerprint, serial_hex
from provider_node.identity.pki import load_ca
from tests.integration.audit_helpers import audit_records
from tests.integration.conftest import REQUESTER, NodeUnderTest, start
from tests.integration.test_refusals import header, valid_blinded

RESOURCE = "household_register"
OPERATOR = "luzhou-psb"
MONDAY = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # 09:00 in China
DUTY = "verifying applicants for housing subsidies"


class _NodeClock:
    """The node's clock: runs from ``MONDAY``, and can be set to another moment."""

    def __init__(self) -> None:
        self.set(MONDAY)

    def set(self, moment: dt.datetime) -> None:
        self._start, self._began = moment, time.monotonic()

    def __call__(self) -> dt.datetime:
        return self._start + dt.timedelta(seconds=time.monotonic() - self._began)


CLOCK = _NodeClock()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    running = start(tmp_path_factory.mktemp("sdk-sharing"), clock=CLOCK, refusal_window=0)
    yield running
    running.started.stop(grace=1.0)


@pytest.fixture(scope="module")
def client(node: NodeUnderTest) -> Iterator[ComparisonClient]:
    with node.client() as connected:
        yield connected


def _apply(client: ComparisonClient, keys: list[str], modes: list[str]) -> Application:
    return client.apply(
        RESOURCE,
        keys=keys,
        modes=modes,  # type: ignore[arg-type]
        duty=DUTY,
        items_per_day=100,
        valid_until=dt.date(2026, 12, 31),
    )


@pytest.fixture(scope="module")
def grants(node: NodeUnderTest, client: ComparisonClient) -> tuple[Grant, Grant]:
    """Two grants that cover different keys: by id number in both modes (100 a day), and by id
    number and name in hashed mode, narrowed by the operator to 5 a day."""
    by_id = _apply(client, ["id_number"], ["hashed", "blinded"])
    by_name = _apply(client, ["id_number+name"], ["hashed", "blinded"])
    audit = node.started.opened.audit
    sharing.approve(audit, by_id.id, operator=OPERATOR, now=CLOCK())
    narrowed = sharing.Decision(modes=("hashed",), items_per_day=5)
    sharing.approve(audit, by_name.id, operator=OPERATOR, now=CLOCK(), decision=narrowed)
    first, second = client.application(by_id.id).grant, client.application(by_name.id).grant
    assert first is not None and second is not None
    return first, second


def _compare(
    client: ComparisonClient,
    ids: list[str],
    *,
    resource: str = RESOURCE,
    mode: str = "hashed",
    **options: object,
) -> ComparisonResult:
    """Compare by id number, each of ``ids`` a record."""
    return client.compare(
        resource,
        [{"id_number": i} for i in ids],
        key="id_number",
        mode=mode,  # type: ignore[arg-type]
        purpose="housing subsidy check",
        **options,  # type: ignore[arg-type]
    )


def _answered(node: NodeUnderTest, request_id: str) -> dict[str, object]:
    """The audit record that answered the comparison sent with ``request_id``."""
    (record,) = [
        r
        for r in audit_records(node)
        if r["request_id"] == request_id and r["action"] == "comparison"
        if r["outcome"] == "answered"
    ]
    return record


def test_an_application_is_pending_then_decided_as_the_sdk_s_own_values(
    node: NodeUnderTest, client: ComparisonClient
) -> None:
    application = _apply(client, ["id_number+name"], ["blinded"])
    assert application.status is ApplicationStatus.PENDING
    assert (application.department, application.resource_id) == (REQUESTER, RESOURCE)
    assert (application.comparison_keys, application.modes) == (("id_number+name",), ("blinded",))
    # Submitted Monday 2026-03-02: five Chinese working days later is Monday 2026-03-09.
    assert application.decision_deadline == dt.date(2026, 3, 9)
    assert application.submitted_at.tzinfo is not None
    assert abs(application.submitted_at - MONDAY) < dt.timedelta(minutes=5)
    assert application.grant is None and application.decided_at is None

    reason = "the duty does not need names"
    sharing.refuse(
        node.started.opened.audit, application.id, reason, operator=OPERATOR, now=CLOCK()
    )
    refused = client.application(application.id)
    assert (refused.status, refused.decision_reason, refused.grant) == (
        ApplicationStatus.REFUSED,
        reason,
        None,
    )
    assert refused.decided_at is not None and refused.decided_at.tzinfo is not None
    assert application.id in [a.id for a in client.applications(RESOURCE)]
    assert client.applications("residents") == []


def test_the_grant_is_what_the_operator_approved(grants: tuple[Grant, Grant]) -> None:
    by_id, by_name = grants
    assert (by_id.comparison_keys, set(by_id.modes), by_id.items_per_day) == (
        ("id_number",),
        {"hashed", "blinded"},
        100,
    )
    assert (by_name.modes, by_name.items_per_day) == (("hashed",), 5)
    assert by_id.valid_from == dt.date(2026, 3, 2) and by_id.valid_until == dt.date(2026, 12, 31)
    assert by_id.revoked_at is None


@pytest.mark.parametrize("mode", ["hashed", "blinded"])
def test_compare_under_the_grant_with_and_without_naming_it(
    node: NodeUnderTest, client: ComparisonClient, grants: tuple[Grant, Grant], mode: str
) -> None:
    by_id, _ = grants
    ids = [r[0] for r in node.residents[:2]] + [node.absent[0][0]]
    named = _compare(client, ids, mode=mode, grant_id=by_id.id)
    found = _compare(client, ids, mode=mode)  # the node finds the grant that covers it
    for result in (named, found):
        assert [r.is_match for r in result] == [True, True, False]
        assert _answered(node, result.request_id)["grant_id"] == by_id.id


def test_a_grant_id_that_does_not_cover_the_comparison_is_refused(
    node: NodeUnderTest, client: ComparisonClient, grants: tuple[Grant, Grant]
) -> None:
    by_id, by_name = grants
    ids = [node.residents[0][0]]
    with pytest.raises(PermissionDeniedError, match=f"'{by_name.id}' does not cover") as caught:
        _compare(client, ids, grant_id=by_name.id)  # a grant of this department, another key
    assert by_id.id in caught.value.message  # and the node says which grant would
    with pytest.raises(ResourceNotFoundError, match="no grant"):
        _compare(client, ids, grant_id=str(uuid.uuid4()))


def test_a_used_up_grant_day_is_raised_at_once_with_what_remains(
    node: NodeUnderTest, client: ComparisonClient, grants: tuple[Grant, Grant]
) -> None:
    _, by_name = grants
    records = [{"id_number": r[0], "name": r[1]} for r in node.residents[:3]]

    def compare(request_id: str) -> ComparisonResult:
        return client.compare(
            RESOURCE,
            records,
            key="id_number+name",
            mode="hashed",
            purpose="housing subsidy check",
            grant_id=by_name.id,
            request_id=request_id,
        )

    assert compare("day-1").matched_count == 3
    started = time.monotonic()
    with pytest.raises(QuotaExceededError) as caught:
        compare("day-2")  # 3 more do not fit in the 2 left of 5: refused whole
    assert time.monotonic() - started < 2  # not waited for
    message = caught.value.message
    assert f"grant {by_name.id} may compare 5 items per day" in message
    assert "2 remain" in message and "resets at 2026-03-03T00:00:00+08:00" in message
    refusals = [r for r in audit_records(node) if r["request_id"] == "day-2"]
    assert [r["status_code"] for r in refusals] == ["RESOURCE_EXHAUSTED"]  # sent once


def test_a_department_enrols_with_its_own_key_and_compares_as_itself(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    department = "luzhou-housing-bureau"
    key_path, csr_path = make_key_and_request(department, tmp_path / "housing")
    certificate = enrolment.sign(
        load_ca(node.directory / "pki"),
        csr_path.read_bytes(),
        node.started.opened.audit,
        operator=OPERATOR,
        now=dt.datetime.now(dt.UTC),  # TLS checks real time
    )
    cert_path = tmp_path / "housing" / f"{department}.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    credentials = Credentials.from_files(node.ca_cert, cert_path, key_path)
    assert credentials.department == department

    with ComparisonClient(node.target, credentials, timeout=30.0) as housing:
        result = _compare(housing, [node.residents[0][0]], resource="residents", mode="blinded")
        assert result.matched_count == 1
        with pytest.raises(PermissionDeniedError, match=f"department {department} .* no grant"):
            _compare(housing, [node.residents[0][0]])  # its grants are its own
    record = _answered(node, result.request_id)
    assert (record["requester"], record["cert_serial"], record["cert_fingerprint"]) == (
        department,
        serial_hex(certificate),
        certificate_fingerprint(certificate),
    )
    signing = [r for r in audit_records(node) if r["action"] == "certificate_signing"][-1]
    assert (signing["requester"], signing["cert_serial"]) == (OPERATOR, serial_hex(certificate))


def test_blinded_sessions_at_the_department_s_cap_are_waited_for(
    node: NodeUnderTest, client: ComparisonClient
) -> None:
    # Fill the department's share of open blinded sessions from another channel, then let one
    # finish a second later: the SDK's comparison waits for it instead of failing.
    cap = node.started.opened.config.node.max_open_sessions_per_department
    request = comparison_pb2.BlindEvaluateRequest(
        header=header(node, purpose="holding sessions open"),
        blinded_elements=valid_blinded(node, 1),
    )
    channel = node.channel()
    _, stub = node.stubs(channel)
    opened = [stub.BlindEvaluate(request).comparison_id for _ in range(cap)]

    def finish(comparison_id: str) -> None:
        stub.MatchBlinded(
            comparison_pb2.MatchBlindedRequest(comparison_id=comparison_id, outputs=[bytes(64)])
        )

    later = threading.Timer(1.0, finish, [opened.pop()])
    later.start()
    started = time.monotonic()
    try:
        result = _compare(client, [node.residents[0][0]], resource="residents", mode="blinded")
    finally:
        later.join()
        for comparison_id in opened:
            finish(comparison_id)
        channel.close()
    assert result.matched_count == 1
    assert time.monotonic() - started > 0.5
    refused = [r for r in audit_records(node) if r["request_id"] == result.request_id]
    assert "RESOURCE_EXHAUSTED" in [r["status_code"] for r in refused]


def test_apply_refusals_keep_the_node_s_words(client: ComparisonClient) -> None:
    with pytest.raises(InvalidRequestError, match="shared unconditionally"):
        client.apply(
            "residents",
            keys=["id_number"],
            modes=["hashed"],
            duty=DUTY,
            items_per_day=10,
            valid_until=dt.date(2026, 12, 31),
        )
    with pytest.raises(ResourceNotFoundError, match="no application"):
        client.application(str(uuid.uuid4()))


def test_a_deadline_past_the_node_s_calendar_is_provisional_never_a_refusal(
    client: ComparisonClient,
) -> None:
    # Monday 2026-12-28: five working days later falls in 2027, which the calendar does not know.
    CLOCK.set(dt.datetime(2026, 12, 28, 1, 0, tzinfo=dt.UTC))
    try:
        application = _apply(client, ["id_number"], ["hashed"])
    finally:
        CLOCK.set(MONDAY)
    # 29, 30, 31 December, (1 January: a fixed-date holiday), 4 and 5 January.
    assert application.decision_deadline == dt.date(2027, 1, 5)
    assert application.deadline_provisional
    assert client.application(application.id).deadline_provisional
