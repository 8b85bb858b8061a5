"""A rolling restart of the node costs the requester time, never a failed comparison: the SDK
waits for the node within each request's deadline (issue 8 item 2). So does a node whose blinded
sessions for the department are at their cap; a used-up quota is reported at once.

The node here is ``fake_node.FakeNode``: grpc's own mutual TLS on a loopback port, stopped and
started again on the same port while the client is retrying.
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from client_sdk import ComparisonClient, QuotaExceededError, RetryPolicy, ServiceUnavailableError
from tests.client_sdk.conftest import ABSENT, PRESENT, Pki
from tests.client_sdk.fake_node import KEY, RESOURCE, FakeNode

# Quick backoff so that a test waits for the node, not for the policy.
_QUICK = RetryPolicy(retries=30, initial_backoff=0.05, max_backoff=0.3)
_RECORDS = [{KEY: i} for i in PRESENT[:5] + ABSENT[:5]]
_EXPECTED = [True] * 5 + [False] * 5


def _client(pki: Pki, node: FakeNode, timeout: float = 20.0) -> ComparisonClient:
    return ComparisonClient(node.target, pki.credentials(), timeout=timeout, retries=_QUICK)


def _compare(client: ComparisonClient, mode: str) -> list[bool]:
    result = client.compare(RESOURCE, _RECORDS, key=KEY, mode=mode, purpose="restart test")  # type: ignore[arg-type]
    return [record.is_match for record in result]


@pytest.mark.parametrize("mode", ["hashed", "blinded"])
def test_a_node_down_between_comparisons(pki: Pki, fake_node: FakeNode, mode: str) -> None:
    with _client(pki, fake_node) as client:
        assert _compare(client, mode) == _EXPECTED
        restart = fake_node.restart_later(down_for=1.0)
        time.sleep(0.1)  # the node is down when the next comparison starts
        started = time.monotonic()
        assert _compare(client, mode) == _EXPECTED
        assert 0.5 < time.monotonic() - started < 10
        restart.join()


@pytest.mark.parametrize("mode", ["hashed", "blinded"])
def test_a_node_stopped_under_a_call(pki: Pki, fake_node: FakeNode, mode: str) -> None:
    # The call is in the handler when the node stops without grace ("Cancelling all calls").
    method = "CompareHashed" if mode == "hashed" else "BlindEvaluate"
    in_handler = threading.Event()

    def hold() -> None:
        if fake_node.calls[method] == 1:
            in_handler.set()
            time.sleep(0.5)

    fake_node.hooks[method] = hold
    with _client(pki, fake_node) as client:
        threading.Thread(
            target=lambda: (in_handler.wait(5), fake_node.restart_later(down_for=0.5))
        ).start()
        assert _compare(client, mode) == _EXPECTED
    assert fake_node.calls[method] >= 2


def test_a_graceful_stop_lets_the_call_in_flight_finish(pki: Pki, fake_node: FakeNode) -> None:
    in_handler = threading.Event()

    def hold() -> None:
        if fake_node.calls["CompareHashed"] == 1:
            in_handler.set()
            time.sleep(0.5)

    fake_node.hooks["CompareHashed"] = hold
    with _client(pki, fake_node) as client:
        client.describe(RESOURCE)

        def restart_once_in_handler() -> None:
            in_handler.wait(5)
            fake_node.restart_later(1.0, grace=2.0).join()

        restart = threading.Thread(target=restart_once_in_handler)
        restart.start()
        assert _compare(client, "hashed") == _EXPECTED  # answered by the stopping node
        assert _compare(client, "hashed") == _EXPECTED  # waits for the restarted one
        restart.join()
    assert fake_node.calls["CompareHashed"] == 2


def test_blinded_session_lost_with_its_node_starts_again_with_fresh_blinds(
    pki: Pki, fake_node: FakeNode
) -> None:
    # The node restarts between BlindEvaluate and MatchBlinded: the new process holds no
    # session (FAILED_PRECONDITION) or is not up yet (UNAVAILABLE). Either way the chunk starts
    # again from BlindEvaluate, blinding afresh.
    restarted = threading.Event()

    def restart_after_evaluating() -> None:
        if not restarted.is_set():
            restarted.set()
            fake_node.restart_later(0.3)
            time.sleep(0.2)  # the node stops under this call: its answer never leaves

    fake_node.hooks["MatchBlinded"] = restart_after_evaluating
    with _client(pki, fake_node) as client:
        assert _compare(client, "blinded") == _EXPECTED
    assert fake_node.calls["BlindEvaluate"] >= 2
    first, last = fake_node.blinded_seen[0], fake_node.blinded_seen[-1]
    assert len(first) == len(last) == len(_RECORDS)
    assert not set(first) & set(last)  # no blinded element was sent twice


def test_a_lost_session_alone_starts_the_chunk_again(pki: Pki, fake_node: FakeNode) -> None:
    def forget_once() -> None:
        if fake_node.calls["MatchBlinded"] == 1:
            fake_node.forget_sessions()

    fake_node.hooks["MatchBlinded"] = forget_once
    with _client(pki, fake_node) as client:
        assert _compare(client, "blinded") == _EXPECTED
    assert fake_node.calls["BlindEvaluate"] == 2
    assert fake_node.calls["MatchBlinded"] == 2


def test_a_node_away_longer_than_the_deadline(pki: Pki, fake_node: FakeNode) -> None:
    with _client(pki, fake_node, timeout=1.5) as client:
        client.describe(RESOURCE)
        fake_node.stop()
        started = time.monotonic()
        with pytest.raises(ServiceUnavailableError, match="Connection refused"):
            _compare(client, "hashed")
        assert time.monotonic() - started < 3


# The node's words (provider_node.comparison.sessions; test_node_refusals keeps them).
_SESSIONS_FULL = (
    "your department has 16 blinded comparisons open on this node, its limit: finish them "
    "(MatchBlinded) or retry after they expire"
)


def test_a_node_busy_with_the_department_s_blinded_comparisons_is_waited_for(
    pki: Pki, fake_node: FakeNode
) -> None:
    full = (grpc.StatusCode.RESOURCE_EXHAUSTED, _SESSIONS_FULL)
    fake_node.refusals["BlindEvaluate"] = [full, full]
    with _client(pki, fake_node) as client:
        assert _compare(client, "blinded") == _EXPECTED
    assert (fake_node.calls["BlindEvaluate"], fake_node.calls["MatchBlinded"]) == (3, 1)
    first, *retries = fake_node.blinded_seen
    assert all(set(first).isdisjoint(again) for again in retries)  # fresh blinds every time


def test_a_used_up_quota_is_not_waited_for(pki: Pki, fake_node: FakeNode) -> None:
    words = "grant g may compare 5 items per day (China time); 2 remain in this day"
    fake_node.refusals["CompareHashed"] = [(grpc.StatusCode.RESOURCE_EXHAUSTED, words)]
    with _client(pki, fake_node) as client, pytest.raises(QuotaExceededError) as caught:
        _compare(client, "hashed")
    assert caught.value.message == f"CompareHashed: {words}"
    assert fake_node.calls["CompareHashed"] == 1
