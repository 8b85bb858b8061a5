"""TEST ONLY — DANGER: deterministic blinds and proof nonces, for RFC 9497 known-answer tests.

Nothing outside ``tests/`` may import this module. A fixed blind lets anyone who sees the blinded
element recompute the client's input's PRF output; a fixed proof nonce r reused with two different
challenges reveals the server's private key (s = r - c*k twice gives k). The same effect as the
voprf crate's ``danger`` feature: the ordinary API offers no way to choose either value.
"""

from __future__ import annotations

from collections.abc import Sequence

from comparator.oprf.client import OprfClient, PoprfClient, VoprfClient
from comparator.oprf.server import PoprfServer, VoprfServer
from comparator.oprf.suite import BlindResult, Evaluation


def blind_with(
    client: OprfClient | VoprfClient | PoprfClient,
    inputs: Sequence[bytes],
    blinds: Sequence[bytes],
    info: bytes | None = None,
) -> BlindResult:
    """``client.blind(inputs[, info])`` with the given blinds instead of random ones."""
    if isinstance(client, PoprfClient):
        if info is None:
            raise TypeError("a POPRF client needs info")
        return client._blind(inputs, info, _test_blinds=blinds)
    return client._blind(inputs, _test_blinds=blinds)


def blind_evaluate_with_nonce(
    server: VoprfServer | PoprfServer,
    blinded: Sequence[bytes],
    r: bytes,
    info: bytes | None = None,
) -> Evaluation:
    """``server.blind_evaluate(blinded[, info])`` with the proof nonce r fixed."""
    if isinstance(server, PoprfServer):
        if info is None:
            raise TypeError("a POPRF server needs info")
        return server._blind_evaluate(blinded, info, _test_r=r)
    return server._blind_evaluate(blinded, _test_r=r)
