"""Behaviour of comparator.oprf: round trips, proofs refused, invalid elements refused, batching.

Known-answer tests are in test_oprf_vectors.py. Batches of 300 take the threaded path.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from comparator import group
from comparator.errors import (
    ComparatorError,
    DeserializeError,
    InvalidInputError,
    VerifyError,
)
from comparator.oprf import (
    ELEMENT_LENGTH,
    MAX_VERIFIABLE_BATCH,
    OUTPUT_LENGTH,
    PROOF_LENGTH,
    SCALAR_LENGTH,
    SUITE_ID,
    Evaluation,
    Mode,
    OprfClient,
    OprfServer,
    PoprfClient,
    PoprfServer,
    VoprfClient,
    VoprfServer,
    derive_key_pair,
    generate_key_pair,
)
from comparator.oprf import parallel as parallel

INFO = b"resource:residents/v1"
P_BYTES = (2**255 - 19).to_bytes(32, "little")
TOP_BIT = bytes(31) + b"\x80"
BAD_ELEMENTS = [
    pytest.param(bytes(32), "identity", id="identity"),
    pytest.param(P_BYTES, "canonical", id="field-prime"),
    pytest.param(TOP_BIT, "canonical", id="top-bit"),
    pytest.param(bytes(31), "32 bytes", id="len31"),
    pytest.param(bytes(33), "32 bytes", id="len33"),
    pytest.param(b"", "32 bytes", id="len0"),
]


def _inputs(n: int) -> list[bytes]:
    return [b"record-%d" % i for i in range(n)]


class Pair:
    """A client and server of one mode with the mode's extra argument hidden."""

    def __init__(self, mode: Mode, key: tuple[bytes, bytes] | None = None) -> None:
        sk, pk = key or generate_key_pair(mode)
        self.mode = mode
        self.extra: tuple[bytes, ...] = (INFO,) if mode == Mode.POPRF else ()
        self.server: Any
        self.client: Any
        if mode == Mode.OPRF:
            self.server, self.client = OprfServer(sk), OprfClient()
        elif mode == Mode.VOPRF:
            self.server, self.client = VoprfServer(sk), VoprfClient(pk)
        else:
            self.server, self.client = PoprfServer(sk), PoprfClient(pk)

    def blind(self, inputs: list[bytes]) -> Any:
        return self.client.blind(inputs, *self.extra)

    def blind_evaluate(self, blinded: list[bytes]) -> Evaluation:
        result: Evaluation = self.server.blind_evaluate(blinded, *self.extra)
        return result

    def finalize(self, state: Any, evaluation: Evaluation) -> list[bytes]:
        result: list[bytes] = self.client.finalize(state, evaluation, *self.extra)
        return result

    def evaluate(self, x: bytes) -> bytes:
        result: bytes = self.server.evaluate(x, *self.extra)
        return result

    def evaluate_batch(self, xs: list[bytes]) -> list[bytes]:
        result: list[bytes] = self.server.evaluate_batch(xs, *self.extra)
        return result

    def round_trip(self, inputs: list[bytes]) -> list[bytes]:
        blinded = self.blind(inputs)
        return self.finalize(blinded.state, self.blind_evaluate(blinded.message))


MODES = [pytest.param(m, id=m.name) for m in Mode]
VERIFIABLE = [pytest.param(m, id=m.name) for m in (Mode.VOPRF, Mode.POPRF)]


def test_constants() -> None:
    assert SUITE_ID == "ristretto255-SHA512"
    assert (ELEMENT_LENGTH, SCALAR_LENGTH, OUTPUT_LENGTH, PROOF_LENGTH) == (32, 32, 64, 64)
    assert [int(m) for m in Mode] == [0, 1, 2]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 300])
def test_round_trip_equals_server_evaluate(mode: Mode, n: int) -> None:
    pair = Pair(mode)
    inputs = _inputs(n)
    blinded = pair.blind(inputs)
    assert len(blinded.message) == n
    assert all(len(e) == ELEMENT_LENGTH for e in blinded.message)
    evaluation = pair.blind_evaluate(blinded.message)
    assert (evaluation.proof is None) == (mode == Mode.OPRF)
    if evaluation.proof is not None:
        assert len(evaluation.proof) == PROOF_LENGTH
    outputs = pair.finalize(blinded.state, evaluation)
    assert len(outputs) == n and all(len(o) == OUTPUT_LENGTH for o in outputs)
    assert len(set(outputs)) == n
    assert pair.evaluate_batch(inputs) == outputs
    assert [pair.evaluate(x) for x in inputs[:3]] == outputs[:3]


@pytest.mark.parametrize("mode", MODES)
def test_blinding_is_randomised_but_outputs_are_not(mode: Mode) -> None:
    pair = Pair(mode)
    a, b = pair.blind([b"x"]), pair.blind([b"x"])
    assert a.message != b.message
    assert pair.finalize(a.state, pair.blind_evaluate(a.message)) == pair.finalize(
        b.state, pair.blind_evaluate(b.message)
    )


def test_state_is_not_the_message_and_hides_blinds() -> None:
    blinded = OprfClient().blind([b"secret input"])
    assert "secret" not in repr(blinded.state)
    assert blinded.state.blinds[0].hex() not in repr(blinded.state)
    assert "private key" in repr(OprfServer(generate_key_pair(Mode.OPRF)[0]))


def test_modes_and_keys_give_different_outputs() -> None:
    seed = os.urandom(32)
    outs = {Pair(m, derive_key_pair(seed, b"k", m)).evaluate(b"x") for m in (Mode.OPRF, Mode.VOPRF)}
    assert len(outs) == 2
    assert Pair(Mode.OPRF).evaluate(b"x") != Pair(Mode.OPRF).evaluate(b"x")


def test_poprf_info_changes_output() -> None:
    sk, pk = generate_key_pair(Mode.POPRF)
    server, client = PoprfServer(sk), PoprfClient(pk)
    assert server.evaluate(b"x", b"a") != server.evaluate(b"x", b"b")
    blinded = client.blind([b"x"], b"a")
    evaluation = server.blind_evaluate(blinded.message, b"a")
    assert client.finalize(blinded.state, evaluation, b"a") == [server.evaluate(b"x", b"a")]
    with pytest.raises(InvalidInputError, match="info"):
        client.finalize(blinded.state, evaluation, b"b")
    # the server used other info than the client: the proof does not verify
    wrong = server.blind_evaluate(blinded.message, b"b")
    with pytest.raises(VerifyError):
        client.finalize(blinded.state, wrong, b"a")


@pytest.mark.parametrize("mode", VERIFIABLE)
def test_proof_under_another_key_refused(mode: Mode) -> None:
    pair, other = Pair(mode), Pair(mode)
    blinded = pair.blind(_inputs(3))
    with pytest.raises(VerifyError):
        pair.finalize(blinded.state, other.blind_evaluate(blinded.message))


@pytest.mark.parametrize("mode", VERIFIABLE)
@pytest.mark.parametrize("n", [1, 300])
def test_tampered_proof_refused(mode: Mode, n: int) -> None:
    pair = Pair(mode)
    blinded = pair.blind(_inputs(n))
    evaluation = pair.blind_evaluate(blinded.message)
    assert evaluation.proof is not None
    proof = evaluation.proof
    tampered = [
        proof[:5] + bytes([proof[5] ^ 1]) + proof[6:],  # c changed
        proof[:40] + bytes([proof[40] ^ 1]) + proof[41:],  # s changed
        proof[:32] + b"\xff" * 32,  # s non-canonical
        proof[:63],
        proof + b"\x00",
        b"",
    ]
    for bad in tampered:
        with pytest.raises(VerifyError):
            pair.finalize(blinded.state, Evaluation(evaluation.elements, bad))
    with pytest.raises(VerifyError):
        pair.finalize(blinded.state, Evaluation(evaluation.elements, None))


@pytest.mark.parametrize("mode", VERIFIABLE)
def test_swapped_or_tampered_evaluations_refused(mode: Mode) -> None:
    pair = Pair(mode)
    blinded = pair.blind(_inputs(4))
    evaluation = pair.blind_evaluate(blinded.message)
    elements = evaluation.elements
    swapped = [elements[1], elements[0], *elements[2:]]
    with pytest.raises(VerifyError):
        pair.finalize(blinded.state, Evaluation(swapped, evaluation.proof))
    other = group.base_mult(group.random_scalar())
    with pytest.raises(VerifyError):
        pair.finalize(blinded.state, Evaluation([*elements[:3], other], evaluation.proof))
    with pytest.raises(DeserializeError, match="evaluated element 2: identity"):
        pair.finalize(
            blinded.state, Evaluation([*elements[:2], bytes(32), elements[3]], evaluation.proof)
        )
    with pytest.raises(InvalidInputError, match="expected 4"):
        pair.finalize(blinded.state, Evaluation(elements[:3], evaluation.proof))


def test_oprf_client_swapped_evaluations_change_outputs() -> None:
    pair = Pair(Mode.OPRF)
    blinded = pair.blind(_inputs(2))
    evaluation = pair.blind_evaluate(blinded.message)
    swapped = Evaluation(evaluation.elements[::-1], None)
    assert pair.finalize(blinded.state, swapped) != pair.evaluate_batch(_inputs(2))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("bad", "reason"), BAD_ELEMENTS)
def test_blind_evaluate_refuses_invalid_elements(mode: Mode, bad: bytes, reason: str) -> None:
    pair = Pair(mode)
    good = pair.blind(_inputs(5)).message
    with pytest.raises(DeserializeError, match=f"blinded element 3: .*{reason}"):
        pair.blind_evaluate([*good[:3], bad, good[4]])


@pytest.mark.parametrize(("bad", "reason"), BAD_ELEMENTS)
def test_oprf_finalize_refuses_invalid_elements(bad: bytes, reason: str) -> None:
    pair = Pair(Mode.OPRF)
    blinded = pair.blind(_inputs(2))
    with pytest.raises(DeserializeError, match=f"evaluated element 1: .*{reason}"):
        pair.finalize(blinded.state, Evaluation([blinded.message[0], bad], None))


def test_first_bad_element_is_reported_in_threaded_batches() -> None:
    pair = Pair(Mode.VOPRF)
    blinded = list(pair.blind(_inputs(300)).message)
    blinded[250] = P_BYTES
    blinded[170] = bytes(32)
    with pytest.raises(DeserializeError, match="blinded element 170: identity"):
        pair.blind_evaluate(blinded)


def test_wrong_types_and_empty_batches_refused() -> None:
    pair = Pair(Mode.OPRF)
    with pytest.raises(TypeError):
        pair.server.blind_evaluate(bytes(32))
    with pytest.raises(DeserializeError, match="blinded element 0"):
        pair.server.blind_evaluate([123])
    with pytest.raises(InvalidInputError, match="empty"):
        pair.server.blind_evaluate([])
    with pytest.raises(InvalidInputError, match="empty"):
        pair.client.blind([])
    with pytest.raises(InvalidInputError, match="longer"):
        pair.client.blind([bytes(70000)])
    assert pair.server.evaluate_batch([]) == []


@pytest.mark.parametrize("mode", VERIFIABLE)
def test_verifiable_batch_limit(mode: Mode) -> None:
    pair = Pair(mode)
    too_many = [group.GENERATOR] * (MAX_VERIFIABLE_BATCH + 1)
    with pytest.raises(InvalidInputError, match="at most"):
        pair.blind_evaluate(too_many)


@pytest.mark.parametrize(
    "key",
    [
        bytes(32),
        group.ORDER.to_bytes(32, "little"),
        b"\xff" * 32,
        bytes(31),
        bytes(33),
    ],
    ids=["zero", "order", "all-ff", "len31", "len33"],
)
@pytest.mark.parametrize("cls", [OprfServer, VoprfServer, PoprfServer])
def test_private_key_out_of_range_refused(cls: Callable[[bytes], object], key: bytes) -> None:
    with pytest.raises(DeserializeError):
        cls(key)


@pytest.mark.parametrize(("bad", "reason"), BAD_ELEMENTS)
@pytest.mark.parametrize("cls", [VoprfClient, PoprfClient])
def test_public_key_invalid_refused(
    cls: Callable[[bytes], object], bad: bytes, reason: str
) -> None:
    with pytest.raises(DeserializeError, match=reason):
        cls(bad)


def test_derive_key_pair() -> None:
    seed = b"\xa3" * 32
    sk, pk = derive_key_pair(seed, b"info", Mode.VOPRF)
    assert (sk, pk) == derive_key_pair(seed, b"info", Mode.VOPRF)
    assert sk != derive_key_pair(seed, b"info", Mode.POPRF)[0]
    assert sk != derive_key_pair(seed, b"other", Mode.VOPRF)[0]
    assert pk == group.base_mult(sk)
    assert VoprfServer(sk).public_key == pk
    with pytest.raises(InvalidInputError, match="seed"):
        derive_key_pair(b"short", b"", Mode.OPRF)


def test_injected_rng_gives_repeatable_blinds() -> None:
    def rng(n: int) -> bytes:
        return b"\x07" * n

    a = OprfClient(rng=rng).blind([b"x"])
    b = OprfClient(rng=rng).blind([b"x"])
    assert a.message == b.message


def test_concurrent_callers_share_the_pool() -> None:
    pair = Pair(Mode.OPRF)
    inputs = _inputs(200)
    expected = pair.evaluate_batch(inputs)
    results: list[list[bytes]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(pair.round_trip(inputs))
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [expected] * 4


def test_split_ranges() -> None:
    assert parallel.split_ranges(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert parallel.split_ranges(1, 4) == [(0, 1)]
    assert parallel.split_ranges(0, 2) == [(0, 0)]


def test_errors_are_comparator_errors() -> None:
    assert issubclass(DeserializeError, ComparatorError)
    assert issubclass(VerifyError, ComparatorError)
