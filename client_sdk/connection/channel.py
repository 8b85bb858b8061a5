"""The gRPC channel a client opens to a node: message sizes for its batches, and reconnection
that follows the client's own retry policy."""

from __future__ import annotations

from typing import Any

from client_sdk.connection.retry import RetryPolicy

__all__ = ["channel_options"]

_MIB = 1 << 20
# Per item on the wire: a 64-byte finalize output (the largest message) plus protobuf framing.
_WIRE_BYTES_PER_ITEM = 64 + 4


def channel_options(
    max_batch: int, server_name: str | None = None, retry_policy: RetryPolicy | None = None
) -> list[tuple[str, Any]]:
    """gRPC channel options sized for ``max_batch`` items per request.

    While the node is away, grpc reconnects on its own schedule (from 1 s, growing to 120 s) and
    fails calls at once in between; a retry lands only once it has reconnected. So its backoff
    follows ``retry_policy``'s, or a node back after a restart would wait up to two minutes for
    a channel that no longer looks for it.
    """
    policy = retry_policy or RetryPolicy()
    send_limit = max(4 * _MIB, max_batch * _WIRE_BYTES_PER_ITEM + _MIB)
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", send_limit),
        ("grpc.max_receive_message_length", 64 * _MIB),
        ("grpc.primary_user_agent", "bidui-client_sdk"),
        ("grpc.initial_reconnect_backoff_ms", max(100, int(policy.initial_backoff * 1000))),
        ("grpc.max_reconnect_backoff_ms", max(100, int(policy.max_backoff * 1000))),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options
