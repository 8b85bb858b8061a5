"""The client's own pieces that need no server: request ids, channel options, the public names.

End-to-end comparisons against a real node over mTLS are in tests/integration/; the pipeline's
pieces are in test_chunks, test_catalog and test_retry.
"""

from __future__ import annotations

import pytest

import client_sdk
import client_sdk.client as client_sdk_client
from client_sdk.comparison.request import check_request_id
from client_sdk.connection.channel import channel_options
from client_sdk.connection.retry import RetryPolicy
from client_sdk.errors import InvalidRequestError


def test_request_id_is_generated_or_checked() -> None:
    generated = check_request_id(None)
    assert len(generated) == 32 and generated != check_request_id(None)
    assert check_request_id("batch-2024-07/civil") == "batch-2024-07/civil"
    for bad in ["", "has space", "x" * 65, "中文"]:
        with pytest.raises(InvalidRequestError):
            check_request_id(bad)


def test_channel_options_fit_the_batch() -> None:
    options = dict(channel_options(100_000, "node.example"))
    assert options["grpc.max_receive_message_length"] == 64 * 1024 * 1024
    assert options["grpc.max_send_message_length"] >= 100_000 * 64
    assert options["grpc.ssl_target_name_override"] == "node.example"
    assert "grpc.ssl_target_name_override" not in dict(channel_options(10))


def test_the_channel_looks_for_a_restarted_node_as_often_as_the_sdk_retries() -> None:
    # grpc's own reconnect backoff grows to 120 s: a node back after a restart would not be seen
    # before the SDK's retries give up.
    options = dict(
        channel_options(10, retry_policy=RetryPolicy(initial_backoff=0.2, max_backoff=5))
    )
    assert options["grpc.initial_reconnect_backoff_ms"] == 200
    assert options["grpc.max_reconnect_backoff_ms"] == 5000


def test_the_public_names_stay_where_importers_find_them() -> None:
    for module in (client_sdk, client_sdk_client):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
