"""RFC 9497 known-answer tests: every ristretto255-SHA512 vector, every intermediate value.

The vectors are kept in the repository (tests/data/rfc9497-ristretto255-sha512.json, copied from
RFC 9497 Appendix A.1). Deterministic blinds and proof nonces come from the test-only module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from comparator.oprf import (
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
)
from comparator.oprf._testing import blind_evaluate_with_nonce, blind_with

VECTORS_FILE = Path(__file__).parents[1] / "data" / "rfc9497-ristretto255-sha512.json"


def _cases() -> list[Any]:
    kept = json.loads(VECTORS_FILE.read_text())["suites"]
    suites = [s for s in kept if s["identifier"] == SUITE_ID]
    assert len(suites) == 3, "one suite per mode: OPRF, VOPRF, POPRF"
    cases = []
    for suite in suites:
        mode = Mode(suite["mode"])
        for i, vector in enumerate(suite["vectors"]):
            case_id = f"{SUITE_ID}/{mode.name}/{i}-batch{vector['Batch']}"
            cases.append(pytest.param(suite, vector, id=case_id))
    return cases


CASES = _cases()


def _hexlist(value: str) -> list[bytes]:
    return [bytes.fromhex(x) for x in value.split(",")]


def test_all_modes_present() -> None:
    modes = {p.values[0]["mode"] for p in CASES}
    assert modes == {0, 1, 2}
    assert len(CASES) == 8


@pytest.mark.parametrize(("suite", "vector"), CASES)
def test_vector(suite: dict[str, Any], vector: dict[str, Any]) -> None:
    mode = Mode(suite["mode"])
    sk, pk = derive_key_pair(bytes.fromhex(suite["seed"]), bytes.fromhex(suite["keyInfo"]), mode)
    assert sk.hex() == suite["skSm"]
    if "pkSm" in suite:
        assert pk.hex() == suite["pkSm"]

    inputs = _hexlist(vector["Input"])
    blinds = _hexlist(vector["Blind"])
    expected_blinded = _hexlist(vector["BlindedElement"])
    expected_evaluated = _hexlist(vector["EvaluationElement"])
    expected_outputs = _hexlist(vector["Output"])
    assert len(inputs) == vector["Batch"]

    info = bytes.fromhex(vector["Info"]) if mode == Mode.POPRF else None
    evaluation: Evaluation
    if mode == Mode.OPRF:
        oprf_client = OprfClient()
        oprf_server = OprfServer(sk)
        blinded = blind_with(oprf_client, inputs, blinds)
        assert blinded.message == expected_blinded
        evaluation = oprf_server.blind_evaluate(blinded.message)
        assert evaluation.proof is None
        outputs = oprf_client.finalize(blinded.state, evaluation)
        server_outputs = [oprf_server.evaluate(x) for x in inputs]
        batch_outputs = oprf_server.evaluate_batch(inputs)
    elif mode == Mode.VOPRF:
        voprf_client = VoprfClient(pk)
        voprf_server = VoprfServer(sk)
        assert voprf_server.public_key == pk
        blinded = blind_with(voprf_client, inputs, blinds)
        assert blinded.message == expected_blinded
        r = bytes.fromhex(vector["Proof"]["r"])
        evaluation = blind_evaluate_with_nonce(voprf_server, blinded.message, r)
        assert evaluation.proof is not None
        assert evaluation.proof.hex() == vector["Proof"]["proof"]
        outputs = voprf_client.finalize(blinded.state, evaluation)
        server_outputs = [voprf_server.evaluate(x) for x in inputs]
        batch_outputs = voprf_server.evaluate_batch(inputs)
    else:
        assert info is not None
        poprf_client = PoprfClient(pk)
        poprf_server = PoprfServer(sk)
        assert poprf_server.public_key == pk
        blinded = blind_with(poprf_client, inputs, blinds, info)
        assert blinded.message == expected_blinded
        r = bytes.fromhex(vector["Proof"]["r"])
        evaluation = blind_evaluate_with_nonce(poprf_server, blinded.message, r, info)
        assert evaluation.proof is not None
        assert evaluation.proof.hex() == vector["Proof"]["proof"]
        outputs = poprf_client.finalize(blinded.state, evaluation, info)
        server_outputs = [poprf_server.evaluate(x, info) for x in inputs]
        batch_outputs = poprf_server.evaluate_batch(inputs, info)

    assert evaluation.elements == expected_evaluated
    assert outputs == expected_outputs
    assert server_outputs == expected_outputs
    assert batch_outputs == expected_outputs
