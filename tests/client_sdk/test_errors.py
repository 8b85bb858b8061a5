"""The one mapping from gRPC status to SDK exceptions."""

from __future__ import annotations

import grpc
import pytest

from client_sdk.errors import (
    AuthenticationError,
    BiduiError,
    CsvInputError,
    DeadlineExceededError,
    InvalidRequestError,
    PermissionDeniedError,
    QuotaExceededError,
    ResourceNotFoundError,
    ServiceError,
    ServiceUnavailableError,
    error_from_rpc,
    error_from_status,
    is_tls_failure,
)
from tests.client_sdk import observed
from tests.client_sdk.failed_call import FailedCall


@pytest.mark.parametrize(
    ("code", "cls", "user_error"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, AuthenticationError, True),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError, True),
        (grpc.StatusCode.NOT_FOUND, ResourceNotFoundError, True),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidRequestError, True),
        (grpc.StatusCode.OUT_OF_RANGE, InvalidRequestError, True),
        (grpc.StatusCode.FAILED_PRECONDITION, InvalidRequestError, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, QuotaExceededError, True),
        (grpc.StatusCode.UNAVAILABLE, ServiceUnavailableError, False),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError, False),
        (grpc.StatusCode.INTERNAL, ServiceError, False),
        (grpc.StatusCode.UNKNOWN, ServiceError, False),
        (grpc.StatusCode.UNIMPLEMENTED, ServiceError, False),
        (grpc.StatusCode.ABORTED, ServiceError, False),
    ],
)
def test_each_status_maps_to_its_class(
    code: grpc.StatusCode, cls: type[BiduiError], user_error: bool
) -> None:
    error = error_from_status(code, "the node's words", context="DescribeResource 'residents'")
    assert type(error) is cls
    assert error.code is code
    assert error.user_error is user_error
    assert str(error) == "DescribeResource 'residents': the node's words"


def test_missing_details_fall_back_to_the_status_name() -> None:
    error = error_from_status(grpc.StatusCode.NOT_FOUND, None)
    assert str(error) == "not found"


def test_error_from_rpc_reads_code_and_details() -> None:
    error = error_from_rpc(FailedCall(grpc.StatusCode.PERMISSION_DENIED, "resource not shared"))
    assert isinstance(error, PermissionDeniedError)
    assert "resource not shared" in str(error)


def test_rpc_error_without_status_is_a_service_error() -> None:
    error = error_from_rpc(grpc.RpcError("bare"))
    assert isinstance(error, ServiceError)
    assert error.code is grpc.StatusCode.UNKNOWN


def test_invalid_request_is_a_value_error() -> None:
    assert issubclass(InvalidRequestError, ValueError)


@pytest.mark.parametrize(
    "details",
    [observed.WRONG_SERVER_CA, observed.WRONG_SERVER_NAME, observed.TLS12_UNKNOWN_CA],
)
def test_a_refused_certificate_is_an_authentication_error(details: str) -> None:
    assert is_tls_failure(grpc.StatusCode.UNAVAILABLE, details)
    error = error_from_status(grpc.StatusCode.UNAVAILABLE, details)
    assert isinstance(error, AuthenticationError)
    assert error.user_error
    assert "certificate" in str(error)
    assert details in str(error)  # grpc's own words are kept for whoever debugs


@pytest.mark.parametrize(
    "details",
    [
        observed.CONNECTION_REFUSED,
        observed.STREAM_REMOVED,
        # Closed while connecting may be a node going away: not a TLS failure by the words alone.
        observed.CLOSED_WHILE_CONNECTING,
        observed.PROXY_WITHOUT_NODE,
    ],
)
def test_a_node_that_is_away_is_not_a_tls_failure(details: str) -> None:
    assert not is_tls_failure(grpc.StatusCode.UNAVAILABLE, details)
    assert isinstance(
        error_from_status(grpc.StatusCode.UNAVAILABLE, details), ServiceUnavailableError
    )
    assert not is_tls_failure(grpc.StatusCode.INTERNAL, "ssl")


def test_csv_input_error_names_file_and_line() -> None:
    error = CsvInputError("has 3 column(s), the header has 2", path="in.csv", line=7)
    assert str(error) == "in.csv, line 7: has 3 column(s), the header has 2"
    assert error.line == 7
    assert error.user_error
