"""The ComparisonService servicer: protobuf in, ``ProviderNode`` calls, protobuf out. Nothing
else; refusals reach ``status.abort_with`` through ``servicer.guarded``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import grpc

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import comparison_pb2 as _comparison_pb2
from bidui.v1 import comparison_pb2_grpc as _comparison_pb2_grpc
from provider_node.core.messages import CountOutcome, Header, MatchOutcome, VerificationOutcome
from provider_node.core.vocabulary import Action, Answer
from provider_node.transport.guarded import ANSWERS_FROM_PROTO, ServicerBase, guarded

__all__ = ["ComparisonServicer"]

_T = TypeVar("_T")
_T_OUT = TypeVar("_T_OUT", MatchOutcome, VerificationOutcome, CountOutcome)


def _header(message: _comparison_pb2.ComparisonHeader, unspecified: Answer) -> Header:
    """The node's header; ``ANSWER_UNSPECIFIED`` reads as ``unspecified`` (the RPC's answer), a
    number the node does not know as None (refused, and audited, by the node)."""
    answer = (
        unspecified
        if message.answer == _catalog_pb2.ANSWER_UNSPECIFIED
        else ANSWERS_FROM_PROTO.get(message.answer)
    )
    return Header(
        resource_id=message.resource_id,
        comparison_key=message.comparison_key,
        purpose=message.purpose,
        request_id=message.request_id,
        key_version=message.key_version,
        grant_id=message.grant_id,
        answer=answer,
        verify_fields=tuple(message.verify_fields),
        verifiable=message.verifiable,
    )


def _of(kind: type[_T_OUT], outcome: object) -> _T_OUT:
    if not isinstance(outcome, kind):  # the node answers what the RPC asked: never happens
        raise TypeError(f"expected {kind.__name__}, got {type(outcome).__name__}")
    return outcome


def _match_result(outcome: object) -> _comparison_pb2.MatchResult:
    match = _of(MatchOutcome, outcome)
    return _comparison_pb2.MatchResult(
        match_bits=match.match_bits,
        item_count=match.item_count,
        match_count=match.match_count,
        comparison_id=match.comparison_id,
    )


def _verification_result(outcome: object) -> _comparison_pb2.VerificationResult:
    verified = _of(VerificationOutcome, outcome)
    return _comparison_pb2.VerificationResult(
        outcomes=verified.outcomes,
        mismatch_bits=verified.mismatch_bits,
        record_count=verified.record_count,
        not_found_count=verified.not_found,
        consistent_count=verified.consistent,
        inconsistent_count=verified.inconsistent,
        comparison_id=verified.comparison_id,
    )


def _count_result(outcome: object) -> _comparison_pb2.CountResult:
    counted = _of(CountOutcome, outcome)
    return _comparison_pb2.CountResult(
        item_count=counted.item_count,
        match_count=counted.match_count,
        comparison_id=counted.comparison_id,
    )


class ComparisonServicer(ServicerBase, _comparison_pb2_grpc.ComparisonServiceServicer):
    """Each answer has its RPCs: match bits, verification, count (hashed in one, blinded as
    ``BlindEvaluate`` then the answer's second step)."""

    def _hashed(
        self,
        request: _comparison_pb2.CompareHashedRequest,
        context: grpc.ServicerContext,
        answer: Answer,
        result: Callable[[object], _T],
    ) -> _T:
        def call() -> _T:
            caller = self._caller(context, Action.COMPARISON, request.header.resource_id)
            header = _header(request.header, answer)
            # One list: each pass over a repeated field makes its bytes objects anew.
            tags = list(request.tags)
            return result(self._node.compare_hashed(caller, header, tags, answer))

        return guarded(context, call)

    def _blinded(
        self,
        request: _comparison_pb2.MatchBlindedRequest,
        context: grpc.ServicerContext,
        answer: Answer,
        result: Callable[[object], _T],
    ) -> _T:
        def call() -> _T:
            caller = self._caller(context, Action.COMPARISON)
            outcome = self._node.match_blinded(
                caller, request.comparison_id, list(request.outputs), answer
            )
            return result(outcome)

        return guarded(context, call)

    def CompareHashed(
        self, request: _comparison_pb2.CompareHashedRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.MatchResult:
        return self._hashed(request, context, Answer.MATCH, _match_result)

    def VerifyHashed(
        self, request: _comparison_pb2.CompareHashedRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.VerificationResult:
        return self._hashed(request, context, Answer.VERIFY, _verification_result)

    def CountHashed(
        self, request: _comparison_pb2.CompareHashedRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.CountResult:
        return self._hashed(request, context, Answer.COUNT, _count_result)

    def BlindEvaluate(
        self, request: _comparison_pb2.BlindEvaluateRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.BlindEvaluateResponse:
        def call() -> _comparison_pb2.BlindEvaluateResponse:
            caller = self._caller(context, Action.COMPARISON, request.header.resource_id)
            outcome = self._node.blind_evaluate(
                caller, _header(request.header, Answer.MATCH), list(request.blinded_elements)
            )
            return _comparison_pb2.BlindEvaluateResponse(
                comparison_id=outcome.comparison_id,
                evaluated_elements=outcome.evaluation.elements,
                proof=outcome.evaluation.proof or b"",
                key_version=outcome.key_version,
            )

        return guarded(context, call)

    def MatchBlinded(
        self, request: _comparison_pb2.MatchBlindedRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.MatchResult:
        return self._blinded(request, context, Answer.MATCH, _match_result)

    def VerifyBlinded(
        self, request: _comparison_pb2.MatchBlindedRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.VerificationResult:
        return self._blinded(request, context, Answer.VERIFY, _verification_result)

    def CountBlinded(
        self, request: _comparison_pb2.MatchBlindedRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.CountResult:
        return self._blinded(request, context, Answer.COUNT, _count_result)
