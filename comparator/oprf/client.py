"""RFC 9497 clients: OprfClient, VoprfClient, PoprfClient (ristretto255-SHA512).

``blind(inputs)`` returns BlindResult(state, message): ``message`` (the blinded elements) goes to
the server, ``state`` (inputs and blinds) stays here and is handed to ``finalize(state,
evaluation)``, which checks the batch proof (VOPRF, POPRF), unblinds every evaluated element with
one batch inversion, and returns the 64-byte PRF outputs in input order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import ClassVar

from comparator import group
from comparator.errors import InvalidInputElementError, InvalidInputError
from comparator.oprf import dleq, parallel
from comparator.oprf.suite import (
    MAX_VERIFIABLE_BATCH,
    SUITES,
    BlindResult,
    ClientState,
    Evaluation,
    Mode,
    check_info,
    check_inputs,
    finalize_outputs,
    framed_info,
)


class _Client:
    _mode: ClassVar[Mode]

    def __init__(self, *, rng: group.RandomSource = os.urandom) -> None:
        self._suite = SUITES[self._mode]
        self._rng = rng

    def _blind_inputs(
        self, inputs: Sequence[bytes], blinds: Sequence[bytes] | None
    ) -> tuple[list[bytes], list[bytes], list[bytes]]:
        items = check_inputs(inputs)
        if not items:
            raise InvalidInputError("empty batch: no inputs")
        n = len(items)
        if self._mode != Mode.OPRF and n > MAX_VERIFIABLE_BATCH:
            raise InvalidInputError(
                f"batch of {n} inputs: one proof covers at most {MAX_VERIFIABLE_BATCH}; split it"
            )
        if blinds is None:
            chosen = group.random_scalars(n, self._rng)  # blind = G.RandomScalar()
        else:  # test-only path (comparator.oprf._testing)
            if len(blinds) != n:
                raise InvalidInputError("one blind per input is required")
            chosen = [group.deserialize_scalar(b, nonzero=True) for b in blinds]
        expander = self._suite.group_expander

        def chunk(start: int, stop: int) -> list[bytes]:
            elements = group.hash_to_group_batch(items[start:stop], expander)
            # if inputElement == G.Identity(): raise InvalidInputError
            if group.IDENTITY in elements:
                i = start + elements.index(group.IDENTITY)
                raise InvalidInputElementError(f"input {i}: hashes to the identity element")
            # blindedElement = blind * inputElement
            return group.scalar_mult_batch(chosen[start:stop], elements)

        return items, chosen, parallel.concat(parallel.map_ranges(chunk, n))

    def _check_evaluation(self, state: ClientState, evaluation: Evaluation) -> list[bytes]:
        if not isinstance(state, ClientState) or state.mode != self._mode:
            raise TypeError(f"state must come from this kind of client's blind ({self._mode.name})")
        elements = group.bytes_list(evaluation.elements)
        if len(elements) != len(state):
            raise InvalidInputError(
                f"expected {len(state)} evaluated elements, got {len(elements)}"
            )
        return elements

    @staticmethod
    def _unblind(
        state: ClientState, evaluated: list[bytes], validate: bool, info: bytes | None
    ) -> list[bytes]:
        def chunk(start: int, stop: int) -> list[bytes]:
            inverses = group.batch_invert(state.blinds[start:stop])  # G.ScalarInverse(blind)
            # N = G.ScalarInverse(blind) * evaluatedElement
            unblinded = group.scalar_mult_batch(
                inverses, evaluated[start:stop], validate=validate, start=start,
                what="evaluated element",
            )  # fmt: skip
            return finalize_outputs(state.inputs[start:stop], unblinded, info)  # Hash(hashInput)

        return parallel.concat(parallel.map_ranges(chunk, len(evaluated)))


class OprfClient(_Client):
    """RFC 9497 OPRF mode (0x00) client: outputs are not verifiable."""

    _mode = Mode.OPRF

    def __init__(self, *, rng: group.RandomSource = os.urandom) -> None:
        """``rng`` supplies blinds (default os.urandom); never pass a predictable source."""
        super().__init__(rng=rng)

    def blind(self, inputs: Sequence[bytes]) -> BlindResult:
        return self._blind(inputs)

    def _blind(
        self, inputs: Sequence[bytes], _test_blinds: Sequence[bytes] | None = None
    ) -> BlindResult:
        items, blinds, blinded = self._blind_inputs(inputs, _test_blinds)
        return BlindResult(ClientState(self._mode, items, blinds, blinded), blinded)

    def finalize(self, state: ClientState, evaluation: Evaluation) -> list[bytes]:
        evaluated = self._check_evaluation(state, evaluation)
        return self._unblind(state, evaluated, True, None)


class _VerifiableClient(_Client):
    """What the VOPRF and POPRF clients share: the server's public key, checked once."""

    def __init__(self, public_key: bytes, *, rng: group.RandomSource = os.urandom) -> None:
        """``public_key``: the server's pkS (DeserializeError if invalid or the identity)."""
        super().__init__(rng=rng)
        self._pk = group.deserialize_element(public_key)

    @property
    def public_key(self) -> bytes:
        return self._pk


class VoprfClient(_VerifiableClient):
    """RFC 9497 VOPRF mode (0x01) client: checks the batch proof against the server's pkS."""

    _mode = Mode.VOPRF

    def blind(self, inputs: Sequence[bytes]) -> BlindResult:
        return self._blind(inputs)

    def _blind(
        self, inputs: Sequence[bytes], _test_blinds: Sequence[bytes] | None = None
    ) -> BlindResult:
        items, blinds, blinded = self._blind_inputs(inputs, _test_blinds)
        return BlindResult(ClientState(self._mode, items, blinds, blinded), blinded)

    def finalize(self, state: ClientState, evaluation: Evaluation) -> list[bytes]:
        evaluated = self._check_evaluation(state, evaluation)
        # if VerifyProof(G.Generator(), pkS, blindedElements, evaluatedElements, proof) == false:
        #   raise VerifyError
        dleq.verify_proof(
            self._suite, group.GENERATOR, self._pk, state.blinded_elements, evaluated,
            evaluation.proof, check_d="evaluated element",
        )  # fmt: skip
        return self._unblind(state, evaluated, False, None)  # validated by verify_proof


class PoprfClient(_VerifiableClient):
    """RFC 9497 POPRF mode (0x02) client: public ``info`` is bound into the output and the proof."""

    _mode = Mode.POPRF

    def blind(self, inputs: Sequence[bytes], info: bytes) -> BlindResult:
        return self._blind(inputs, info)

    def _blind(
        self, inputs: Sequence[bytes], info: bytes, _test_blinds: Sequence[bytes] | None = None
    ) -> BlindResult:
        info = check_info(info)
        m = self._suite.hash_to_scalar(framed_info(info))  # m = G.HashToScalar(framedInfo)
        t = group.base_mult(m)  # T = G.ScalarMultGen(m)
        tweaked_key = group.add(t, self._pk)  # tweakedKey = T + pkS
        if tweaked_key == group.IDENTITY:  # if tweakedKey == G.Identity(): raise InvalidInputError
            raise InvalidInputElementError("the server's key tweaked by this info is the identity")
        items, blinds, blinded = self._blind_inputs(inputs, _test_blinds)
        state = ClientState(self._mode, items, blinds, blinded, tweaked_key, info)
        return BlindResult(state, blinded)

    def finalize(self, state: ClientState, evaluation: Evaluation, info: bytes) -> list[bytes]:
        evaluated = self._check_evaluation(state, evaluation)
        if check_info(info) != state.info or state.tweaked_key is None:
            raise InvalidInputError("finalize must use the info that was used to blind")
        # if VerifyProof(G.Generator(), tweakedKey, evaluatedElements, blindedElements, proof)
        #   == false: raise VerifyError
        dleq.verify_proof(
            self._suite, group.GENERATOR, state.tweaked_key, evaluated, state.blinded_elements,
            evaluation.proof, check_c="evaluated element",
        )  # fmt: skip
        return self._unblind(state, evaluated, False, state.info)  # validated by verify_proof
