"""The value types of node.toml: identifiers, addresses, paths, database URLs, durations, ranges.

Each type is an ``Annotated`` pydantic type whose validator raises ``problem(...)``: the message is
the one the operator reads after ``file: key.path:``, so it says what is wrong and what is allowed.
Paths and SQLite URLs are resolved against the configuration file's folder, which ``load_config``
passes as the validation context (``{"base": folder}``); a model built directly, without a
context, keeps its paths as given.

Values that may hold a password (database URLs) are never repeated in a message.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationInfo
from pydantic_core import PydanticCustomError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from comparator.fields import FieldType
from comparator.periods import DURATION_RE
from provider_node.core.vocabulary import Answer, Category, ComparisonMode, OprfMode, SharingType

__all__ = [
    "DEPARTMENT_ID_RE",
    "DURATION_RE",
    "ENUM_LABELS",
    "FIELD_NAME_RE",
    "KEY_NAME_RE",
    "MAX_BATCH_ITEMS_LIMIT",
    "MAX_KEY_VERSION",
    "MAX_MESSAGE_BYTES_LIMIT",
    "MIN_MESSAGE_BYTES",
    "MIN_RETENTION_DAYS",
    "RESOURCE_ID_RE",
    "Address",
    "Answer",
    "Category",
    "ComparisonMode",
    "ConfigError",
    "ConfigPath",
    "DatabaseUrl",
    "Duration",
    "OprfMode",
    "SharingType",
    "between",
    "is_memory_sqlite",
    "matching",
    "parse_address",
    "problem",
]

# Article 35: logs are kept at least two years.
MIN_RETENTION_DAYS = 730
MAX_BATCH_ITEMS_LIMIT = 1_000_000
# gRPC takes message size limits as a signed 32-bit integer.
MAX_MESSAGE_BYTES_LIMIT = 2**31 - 1
MIN_MESSAGE_BYTES = 64 * 1024
MAX_KEY_VERSION = 2**32 - 1

RESOURCE_ID_RE = re.compile(r"[a-z0-9_-]{1,64}")
DEPARTMENT_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
FIELD_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Key names become file names (<key>.<mode>.idx): no dots, no separators.
KEY_NAME_RE = re.compile(r"[A-Za-z0-9_+-]{1,128}")


class ConfigError(Exception):
    """The configuration is unusable. ``problems`` holds one line per problem."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems: tuple[str, ...] = (
            (problems,) if isinstance(problems, str) else tuple(problems)
        )
        super().__init__("\n".join(self.problems))


def problem(message: str, *at: str | int) -> PydanticCustomError:
    """A validation error whose text the operator reads as is.

    ``at`` extends the key path below the validated value, for a check made on a whole table that
    concerns one of its keys (``problem("is required", "query")`` raised for ``source``).
    """
    # The message goes through the context, not the template, so braces in it stay literal.
    return PydanticCustomError("bidui_config", "{message}", {"message": message, "at": at})


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` -> (host, port); raises ``ValueError`` saying why."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise ValueError("expected host:port, e.g. 127.0.0.1:50051")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)
    elif ":" in host:
        raise ValueError("write IPv6 addresses in brackets, e.g. [::1]:50051")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("the port must be a number from 0 to 65535")
    return host, int(port_text)


def between(lo: int, hi: int) -> AfterValidator:
    """Bounds for an integer, stated with both ends in the message (pydantic's name only one)."""

    def check(value: int) -> int:
        if not lo <= value <= hi:
            raise problem(f"must be between {lo} and {hi}, got {value}")
        return value

    return AfterValidator(check)


def matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    """A string that must match ``pattern`` in full; ``what`` names it for the operator."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise problem(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def _base(info: ValidationInfo) -> Path | None:
    context = info.context
    return context.get("base") if isinstance(context, dict) else None


def _not_empty(value: Any) -> Any:
    # Checked before pydantic turns "" into Path("."), the folder itself.
    if value == "":
        raise problem("must not be empty")
    return value


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = _base(info)
    value = value.expanduser()
    return base / value if base is not None else value


def _check_address(value: str) -> str:
    try:
        parse_address(value)
    except ValueError as exc:
        raise problem(f"invalid address {value!r}: {exc}") from None
    return value


def _resolve_url(url: str, info: ValidationInfo) -> str:
    """Make a relative SQLite database path absolute against the base; other URLs pass through."""
    if not url:
        raise problem("must not be empty (e.g. sqlite:///audit.db)")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Not repeated: the URL may carry a password.
        raise problem("is not a valid SQLAlchemy database URL (e.g. sqlite:///audit.db)") from None
    database = parsed.database
    base = _base(info)
    if base is None or not parsed.drivername.startswith("sqlite") or not database:
        return url
    if database == ":memory:" or database.startswith("file:") or Path(database).is_absolute():
        return url
    return parsed.set(database=str(base / Path(database).expanduser())).render_as_string(
        hide_password=False
    )


def is_memory_sqlite(url: str) -> bool:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return False
    return parsed.drivername.startswith("sqlite") and parsed.database in (None, "", ":memory:")


def _check_duration(value: str) -> str:
    if not DURATION_RE.fullmatch(value):
        raise problem(f"{value!r} is not an ISO 8601 duration (e.g. P1D)")
    return value


ConfigPath = Annotated[Path, BeforeValidator(_not_empty), AfterValidator(_resolve_path)]
"""A file or folder; relative to the configuration file's folder unless absolute."""
Address = Annotated[str, AfterValidator(_check_address)]
"""``host:port``, ``[v6]:port``; port 0 picks a free port."""
DatabaseUrl = Annotated[str, AfterValidator(_resolve_url)]
"""Any SQLAlchemy URL; ``sqlite:///relative.db`` is relative to the configuration file's folder."""
Duration = Annotated[str, AfterValidator(_check_duration)]
"""ISO 8601, e.g. ``P1D``."""

# Shown in "unknown <label> 'x' (expected ...)" when a value is not one of an enumeration's.
ENUM_LABELS: dict[type[StrEnum], str] = {
    SharingType: "sharing type",
    Category: "category",
    ComparisonMode: "mode",
    OprfMode: "OPRF mode",
    Answer: "answer",
    FieldType: "field type",
}
