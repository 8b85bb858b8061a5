"""A failed connection: the :class:`AuthenticationError` to raise at once, or nothing (retry).

Retrying cannot help when a certificate was refused — ours by the node, or the node's by us — and
only wastes the caller's deadline; retrying is exactly right when the node is restarting. The
grpc status tells these apart (``connection_failures.classify``) except in one case: the node
closed the connection while we were connecting, which a TLS 1.3 refusal of our certificate and a
node going away both look like. Then a probe handshake of our own decides (``handshake_probe``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from client_sdk.connection.credentials import Credentials
from client_sdk.connection.handshake_probe import (
    ProbeVerdict,
    can_probe,
    probe_handshake,
    target_address,
)
from client_sdk.connection_failures import ConnectionFailure, classify, likely_cause
from client_sdk.errors import AuthenticationError, BiduiError, CredentialsError

if TYPE_CHECKING:
    from client_sdk.connection.retry import RpcFailure

__all__ = ["Refusals"]

# A refusal comes at once; a probe that has to wait longer than this learns nothing more.
_PROBE_TIMEOUT = 3.0


class Refusals:
    """What the client knows to explain a refused connection: where it connects, as whom."""

    def __init__(
        self,
        target: str,
        *,
        server_name: str | None = None,
        credentials: Credentials | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.server_name = server_name
        self.credentials = credentials
        self._clock = clock
        address = target_address(target)
        self._address = address if credentials is not None and can_probe() else None

    @property
    def can_probe(self) -> bool:
        """Whether a connection closed while connecting can be diagnosed (else it is retried)."""
        return self._address is not None

    def refusal(self, failure: RpcFailure, deadline: float) -> BiduiError | None:
        """The error to raise for ``failure`` without retrying, or None when a retry may help.

        Only connection failures come here: the caller has already dealt with the node's own
        answers.
        """
        kind = classify(failure.code, failure.details)
        if kind in (
            ConnectionFailure.NODE_CERTIFICATE_REFUSED,
            ConnectionFailure.CLIENT_CERTIFICATE_REFUSED,
        ):
            return self._error(failure, likely_cause(kind, failure.details, **self._names()))
        if kind is ConnectionFailure.CLOSED_WHILE_CONNECTING:
            return self._probe(failure, deadline)
        return None

    def _probe(self, failure: RpcFailure, deadline: float) -> BiduiError | None:
        time_left = deadline - self._clock()
        if self._address is None or self.credentials is None or time_left <= 0:
            return None
        server_name = self.server_name or self._address[0]
        result = probe_handshake(
            self._address, server_name, self.credentials, min(_PROBE_TIMEOUT, time_left)
        )
        if result.verdict is ProbeVerdict.NODE_CERTIFICATE_REFUSED:
            cause = likely_cause(
                ConnectionFailure.NODE_CERTIFICATE_REFUSED,
                f"certificate_verify_failed {result.reason}",
                **self._names(),
            )
            return self._error(failure, cause)
        if result.verdict is not ProbeVerdict.REFUSED:
            return None
        said = f" (TLS alert {result.reason})" if result.reason else ""
        refused = (
            f"the node refused the client certificate{said}: it closed the connection right "
            "after the TLS handshake"
        )
        credentials = self.credentials
        try:
            department = credentials.check()  # it may have expired since it was read
        except CredentialsError as why:
            return self._error(failure, f"{refused}, and {why.message}")
        certificate = repr(credentials.certificate_file) if credentials.certificate_file else ""
        ca = f"in {credentials.ca_file!r}" if credentials.ca_file else "given"
        return self._error(
            failure,
            f"{refused}. The client certificate {certificate} is valid here and issued by the "
            f"CA certificate {ca} for department {department!r}, so the node trusts another CA "
            "for its clients, or its clock disagrees with this machine's: ask the node's "
            "operator which CA signs department certificates and have your request signed by it",
        )

    def _names(self) -> dict[str, str | None]:
        ca_file = self.credentials.ca_file if self.credentials else None
        return {"ca_file": ca_file, "server_name": self.server_name}

    def _error(self, failure: RpcFailure, cause: str) -> AuthenticationError:
        return AuthenticationError(
            f"{failure.context}: {cause} (grpc: {failure.details or failure.code.name})",
            code=failure.code,
        )
