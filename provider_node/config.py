"""The provider node's configuration: one TOML file (docs/CONTRACTS.md), environment overrides.

``load_config(path)`` parses the file with ``tomllib``, applies ``BIDUI_<SECTION>_<KEY>``
environment overrides (``BIDUI_AUDIT_DATABASE_URL``, ``BIDUI_NODE_LISTEN``...), resolves relative
paths and relative ``sqlite:///`` URLs against the configuration file's folder, and validates
everything at once: a ``ConfigError`` carries one line per problem, naming the file and the key.

TLS files are checked when the node starts serving (``TlsConfig.check_files``), not at parse time,
so that ``bidui provider load`` works on a machine that holds no certificates.

Values that may hold secrets (database URLs with passwords) are never repeated in messages.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from comparator.fields import FieldType

__all__ = [
    "DEPARTMENT_ID_RE",
    "MAX_BATCH_ITEMS_LIMIT",
    "MIN_RETENTION_DAYS",
    "RESOURCE_ID_RE",
    "AuditConfig",
    "Category",
    "ComparisonMode",
    "ConfigError",
    "KeysConfig",
    "NodeConfig",
    "NodeSection",
    "ResourceConfig",
    "SharingType",
    "SourceConfig",
    "TlsConfig",
    "load_config",
    "parse_address",
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
# ISO 8601 duration, e.g. P1D, PT12H, P1M.
DURATION_RE = re.compile(r"P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?")


class ConfigError(Exception):
    """The configuration is unusable. ``problems`` holds one line per problem."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems: tuple[str, ...] = (
            (problems,) if isinstance(problems, str) else tuple(problems)
        )
        super().__init__("\n".join(self.problems))


class SharingType(StrEnum):
    """Article 24."""

    UNCONDITIONAL = "unconditional"
    CONDITIONAL = "conditional"
    NOT_SHARED = "not_shared"


class Category(StrEnum):
    """Articles 4 and 18."""

    BASIC = "basic"
    THEMATIC = "thematic"
    DEPARTMENTAL = "departmental"


class ComparisonMode(StrEnum):
    HASHED = "hashed"
    BLINDED = "blinded"


@dataclass(frozen=True)
class NodeSection:
    name: str
    department: str
    listen: str
    metrics_listen: str
    data_dir: Path
    max_batch_items: int
    max_message_bytes: int
    blinded_session_seconds: int
    max_items_per_minute: int = 0  # per requesting department; 0: no limit

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "indexes"


@dataclass(frozen=True)
class TlsConfig:
    ca_cert: Path
    server_cert: Path
    server_key: Path

    def check_files(self, config_path: Path | None = None) -> None:
        """Raise ``ConfigError`` unless the CA, certificate and key files exist (at serve time)."""
        where = f"{config_path}: " if config_path is not None else ""
        problems = [
            f"{where}tls.{key}: file {path} does not exist"
            for key, path in (
                ("ca_cert", self.ca_cert),
                ("server_cert", self.server_cert),
                ("server_key", self.server_key),
            )
            if not path.is_file()
        ]
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class KeysConfig:
    dir: Path


@dataclass(frozen=True)
class AuditConfig:
    database_url: str = ""
    retention_days: int = MIN_RETENTION_DAYS

    def __repr__(self) -> str:
        # The URL may carry a password.
        return f"AuditConfig(database_url=<hidden>, retention_days={self.retention_days})"


@dataclass(frozen=True)
class SourceConfig:
    """Exactly one of ``url`` + ``query`` (any SQLAlchemy URL) or ``csv`` (with a header row)."""

    url: str | None = None
    query: str | None = None
    csv: Path | None = None

    def __repr__(self) -> str:
        if self.csv is not None:
            return f"SourceConfig(csv={str(self.csv)!r})"
        return "SourceConfig(url=<hidden>, query=...)"


@dataclass(frozen=True)
class ResourceConfig:
    id: str
    name: str
    owner_department: str
    category: Category
    sharing_type: SharingType
    update_period: str
    usage_conditions: str
    modes: tuple[ComparisonMode, ...]
    expose_record_count: bool
    key_version: int
    fields: Mapping[str, FieldType]
    keys: Mapping[str, tuple[str, ...]]
    source: SourceConfig


@dataclass(frozen=True)
class NodeConfig:
    path: Path
    node: NodeSection
    tls: TlsConfig
    keys: KeysConfig
    audit: AuditConfig
    resources: tuple[ResourceConfig, ...]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resource(self, resource_id: str) -> ResourceConfig:
        for resource in self.resources:
            if resource.id == resource_id:
                return resource
        raise ConfigError(f"{self.path}: no resource with id {resource_id!r}")


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


# ---- parsing -----------------------------------------------------------------------------------


class _Problems:
    """Collects one line per problem, prefixed with the file name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{self.path}: {key}: {message}")


_NODE_KEYS: dict[str, type] = {
    "name": str,
    "department": str,
    "listen": str,
    "metrics_listen": str,
    "data_dir": str,
    "max_batch_items": int,
    "max_message_bytes": int,
    "blinded_session_seconds": int,
    "max_items_per_minute": int,
}
_TLS_KEYS: dict[str, type] = {"ca_cert": str, "server_cert": str, "server_key": str}
_KEYS_KEYS: dict[str, type] = {"dir": str}
_AUDIT_KEYS: dict[str, type] = {"database_url": str, "retention_days": int}
_SECTIONS: dict[str, dict[str, type]] = {
    "node": _NODE_KEYS,
    "tls": _TLS_KEYS,
    "keys": _KEYS_KEYS,
    "audit": _AUDIT_KEYS,
}
_RESOURCE_KEYS = frozenset(
    {
        "id",
        "name",
        "owner_department",
        "category",
        "sharing_type",
        "update_period",
        "usage_conditions",
        "modes",
        "expose_record_count",
        "key_version",
        "fields",
        "keys",
        "source",
    }
)


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> NodeConfig:
    """Read, override from the environment (``os.environ`` unless given), resolve and validate."""
    config_path = Path(path).expanduser().absolute()
    try:
        with config_path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: no such configuration file") from None
    except IsADirectoryError:
        raise ConfigError(f"{config_path}: is a directory, not a configuration file") from None
    except PermissionError:
        raise ConfigError(f"{config_path}: permission denied") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path}: not valid TOML: {exc}") from None
    problems = _Problems(config_path)
    _apply_environment(raw, os.environ if environ is None else environ, problems)
    config = _build(raw, config_path, problems)
    if problems.lines or config is None:
        raise ConfigError(problems.lines)
    return config


def _apply_environment(
    raw: dict[str, Any], environ: Mapping[str, str], problems: _Problems
) -> None:
    for section, keys in _SECTIONS.items():
        for key, kind in keys.items():
            variable = f"BIDUI_{section.upper()}_{key.upper()}"
            if variable not in environ:
                continue
            text = environ[variable]
            value: object = text
            if kind is int:
                try:
                    value = int(text.strip())
                except ValueError:
                    problems.lines.append(f"environment {variable}: expected an integer")
                    continue
            table = raw.setdefault(section, {})
            if isinstance(table, dict):
                table[key] = value


def _build(raw: dict[str, Any], path: Path, problems: _Problems) -> NodeConfig | None:
    base = path.parent
    for key in raw:
        if key not in _SECTIONS and key != "resources":
            problems.add(key, "unknown section (expected node, tls, keys, audit, resources)")
    sections = {name: _section(raw, name, problems) for name in _SECTIONS}
    node = _node(sections["node"], base, problems)
    tls = TlsConfig(
        ca_cert=_path(sections["tls"], "tls", "ca_cert", "pki/ca.pem", base, problems),
        server_cert=_path(sections["tls"], "tls", "server_cert", "pki/node.pem", base, problems),
        server_key=_path(sections["tls"], "tls", "server_key", "pki/node.key", base, problems),
    )
    keys = KeysConfig(dir=_path(sections["keys"], "keys", "dir", "keys", base, problems))
    audit = _audit(sections["audit"], base, problems)
    resources = _resources(raw.get("resources", []), node, base, problems)
    if node is None:
        return None
    return NodeConfig(path=path, node=node, tls=tls, keys=keys, audit=audit, resources=resources)


def _section(raw: Mapping[str, Any], name: str, problems: _Problems) -> dict[str, Any]:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        problems.add(name, "must be a table ([" + name + "])")
        return {}
    for key in table:
        if key not in _SECTIONS[name]:
            expected = ", ".join(_SECTIONS[name])
            problems.add(f"{name}.{key}", f"unknown key (expected one of: {expected})")
    return table


def _get(
    table: Mapping[str, Any],
    where: str,
    key: str,
    kind: type,
    default: Any,
    problems: _Problems,
) -> Any:
    value = table.get(key, default)
    if value is None:
        problems.add(f"{where}.{key}", "is required")
        return None
    # bool is an int subclass in Python: reject true/false where a number is expected.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        problems.add(f"{where}.{key}", f"must be {_KIND_NAMES.get(kind, kind.__name__)}")
        return None
    return value


_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}


def _in_range(
    value: int | None, lo: int, hi: int, key: str, problems: _Problems, default: int
) -> int:
    if value is None:
        return default
    if not lo <= value <= hi:
        problems.add(key, f"must be between {lo} and {hi}, got {value}")
        return default
    return value


def _path(
    table: Mapping[str, Any], section: str, key: str, default: str, base: Path, problems: _Problems
) -> Path:
    value = _get(table, section, key, str, default, problems)
    if not value:
        if value == "":
            problems.add(f"{section}.{key}", "must not be empty")
        return base / default
    return base / Path(value).expanduser()


def _address(value: str | None, key: str, default: str, problems: _Problems) -> str:
    if value is None:
        return default
    try:
        parse_address(value)
    except ValueError as exc:
        problems.add(key, f"invalid address {value!r}: {exc}")
        return default
    return value


def _node(table: Mapping[str, Any], base: Path, problems: _Problems) -> NodeSection | None:
    department = _get(table, "node", "department", str, None, problems)
    if department is not None and not DEPARTMENT_ID_RE.fullmatch(department):
        problems.add("node.department", f"{department!r} is not a department id ([a-z0-9_-], 1-64)")
    name = _get(table, "node", "name", str, department or "", problems)
    max_batch_items = _in_range(
        _get(table, "node", "max_batch_items", int, 100_000, problems),
        1,
        MAX_BATCH_ITEMS_LIMIT,
        "node.max_batch_items",
        problems,
        100_000,
    )
    max_message_bytes = _in_range(
        _get(table, "node", "max_message_bytes", int, 16 * 1024 * 1024, problems),
        MIN_MESSAGE_BYTES,
        MAX_MESSAGE_BYTES_LIMIT,
        "node.max_message_bytes",
        problems,
        16 * 1024 * 1024,
    )
    session_seconds = _in_range(
        _get(table, "node", "blinded_session_seconds", int, 300, problems),
        1,
        86_400,
        "node.blinded_session_seconds",
        problems,
        300,
    )
    items_per_minute = _in_range(
        _get(table, "node", "max_items_per_minute", int, 0, problems),
        0,
        1_000_000_000,
        "node.max_items_per_minute",
        problems,
        0,
    )
    listen = _address(
        _get(table, "node", "listen", str, "127.0.0.1:50051", problems),
        "node.listen",
        "127.0.0.1:50051",
        problems,
    )
    metrics_listen = _address(
        _get(table, "node", "metrics_listen", str, "127.0.0.1:9464", problems),
        "node.metrics_listen",
        "127.0.0.1:9464",
        problems,
    )
    data_dir = _path(table, "node", "data_dir", "data", base, problems)
    if department is None or name is None:
        return None
    return NodeSection(
        name=name,
        department=department,
        listen=listen,
        metrics_listen=metrics_listen,
        data_dir=data_dir,
        max_batch_items=max_batch_items,
        max_message_bytes=max_message_bytes,
        blinded_session_seconds=session_seconds,
        max_items_per_minute=items_per_minute,
    )


def _audit(table: Mapping[str, Any], base: Path, problems: _Problems) -> AuditConfig:
    url = _get(table, "audit", "database_url", str, "sqlite:///audit.db", problems)
    resolved = ""
    if url == "":
        problems.add("audit.database_url", "must not be empty (e.g. sqlite:///audit.db)")
    elif url is not None:
        resolved = _resolve_url(url, base, "audit.database_url", problems)
        if _is_memory_sqlite(resolved):
            problems.add(
                "audit.database_url",
                "an in-memory database loses the audit log when the node stops (article 35): "
                "give a file or a server",
            )
    retention = _get(table, "audit", "retention_days", int, MIN_RETENTION_DAYS, problems)
    if retention is not None and retention < MIN_RETENTION_DAYS:
        problems.add(
            "audit.retention_days",
            f"{retention} is too short: article 35 requires audit logs be kept at least "
            f"{MIN_RETENTION_DAYS} days",
        )
    return AuditConfig(database_url=resolved, retention_days=retention or MIN_RETENTION_DAYS)


def _is_memory_sqlite(url: str) -> bool:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return False
    return parsed.drivername.startswith("sqlite") and parsed.database in (None, "", ":memory:")


def _resolve_url(url: str, base: Path, key: str, problems: _Problems) -> str:
    """Make a relative SQLite database path absolute against ``base``; other URLs pass through."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Not repeated: the URL may carry a password.
        problems.add(key, "is not a valid SQLAlchemy database URL (e.g. sqlite:///audit.db)")
        return url
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database:
        return url
    if database == ":memory:" or database.startswith("file:") or Path(database).is_absolute():
        return url
    return parsed.set(database=str(base / Path(database).expanduser())).render_as_string(
        hide_password=False
    )


def _resources(
    value: Any, node: NodeSection | None, base: Path, problems: _Problems
) -> tuple[ResourceConfig, ...]:
    if not isinstance(value, list):
        problems.add("resources", "must be an array of tables ([[resources]])")
        return ()
    resources: list[ResourceConfig] = []
    seen: set[str] = set()
    for position, table in enumerate(value, start=1):
        if not isinstance(table, dict):
            problems.add(f"resources[#{position}]", "must be a table ([[resources]])")
            continue
        resource = _resource(table, position, node, base, problems)
        if resource is None:
            continue
        if resource.id in seen:
            problems.add(f"resources[{resource.id}].id", f"duplicate resource id {resource.id!r}")
            continue
        seen.add(resource.id)
        resources.append(resource)
    return tuple(resources)


def _enum(
    table: Mapping[str, Any],
    where: str,
    key: str,
    enum: type[StrEnum],
    problems: _Problems,
    default: str | None = None,
) -> Any:
    value = _get(table, where, key, str, default, problems)
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        expected = ", ".join(member.value for member in enum)
        problems.add(
            f"{where}.{key}", f"unknown {key.replace('_', ' ')} {value!r} (expected {expected})"
        )
        return None


def _resource(
    table: Mapping[str, Any],
    position: int,
    node: NodeSection | None,
    base: Path,
    problems: _Problems,
) -> ResourceConfig | None:
    before = len(problems.lines)
    resource_id = _get(table, f"resources[#{position}]", "id", str, None, problems)
    if resource_id is not None and not RESOURCE_ID_RE.fullmatch(resource_id):
        problems.add(
            f"resources[#{position}].id",
            f"{resource_id!r} is not a resource id (1 to 64 of a-z, 0-9, _ and -)",
        )
        resource_id = None
    where = f"resources[{resource_id}]" if resource_id else f"resources[#{position}]"
    for key in table:
        if key not in _RESOURCE_KEYS:
            problems.add(
                f"{where}.{key}",
                f"unknown key (expected one of: {', '.join(sorted(_RESOURCE_KEYS))})",
            )
    name = _get(table, where, "name", str, None, problems)
    owner = _get(table, where, "owner_department", str, node.department if node else "", problems)
    category = _enum(table, where, "category", Category, problems)
    sharing_type = _enum(table, where, "sharing_type", SharingType, problems)
    update_period = _get(table, where, "update_period", str, "P1D", problems)
    if update_period is not None and not DURATION_RE.fullmatch(update_period):
        problems.add(
            f"{where}.update_period", f"{update_period!r} is not an ISO 8601 duration (e.g. P1D)"
        )
    usage_conditions = _get(table, where, "usage_conditions", str, "", problems)
    modes = _modes(table, where, problems)
    expose = _get(table, where, "expose_record_count", bool, False, problems)
    key_version = _get(table, where, "key_version", int, 1, problems)
    if key_version is not None and not 1 <= key_version <= MAX_KEY_VERSION:
        problems.add(f"{where}.key_version", f"must be between 1 and {MAX_KEY_VERSION}")
    fields = _fields(table, where, problems)
    keys = _keys(table, where, fields, problems)
    source = _source(table, where, base, problems)
    if len(problems.lines) > before:
        return None
    return ResourceConfig(
        id=resource_id,
        name=name,
        owner_department=owner,
        category=category,
        sharing_type=sharing_type,
        update_period=update_period,
        usage_conditions=usage_conditions,
        modes=modes,
        expose_record_count=expose,
        key_version=key_version,
        fields=MappingProxyType(fields),
        keys=MappingProxyType(keys),
        source=source,
    )


def _modes(table: Mapping[str, Any], where: str, problems: _Problems) -> tuple[ComparisonMode, ...]:
    value = table.get("modes", ["hashed", "blinded"])
    if not isinstance(value, list) or not value:
        problems.add(f"{where}.modes", 'must be a non-empty list, e.g. ["hashed", "blinded"]')
        return ()
    modes: list[ComparisonMode] = []
    for item in value:
        try:
            mode = ComparisonMode(item)
        except ValueError:
            problems.add(f"{where}.modes", f"unknown mode {item!r} (expected hashed, blinded)")
            continue
        if mode in modes:
            problems.add(f"{where}.modes", f"mode {item!r} is listed twice")
            continue
        modes.append(mode)
    return tuple(modes)


def _fields(table: Mapping[str, Any], where: str, problems: _Problems) -> dict[str, FieldType]:
    value = table.get("fields")
    if not isinstance(value, dict) or not value:
        problems.add(f"{where}.fields", "must be a non-empty table of field name = field type")
        return {}
    expected = ", ".join(member.value for member in FieldType)
    fields: dict[str, FieldType] = {}
    for name, kind in value.items():
        if not FIELD_NAME_RE.fullmatch(name):
            problems.add(f"{where}.fields.{name}", "is not a field name ([A-Za-z_][A-Za-z0-9_]*)")
            continue
        try:
            fields[name] = FieldType(kind)
        except ValueError:
            problems.add(
                f"{where}.fields.{name}", f"unknown field type {kind!r} (expected {expected})"
            )
    return fields


def _keys(
    table: Mapping[str, Any], where: str, fields: Mapping[str, FieldType], problems: _Problems
) -> dict[str, tuple[str, ...]]:
    value = table.get("keys")
    if not isinstance(value, dict) or not value:
        problems.add(f"{where}.keys", "must be a non-empty table of key name = [field names]")
        return {}
    keys: dict[str, tuple[str, ...]] = {}
    for name, members in value.items():
        key = (
            f"{where}.keys.{name!r}" if not KEY_NAME_RE.fullmatch(name) else f"{where}.keys.{name}"
        )
        if not KEY_NAME_RE.fullmatch(name):
            problems.add(
                key, "is not a comparison key name (1 to 128 of A-Z, a-z, 0-9, _, + and -)"
            )
            continue
        if (
            not isinstance(members, list)
            or not members
            or not all(isinstance(m, str) for m in members)
        ):
            problems.add(key, "must be a non-empty list of field names")
            continue
        undeclared = [member for member in members if member not in fields]
        for member in undeclared:
            problems.add(key, f"names undeclared field {member!r} (declared: {', '.join(fields)})")
        if len(set(members)) != len(members):
            problems.add(key, "lists a field twice")
        if not undeclared and len(set(members)) == len(members):
            keys[name] = tuple(members)
    return keys


def _source(table: Mapping[str, Any], where: str, base: Path, problems: _Problems) -> SourceConfig:
    value = table.get("source")
    key = f"{where}.source"
    if not isinstance(value, dict):
        problems.add(key, "must be a table: { url = ..., query = ... } or { csv = ... }")
        return SourceConfig()
    for item in value:
        if item not in ("url", "query", "csv"):
            problems.add(f"{key}.{item}", "unknown key (expected url and query, or csv)")
    has_sql = "url" in value or "query" in value
    if has_sql == ("csv" in value):
        problems.add(key, "give exactly one of source.url + source.query, or source.csv")
        return SourceConfig()
    if "csv" in value:
        csv_path = _get(value, key, "csv", str, None, problems)
        if not csv_path:
            if csv_path == "":
                problems.add(f"{key}.csv", "must not be empty")
            return SourceConfig()
        return SourceConfig(csv=base / Path(csv_path).expanduser())
    url = _get(value, key, "url", str, None, problems)
    query = _get(value, key, "query", str, None, problems)
    if query is not None and not query.strip():
        problems.add(f"{key}.query", "must not be empty")
    if not url:
        return SourceConfig()
    return SourceConfig(url=_resolve_url(url, base, f"{key}.url", problems), query=query)
