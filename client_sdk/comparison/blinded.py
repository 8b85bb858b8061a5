"""Blinded mode, the requester's side: RFC 9497 modeOPRF, or modeVOPRF with the node's key.

::

    for each chunk (at most max_batch items; modeVOPRF: at most MAX_VERIFIABLE_BATCH, one DLEQ
    proof covers one chunk):
      canonical encodings -> Blind -> BlindEvaluate -> (modeVOPRF: verify the proof) Finalize
        -> MatchBlinded(outputs) -> match bits

The RFC 9497 mode is the comparison's (``Comparison.verifiable``, sent in every header); the
resource must offer it (its catalog entry's ``oprf_modes``).

BlindEvaluate and MatchBlinded are one attempt: a retry starts again from BlindEvaluate with
fresh blinds, so no blind is ever used twice: a retried chunk sent with the same blinded
elements would show the node that the two requests carry the same inputs. That includes a
MatchBlinded refused FAILED_PRECONDITION: the node restarted between the two steps and lost the
session.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import comparison_pb2 as _comparison_pb2
from bidui.v1 import comparison_pb2_grpc as _comparison_pb2_grpc
from client_sdk.comparison.chunks import ChunkSender, Comparison, Record, run_chunks
from client_sdk.comparison.results import ComparisonResult
from client_sdk.connection.retry import NodeCalls, RpcFailure
from client_sdk.errors import InvalidRequestError, ProofVerificationError, ServiceError
from comparator.canonical import Domain
from comparator.errors import ComparatorError, InvalidInputError, VerifyError
from comparator.oprf import (
    MAX_VERIFIABLE_BATCH,
    PROOF_LENGTH,
    SUITE_ID,
    ClientState,
    Evaluation,
    OprfClient,
    VoprfClient,
)

__all__ = ["blinded_batch", "blinded_sender", "compare_blinded", "offered_oprf_modes"]

_OPRF_MODE_NAMES = {_catalog_pb2.OPRF_MODE_OPRF: "oprf", _catalog_pb2.OPRF_MODE_VOPRF: "voprf"}


def blinded_batch(max_batch: int, verifiable: bool) -> int:
    """Items per blinded request: ``max_batch``; modeVOPRF at most what one DLEQ proof covers."""
    return min(max_batch, MAX_VERIFIABLE_BATCH) if verifiable else max_batch


def offered_oprf_modes(entry: _catalog_pb2.Resource) -> list[str]:
    """The RFC 9497 modes a catalog entry offers: ``oprf``, ``voprf`` (a node older than
    ``oprf_modes`` offers modeVOPRF only)."""
    if not entry.oprf_modes:
        return ["voprf"] if _catalog_pb2.MODE_BLINDED in entry.modes else []
    return [_OPRF_MODE_NAMES[m] for m in entry.oprf_modes if m in _OPRF_MODE_NAMES]


def compare_blinded(
    calls: NodeCalls,
    stub: _comparison_pb2_grpc.ComparisonServiceStub,
    entry: _catalog_pb2.Resource,
    comparison: Comparison,
    items: list[Record],
    *,
    max_batch: int,
) -> ComparisonResult:
    """Compare ``items`` in blinded mode, in the comparison's RFC 9497 mode."""
    domain = Domain(entry.id, comparison.comparison_key.name, entry.key_version)
    return run_chunks(
        comparison,
        domain,
        items,
        max_batch=blinded_batch(max_batch, comparison.verifiable),
        prepare=list,  # blinding happens per attempt: a retry must use fresh blinds
        send=blinded_sender(
            calls, stub, entry, stub.MatchBlinded, "MatchBlinded", verifiable=comparison.verifiable
        ),
    )


def blinded_sender(
    calls: NodeCalls,
    stub: _comparison_pb2_grpc.ComparisonServiceStub,
    entry: _catalog_pb2.Resource,
    second: Callable[..., Any],
    rpc: str,
    *,
    verifiable: bool = False,
) -> ChunkSender:
    """Sends one chunk of encoded items as BlindEvaluate, then ``second``, the stub's RPC named
    ``rpc`` (the second step of the header's answer: MatchBlinded, VerifyBlinded or
    CountBlinded), with fresh blinds on every
    attempt. modeVOPRF (``verifiable``, which the header must say too): the chunk must fit one
    DLEQ proof (``MAX_VERIFIABLE_BATCH`` items), and the proof is checked."""
    voprf = _client_for(entry, verifiable)
    key_version = entry.key_version

    def attempt(
        chunk: Sequence[bytes], header: _comparison_pb2.ComparisonHeader, deadline: float
    ) -> Any:
        blind = voprf.blind(list(chunk))  # fresh blinds on every attempt
        evaluated = calls.call(
            "BlindEvaluate",
            stub.BlindEvaluate,
            _comparison_pb2.BlindEvaluateRequest(
                header=header, blinded_elements=list(blind.message)
            ),
            deadline,
        )
        outputs = _finalize(voprf, blind.state, evaluated, len(chunk), key_version)
        request = _comparison_pb2.MatchBlindedRequest(
            comparison_id=evaluated.comparison_id, outputs=outputs
        )
        try:
            result = calls.call(rpc, second, request, deadline)
        except RpcFailure as failure:
            if failure.code is not grpc.StatusCode.FAILED_PRECONDITION:
                raise
            # The node no longer holds the session BlindEvaluate opened: it restarted between
            # the two steps (or the session expired). Start again with fresh blinds; a key
            # rotation in between is caught by the next BlindEvaluate.
            raise RpcFailure(
                failure.code, failure.details, failure.context, restartable=True
            ) from None
        if not result.comparison_id:
            result.comparison_id = evaluated.comparison_id
        return result

    def send(chunk: Sequence[bytes], header: _comparison_pb2.ComparisonHeader) -> Any:
        return calls.retrying(lambda deadline: attempt(chunk, header, deadline))

    return send


def _client_for(entry: _catalog_pb2.Resource, verifiable: bool) -> OprfClient | VoprfClient:
    """The client of the RFC 9497 mode asked for, for the suite (and modeVOPRF: the public key)
    ``entry`` publishes."""
    if entry.oprf_suite and entry.oprf_suite != SUITE_ID:
        raise ServiceError(
            f"resource {entry.id!r} uses OPRF suite {entry.oprf_suite!r}; "
            f"this SDK supports {SUITE_ID!r}"
        )
    wanted, offered = ("voprf" if verifiable else "oprf"), offered_oprf_modes(entry)
    if wanted not in offered:
        raise InvalidRequestError(
            f"resource {entry.id!r} does not offer blinded mode {wanted} (RFC 9497 "
            f"mode{wanted.upper()}); it offers: {', '.join(offered) or 'none'}"
            + (" (verifiable=True)" if "voprf" in offered else "")
        )
    if not verifiable:
        return OprfClient()
    if not entry.oprf_public_key:
        raise ServiceError(f"resource {entry.id!r} publishes no OPRF public key")
    try:
        return VoprfClient(entry.oprf_public_key)
    except ComparatorError:
        raise ServiceError(f"resource {entry.id!r} publishes an invalid OPRF public key") from None


def _finalize(
    voprf: OprfClient | VoprfClient,
    state: ClientState,
    evaluated: _comparison_pb2.BlindEvaluateResponse,
    count: int,
    key_version: int,
) -> list[bytes]:
    """(modeVOPRF) verify the node's proof, and finalize; refuse an answer for another key or
    count."""
    if evaluated.key_version and evaluated.key_version != key_version:
        raise InvalidRequestError(
            f"the node's OPRF key changed (version {evaluated.key_version}, the catalog said "
            f"{key_version}); run the comparison again"
        )
    verifiable = isinstance(voprf, VoprfClient)
    proof_length = PROOF_LENGTH if verifiable else 0
    if len(evaluated.evaluated_elements) != count or len(evaluated.proof) != proof_length:
        raise ProofVerificationError(
            f"the node returned {len(evaluated.evaluated_elements)} evaluated element(s) and a "
            f"{len(evaluated.proof)}-byte proof for {count} blinded element(s)"
            + ("" if verifiable else " (modeOPRF: no proof)")
        )
    elements = list(evaluated.evaluated_elements)
    try:
        if isinstance(voprf, VoprfClient):
            outputs = voprf.finalize(state, Evaluation(elements, evaluated.proof))
        else:
            outputs = voprf.finalize(state, Evaluation(elements, None))
    except VerifyError:
        raise ProofVerificationError(
            "the node's proof did not verify against its published OPRF key: the node "
            "misbehaved or its key changed"
        ) from None
    except InvalidInputError:
        raise ProofVerificationError("the node returned malformed evaluated elements") from None
    return list(outputs)
