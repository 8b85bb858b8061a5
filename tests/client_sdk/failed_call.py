"""What a failed unary call raises, for tests that stand in for a stub."""

from __future__ import annotations

import grpc


class FailedCall(grpc.RpcError):
    """An RpcError that is also a grpc.Call (code, details), as grpc's own failed calls are."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details
