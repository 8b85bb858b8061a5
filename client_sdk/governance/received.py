"""Dates and instants as the node sends them in its governance messages, read strictly: a value
that is not what the wire contract promises is the node's fault, reported as ``ServiceError``."""

from __future__ import annotations

import datetime as _dt

from google.protobuf.timestamp_pb2 import Timestamp

from client_sdk.errors import ServiceError

__all__ = ["node_date", "node_instant"]


def node_date(text: str, field: str, where: str) -> _dt.date:
    """``text`` as YYYY-MM-DD, the ``field`` of ``where`` the node sent."""
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        raise ServiceError(f"the node sent {where} with {field} {text!r}, not YYYY-MM-DD") from None


def node_instant(stamp: Timestamp) -> _dt.datetime:
    """A protobuf timestamp as an aware datetime in UTC."""
    return stamp.ToDatetime(tzinfo=_dt.UTC)
