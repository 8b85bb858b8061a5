"""The client's pieces that need no server: chunking, the catalog entry -> comparison key,
request ids, retries with backoff on a fake clock, and checking the node's match bits.

End-to-end comparisons against a real node over mTLS are in tests/integration/.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import grpc
import pytest

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import comparison_pb2 as _comparison_pb2
from client_sdk.client import (
    RetryPolicy,
    RpcFailure,
    call_with_retries,
    channel_options,
    check_request_id,
    chunk_ranges,
    comparison_key_for,
    match_bits,
)
from client_sdk.errors import (
    AuthenticationError,
    DeadlineExceededError,
    InvalidRequestError,
    PermissionDeniedError,
    ServiceError,
    ServiceUnavailableError,
)

# -- chunking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "size", "expected"),
    [
        (0, 10, []),
        (1, 10, [(0, 1)]),
        (10, 10, [(0, 10)]),
        (11, 10, [(0, 10), (10, 11)]),
        (25, 10, [(0, 10), (10, 20), (20, 25)]),
        (3, 1, [(0, 1), (1, 2), (2, 3)]),
    ],
)
def test_chunk_ranges(count: int, size: int, expected: list[tuple[int, int]]) -> None:
    chunks = chunk_ranges(count, size)
    assert [(c.start, c.stop) for c in chunks] == expected
    assert [i for c in chunks for i in c] == list(range(count))


def test_chunk_ranges_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        chunk_ranges(10, 0)
    with pytest.raises(ValueError):
        chunk_ranges(-1, 10)


# -- catalog entry -> comparison key ------------------------------------------------------------


def _residents(**overrides: object) -> _catalog_pb2.Resource:
    resource = _catalog_pb2.Resource(
        id="residents",
        fields=[
            _catalog_pb2.Field(name="id_number", type="cn_resident_id"),
            _catalog_pb2.Field(name="name", type="person_name"),
            _catalog_pb2.Field(name="birth_date", type="date"),
        ],
        comparison_keys=[
            _catalog_pb2.ComparisonKey(name="id_number", fields=["id_number"]),
            _catalog_pb2.ComparisonKey(name="id_number+name", fields=["id_number", "name"]),
        ],
        modes=[_catalog_pb2.MODE_HASHED, _catalog_pb2.MODE_BLINDED],
        key_version=3,
    )
    for name, value in overrides.items():
        if isinstance(value, list):
            field = getattr(resource, name)
            del field[:]
            field.extend(value)
        else:
            setattr(resource, name, value)
    return resource


def test_comparison_key_from_the_catalog_entry() -> None:
    key = comparison_key_for(_residents(), "id_number+name", "blinded")
    assert key.name == "id_number+name"
    assert [(f.name, str(f.type)) for f in key.fields] == [
        ("id_number", "cn_resident_id"),
        ("name", "person_name"),
    ]


def test_unknown_key_lists_the_offered_ones() -> None:
    with pytest.raises(InvalidRequestError, match="no comparison key 'name'") as caught:
        comparison_key_for(_residents(), "name")
    assert "'id_number', 'id_number+name'" in str(caught.value)


def test_mode_not_offered() -> None:
    resource = _residents(modes=[_catalog_pb2.MODE_BLINDED])
    with pytest.raises(InvalidRequestError, match="does not offer hashed mode; it offers: blinded"):
        comparison_key_for(resource, "id_number", "hashed")
    assert comparison_key_for(resource, "id_number", "blinded").name == "id_number"


def test_unknown_mode() -> None:
    with pytest.raises(InvalidRequestError, match="mode must be"):
        comparison_key_for(_residents(), "id_number", "plain")  # type: ignore[arg-type]


def test_inconsistent_catalog_entry_is_the_node_s_fault() -> None:
    resource = _residents(
        comparison_keys=[_catalog_pb2.ComparisonKey(name="k", fields=["missing_field"])]
    )
    with pytest.raises(ServiceError, match="cannot use"):
        comparison_key_for(resource, "k")
    resource = _residents(fields=[_catalog_pb2.Field(name="id_number", type="blood_type")])
    with pytest.raises(ServiceError, match="cannot use"):
        comparison_key_for(resource, "id_number")


# -- request ids ---------------------------------------------------------------------------------


def test_request_id_is_generated_or_checked() -> None:
    generated = check_request_id(None)
    assert len(generated) == 32 and generated != check_request_id(None)
    assert check_request_id("batch-2024-07/civil") == "batch-2024-07/civil"
    for bad in ["", "has space", "x" * 65, "中文"]:
        with pytest.raises(InvalidRequestError):
            check_request_id(bad)


# -- retries -------------------------------------------------------------------------------------


class _FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _failing(
    codes: list[grpc.StatusCode], time: _FakeTime, cost: float = 0.0
) -> tuple[Callable[[float], str], list[float]]:
    calls: list[float] = []

    def attempt(deadline: float) -> str:
        calls.append(deadline)
        time.now += cost
        if len(calls) <= len(codes):
            raise RpcFailure(codes[len(calls) - 1], "node restarting", "CompareHashed")
        return "answer"

    return attempt, calls


def test_unavailable_is_retried_with_growing_backoff() -> None:
    time = _FakeTime()
    attempt, calls = _failing([grpc.StatusCode.UNAVAILABLE] * 3, time)
    policy = RetryPolicy(retries=4, initial_backoff=0.2, max_backoff=0.5, multiplier=2.0)
    result = call_with_retries(
        attempt,
        deadline=160.0,
        policy=policy,
        clock=time.clock,
        sleep=time.sleep,
        rng=random.Random(1),
    )
    assert result == "answer"
    assert len(calls) == 4
    assert calls == [160.0] * 4  # every attempt shares the one deadline
    # backoff 0.2, 0.4, 0.5 (capped), each scaled by a jitter factor in [0.5, 1]
    for pause, base in zip(time.sleeps, [0.2, 0.4, 0.5], strict=True):
        assert base * 0.5 <= pause <= base


def test_retries_give_up_with_service_unavailable() -> None:
    time = _FakeTime()
    attempt, calls = _failing([grpc.StatusCode.UNAVAILABLE] * 10, time)
    with pytest.raises(ServiceUnavailableError, match="after 3 attempts") as caught:
        call_with_retries(
            attempt,
            deadline=1000.0,
            policy=RetryPolicy(retries=2),
            clock=time.clock,
            sleep=time.sleep,
        )
    assert len(calls) == 3
    assert "CompareHashed: node restarting" in str(caught.value)


def test_retries_stop_at_the_deadline() -> None:
    time = _FakeTime()
    attempt, calls = _failing([grpc.StatusCode.UNAVAILABLE] * 10, time, cost=1.0)
    with pytest.raises(ServiceUnavailableError):
        call_with_retries(
            attempt,
            deadline=103.0,
            policy=RetryPolicy(retries=100, initial_backoff=0.5, max_backoff=0.5),
            clock=time.clock,
            sleep=time.sleep,
        )
    assert time.now <= 103.0 + 1.0
    assert 1 < len(calls) < 5


def test_deadline_already_passed() -> None:
    time = _FakeTime()
    attempt, calls = _failing([], time)
    with pytest.raises(DeadlineExceededError):
        call_with_retries(
            attempt, deadline=99.0, policy=RetryPolicy(), clock=time.clock, sleep=time.sleep
        )
    assert calls == []


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidRequestError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
        (grpc.StatusCode.INTERNAL, ServiceError),
    ],
)
def test_other_failures_are_not_retried(code: grpc.StatusCode, cls: type[Exception]) -> None:
    time = _FakeTime()
    attempt, calls = _failing([code], time)
    with pytest.raises(cls):
        call_with_retries(
            attempt, deadline=200.0, policy=RetryPolicy(), clock=time.clock, sleep=time.sleep
        )
    assert len(calls) == 1
    assert time.sleeps == []


def test_tls_handshake_failure_is_not_retried() -> None:
    time = _FakeTime()
    calls: list[float] = []

    def attempt(deadline: float) -> None:
        calls.append(deadline)
        raise RpcFailure(
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses; last error: Tls handshake failed",
            "DescribeResource",
        )

    with pytest.raises(AuthenticationError):
        call_with_retries(
            attempt, deadline=200.0, policy=RetryPolicy(), clock=time.clock, sleep=time.sleep
        )
    assert len(calls) == 1


def test_retry_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(multiplier=0.5)
    assert RetryPolicy(initial_backoff=1, max_backoff=3).backoff(5) == 3


# -- the node's answer --------------------------------------------------------------------------


def test_match_bits_are_unpacked_least_significant_first() -> None:
    result = _comparison_pb2.MatchResult(
        match_bits=bytes([0b0000_0101, 0b1]), item_count=9, match_count=3, comparison_id="c"
    )
    assert match_bits(result, 9).tolist() == [
        True,
        False,
        True,
        False,
        False,
        False,
        False,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("bits", "item_count", "match_count"),
    [
        (b"\x01", 8, 1),  # answered for 8 items, 9 sent
        (b"\x01", 9, 1),  # one byte for nine items
        (b"\x01\x00\x00", 9, 1),  # three bytes
        (b"\x01\x01", 9, 1),  # match count disagrees
    ],
)
def test_malformed_answers_are_refused(bits: bytes, item_count: int, match_count: int) -> None:
    result = _comparison_pb2.MatchResult(
        match_bits=bits, item_count=item_count, match_count=match_count
    )
    with pytest.raises(ServiceError):
        match_bits(result, 9)


def test_channel_options_fit_the_batch() -> None:
    options = dict(channel_options(100_000, "node.example"))
    assert options["grpc.max_receive_message_length"] == 64 * 1024 * 1024
    assert options["grpc.max_send_message_length"] >= 100_000 * 64
    assert options["grpc.ssl_target_name_override"] == "node.example"
    assert "grpc.ssl_target_name_override" not in dict(channel_options(10))
