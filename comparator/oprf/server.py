"""RFC 9497 servers: OprfServer, VoprfServer, PoprfServer (ristretto255-SHA512).

The mode is fixed by the class. Each server holds one private key skS and offers

* ``blind_evaluate(blinded)`` -> Evaluation: k * each blinded element (+ one batch proof in the
  verifiable modes). Every blinded element is validated; the first bad one raises DeserializeError
  naming its position ("blinded element 3: ...").
* ``evaluate(input)`` / ``evaluate_batch(inputs)``: the RFC's unblinded Evaluate, the PRF output the
  client's finalize gives for the same input. The provider builds its match index with it.

POPRF methods take one more argument, the public ``info``; the server then uses the tweaked key
t = skS + HashToScalar(framedInfo) and evaluates with t^-1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import ClassVar

from comparator import group
from comparator.errors import InvalidInputElementError, InvalidInputError, InverseError
from comparator.oprf import dleq, parallel
from comparator.oprf.suite import (
    MAX_VERIFIABLE_BATCH,
    SUITES,
    Evaluation,
    Mode,
    check_info,
    check_inputs,
    finalize_outputs,
    framed_info,
)


class _Server:
    _mode: ClassVar[Mode]

    def __init__(self, private_key: bytes, *, rng: group.RandomSource = os.urandom) -> None:
        """``private_key``: skS, 32 bytes, canonical, non-zero (DeserializeError otherwise).

        ``rng`` supplies proof nonces (default os.urandom); never pass a predictable source.
        """
        self._suite = SUITES[self._mode]
        self._sk = group.deserialize_scalar(private_key, nonzero=True)
        self._rng = rng

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(<private key>)"

    @property
    def mode(self) -> Mode:
        return self._mode

    def _check_blinded(self, blinded: Sequence[bytes]) -> list[bytes]:
        if isinstance(blinded, bytes | bytearray | memoryview | str):
            raise TypeError("blinded must be a sequence of elements, not a single value")
        items = list(blinded)
        if not items:
            raise InvalidInputError("empty batch: no blinded elements")
        if self._mode != Mode.OPRF and len(items) > MAX_VERIFIABLE_BATCH:
            raise InvalidInputError(
                f"batch of {len(items)} blinded elements: one proof covers at most "
                f"{MAX_VERIFIABLE_BATCH}; split the batch"
            )
        return items

    def _multiply_blinded(self, k: bytes, blinded: list[bytes]) -> list[bytes]:
        # evaluatedElement = k * blindedElement, each blinded element deserialized and validated
        def chunk(start: int, stop: int) -> list[bytes]:
            return group.scalar_mult_batch(
                k, blinded[start:stop], validate=True, start=start, what="blinded element"
            )

        return parallel.concat(parallel.map_ranges(chunk, len(blinded)))

    def _evaluate_inputs(self, k: bytes, inputs: list[bytes], info: bytes | None) -> list[bytes]:
        expander = self._suite.group_expander

        def chunk(start: int, stop: int) -> list[bytes]:
            part = inputs[start:stop]
            elements = group.hash_to_group_batch(part, expander)  # G.HashToGroup(input)
            if group.IDENTITY in elements:  # if inputElement == G.Identity(): raise
                i = start + elements.index(group.IDENTITY)
                raise InvalidInputElementError(f"input {i}: hashes to the identity element")
            evaluated = group.scalar_mult_batch(k, elements)  # evaluatedElement = k * inputElement
            return finalize_outputs(part, evaluated, info)  # Hash(hashInput)

        return parallel.concat(parallel.map_ranges(chunk, len(inputs)))


class _KeyedServer(_Server):
    def __init__(self, private_key: bytes, *, rng: group.RandomSource = os.urandom) -> None:
        super().__init__(private_key, rng=rng)
        self._pk = group.base_mult(self._sk)

    @property
    def public_key(self) -> bytes:
        """pkS = skS * G, published so that clients can verify proofs."""
        return self._pk


class OprfServer(_Server):
    """RFC 9497 OPRF mode (0x00) server: no proofs."""

    _mode = Mode.OPRF

    def blind_evaluate(self, blinded: Sequence[bytes]) -> Evaluation:
        return Evaluation(self._multiply_blinded(self._sk, self._check_blinded(blinded)), None)

    def evaluate(self, input: bytes) -> bytes:
        return self._evaluate_inputs(self._sk, check_inputs([input]), None)[0]

    def evaluate_batch(self, inputs: Sequence[bytes]) -> list[bytes]:
        return self._evaluate_inputs(self._sk, check_inputs(inputs), None)


class VoprfServer(_KeyedServer):
    """RFC 9497 VOPRF mode (0x01) server: one DLEQ proof per batch that pkS's key was used."""

    _mode = Mode.VOPRF

    def blind_evaluate(self, blinded: Sequence[bytes]) -> Evaluation:
        return self._blind_evaluate(blinded)

    def _blind_evaluate(self, blinded: Sequence[bytes], _test_r: bytes | None = None) -> Evaluation:
        items = self._check_blinded(blinded)
        evaluated = self._multiply_blinded(self._sk, items)
        # proof = GenerateProof(skS, G.Generator(), pkS, blindedElements, evaluatedElements)
        proof = dleq.generate_proof(
            self._suite, self._sk, group.GENERATOR, self._pk, items, evaluated,
            rng=self._rng, _test_r=_test_r,
        )  # fmt: skip
        return Evaluation(evaluated, proof)

    def evaluate(self, input: bytes) -> bytes:
        return self._evaluate_inputs(self._sk, check_inputs([input]), None)[0]

    def evaluate_batch(self, inputs: Sequence[bytes]) -> list[bytes]:
        return self._evaluate_inputs(self._sk, check_inputs(inputs), None)


class PoprfServer(_KeyedServer):
    """RFC 9497 POPRF mode (0x02) server: public ``info`` tweaks the key; proofs as in VOPRF."""

    _mode = Mode.POPRF

    def _tweak(self, info: bytes) -> bytes:
        # m = G.HashToScalar(framedInfo)
        m = self._suite.hash_to_scalar(framed_info(check_info(info)))
        t = group.scalar_add(self._sk, m)  # t = skS + m
        if t == group.ZERO_SCALAR:  # if t == 0: raise InverseError
            raise InverseError("the key tweaked by this info is zero")
        return t

    def blind_evaluate(self, blinded: Sequence[bytes], info: bytes) -> Evaluation:
        return self._blind_evaluate(blinded, info)

    def _blind_evaluate(
        self, blinded: Sequence[bytes], info: bytes, _test_r: bytes | None = None
    ) -> Evaluation:
        items = self._check_blinded(blinded)
        t = self._tweak(info)
        # evaluatedElement = G.ScalarInverse(t) * blindedElement
        evaluated = self._multiply_blinded(group.scalar_invert(t), items)
        tweaked_key = group.base_mult(t)  # tweakedKey = G.ScalarMultGen(t)
        # proof = GenerateProof(t, G.Generator(), tweakedKey, evaluatedElements, blindedElements)
        proof = dleq.generate_proof(
            self._suite, t, group.GENERATOR, tweaked_key, evaluated, items,
            rng=self._rng, _test_r=_test_r,
        )  # fmt: skip
        return Evaluation(evaluated, proof)

    def evaluate(self, input: bytes, info: bytes) -> bytes:
        return self.evaluate_batch([input], info)[0]

    def evaluate_batch(self, inputs: Sequence[bytes], info: bytes) -> list[bytes]:
        info = check_info(info)
        t_inv = group.scalar_invert(self._tweak(info))
        # evaluatedElement = G.ScalarInverse(t) * inputElement; hashInput includes info
        return self._evaluate_inputs(t_inv, check_inputs(inputs), info)
