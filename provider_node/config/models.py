"""The sections of node.toml as frozen pydantic models, and the whole file (``NodeConfig``); each
default is the one written here. The ``[[resources]]`` tables are ``resource_models.py``'s.

Every model refuses keys it does not know (``section.Section``): a misspelt key would otherwise be
a setting silently left at its default. Integers are strict, so ``true`` is not taken for 1.
Defaults go through the same validators as written values (``validate_default``), which is what
resolves a default path such as ``data`` against the configuration file's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from provider_node.config.calendar_models import CalendarConfig
from provider_node.config.resource_models import ResourceConfig
from provider_node.config.section import Section
from provider_node.config.values import (
    DEPARTMENT_ID_RE,
    MAX_BATCH_ITEMS_LIMIT,
    MAX_MESSAGE_BYTES_LIMIT,
    MIN_MESSAGE_BYTES,
    MIN_RETENTION_DAYS,
    Address,
    ConfigError,
    ConfigPath,
    DatabaseUrl,
    between,
    is_memory_sqlite,
    matching,
    problem,
)

__all__ = [
    "SECTIONS",
    "AuditConfig",
    "KeysConfig",
    "NodeConfig",
    "NodeSection",
    "StoreTimeouts",
    "TlsConfig",
    "TransportConfig",
    "metrics_listen_problem",
]

DepartmentId = Annotated[str, matching(DEPARTMENT_ID_RE, "a department id ([a-z0-9_-], 1-64)")]


@dataclass(frozen=True)
class StoreTimeouts:
    """The bounds on every wait for the store ([audit] in node.toml sets them).

    Lock waits are bounded everywhere; statements only on the request path
    (``bound_statements``), as ``bidui audit verify`` on a long log runs one long statement.
    """

    connect_s: float = 5.0
    pool_s: float = 5.0
    lock_s: float = 3.0
    statement_s: float = 5.0
    sqlite_busy_s: float = 2.0


def metrics_listen_problem(address: str, expose: bool) -> str | None:
    """Why the metrics endpoint may not listen on ``address``, or None: beyond this machine only
    when ``metrics_expose`` says so, whatever sets the address (file, variable or flag)."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host in ("127.0.0.1", "::1", "localhost") or expose:
        return None
    return (
        "listens beyond this machine: set node.metrics_expose = true to mean it (the "
        "counters show who compares what and how many items match), and consider "
        "node.metrics_tls = true"
    )


class NodeSection(Section):
    """``[node]``: who this node is, where it listens, and what one requester may ask of it."""

    name: str = ""  # the department id when left out
    department: DepartmentId
    listen: Address = "127.0.0.1:50051"
    # The counters tell, per requester, resource and mode, how many comparisons and items were
    # asked, and per resource how many items matched: loopback only unless exposed on purpose,
    # then over TLS with a client certificate from the node's CA (metrics_tls).
    metrics_listen: Address = "127.0.0.1:9464"
    metrics_expose: StrictBool = False
    metrics_tls: StrictBool = False
    data_dir: ConfigPath = Path("data")
    max_batch_items: Annotated[StrictInt, between(1, MAX_BATCH_ITEMS_LIMIT)] = 100_000
    max_message_bytes: Annotated[StrictInt, between(MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES_LIMIT)] = (
        16 * 1024 * 1024
    )
    blinded_session_seconds: Annotated[StrictInt, between(1, 86_400)] = 300
    # Per requesting department and mode; 0: no limit. The reference machine (2 cores) answers
    # about 6,800 blinded and 476,000 hashed items a second: 240,000 blinded items a minute
    # (4,000/s) and 12,000,000 hashed ones (200,000/s) keep one department from taking the node.
    max_items_per_minute: Annotated[StrictInt, between(0, 1_000_000_000)] = 240_000
    max_hashed_items_per_minute: Annotated[StrictInt, between(0, 10_000_000_000)] = 12_000_000
    # Per department and resource per day in China, granted or not, unless the resource sets its
    # own: enumerating the ~2.6e8 plausible resident IDs takes 26 days hashed, 130 blinded.
    max_items_per_department_day: Annotated[StrictInt, between(0, 10_000_000_000)] = 2_000_000
    max_hashed_items_per_department_day: Annotated[StrictInt, between(0, 10**12)] = 10_000_000
    # Blinded sessions waiting for their second step; each holds the blinded batch in memory.
    max_open_sessions: Annotated[StrictInt, between(1, 1_000_000)] = 1024
    max_open_sessions_per_department: Annotated[StrictInt, between(1, 1_000_000)] = 16

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_department(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and "name" not in data
            and isinstance(data.get("department"), str)
        ):
            return {**data, "name": data["department"]}
        return data

    @model_validator(mode="after")
    def _metrics_stay_local_unless_exposed(self) -> NodeSection:
        refused = metrics_listen_problem(self.metrics_listen, self.metrics_expose)
        if refused is not None:
            raise problem(refused, "metrics_listen")
        return self

    @model_validator(mode="after")
    def _department_share_fits_the_total(self) -> NodeSection:
        if self.max_open_sessions_per_department > self.max_open_sessions:
            raise problem(
                f"must not exceed node.max_open_sessions ({self.max_open_sessions})",
                "max_open_sessions_per_department",
            )
        return self

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "indexes"


class TransportConfig(Section):
    """``[transport]``: the gRPC server's processes, threads and connections.

    With ``workers`` above 1, every other value here holds for each worker process."""

    # Processes answering on the one port (`bidui provider serve --workers`), each its own
    # interpreter and gRPC server; they share the indexes (memory-mapped) and the database.
    workers: Annotated[StrictInt, between(1, 256)] = 1
    max_workers: Annotated[StrictInt, between(1, 1024)] = 16  # threads answering RPCs
    # RPCs in progress at once, those still waiting for their request message included (they
    # hold no thread), beyond which new ones are refused RESOURCE_EXHAUSTED.
    max_concurrent_rpcs: Annotated[StrictInt, between(1, 100_000)] = 1024
    # A client that opens a connection and never finishes the TLS handshake holds a slot.
    handshake_timeout_seconds: Annotated[StrictInt, between(1, 300)] = 5
    max_connection_idle_seconds: Annotated[StrictInt, between(1, 86_400)] = 300
    # Connections are closed (gracefully) after this long, so that a revoked or expired client
    # certificate does not keep a connection it opened while valid.
    max_connection_age_seconds: Annotated[StrictInt, between(1, 30 * 86_400)] = 3600


class TlsConfig(Section):
    """``[tls]``; the files are checked when the node starts serving (``check_files``)."""

    ca_cert: ConfigPath = Path("pki/ca.pem")
    server_cert: ConfigPath = Path("pki/node.pem")
    server_key: ConfigPath = Path("pki/node.key")
    # The CA's private key, for `bidui provider pki sign`. When left out: ca.key next to ca_cert
    # if that file exists (as `bidui provider init` lays it out), else none.
    ca_key: ConfigPath | None = None

    @field_validator("ca_key")
    @classmethod
    def _ca_key_next_to_the_certificate(
        cls, value: Path | None, info: ValidationInfo
    ) -> Path | None:
        ca_cert = info.data.get("ca_cert")
        if value is None and isinstance(ca_cert, Path) and (ca_cert.parent / "ca.key").is_file():
            return ca_cert.parent / "ca.key"
        return value

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
        for key, path in (("server_key", self.server_key), ("ca_key", self.ca_key)):
            if path is not None and path.is_file() and path.stat().st_mode & 0o077:
                mode = path.stat().st_mode & 0o777
                problems.append(
                    f"{where}tls.{key}: private key {path} is readable by group or others (mode "
                    f"{mode:04o}); run `chmod 600 {path}`"
                )
        if problems:
            raise ConfigError(problems)


class KeysConfig(Section):
    dir: ConfigPath = Path("keys")


class AuditConfig(Section):
    # Left out of repr: the URL may carry a password.
    database_url: DatabaseUrl = Field("sqlite:///audit.db", repr=False)
    retention_days: StrictInt = MIN_RETENTION_DAYS
    # Every wait on the store is bounded: a hung database costs a requester seconds (UNAVAILABLE),
    # and requests that need no database keep their speed.
    request_deadline_seconds: Annotated[StrictInt, between(1, 300)] = 8
    connect_timeout_seconds: Annotated[StrictInt, between(1, 300)] = 5
    pool_timeout_seconds: Annotated[StrictInt, between(1, 300)] = 5
    lock_timeout_seconds: Annotated[StrictInt, between(1, 300)] = 3
    statement_timeout_seconds: Annotated[StrictInt, between(1, 300)] = 5
    sqlite_busy_timeout_seconds: Annotated[StrictInt, between(1, 300)] = 2
    # One source's refusals after the first within this many seconds are counted into one record
    # (how many, first and last time, last reason) instead of one write each; 0 records each.
    refusal_window_seconds: Annotated[StrictInt, between(0, 3600)] = 10
    # Records of requests arriving together are committed in one transaction, at most this many
    # (each answer still waits for its own record's commit); 1 commits every record alone.
    group_commit_max_records: Annotated[StrictInt, between(1, 1024)] = 64
    # Requests' store work running at once (the rest wait their turn, fairly between departments,
    # within request_deadline_seconds); the store keeps as many connections open.
    store_slots: Annotated[StrictInt, between(1, 256)] = 32

    def timeouts(self) -> StoreTimeouts:
        return StoreTimeouts(
            connect_s=self.connect_timeout_seconds,
            pool_s=self.pool_timeout_seconds,
            lock_s=self.lock_timeout_seconds,
            statement_s=self.statement_timeout_seconds,
            sqlite_busy_s=self.sqlite_busy_timeout_seconds,
        )

    @field_validator("database_url")
    @classmethod
    def _kept_on_disk(cls, value: str) -> str:
        if is_memory_sqlite(value):
            raise problem(
                "an in-memory database loses the audit log when the node stops (article 35): "
                "give a file or a server"
            )
        return value

    @field_validator("retention_days")
    @classmethod
    def _two_years_at_least(cls, value: int) -> int:
        if value < MIN_RETENTION_DAYS:
            raise problem(
                f"{value} is too short: article 35 requires audit logs be kept at least "
                f"{MIN_RETENTION_DAYS} days"
            )
        return value


class NodeConfig(BaseModel):
    """The whole file. ``path`` is the file itself, set by ``load_config``, not written in it."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    path: Path
    node: NodeSection
    transport: TransportConfig
    tls: TlsConfig
    keys: KeysConfig
    audit: AuditConfig
    calendar: CalendarConfig
    resources: tuple[ResourceConfig, ...] = Field(
        (), description="an array of tables ([[resources]])"
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_in_absent_parts(cls, data: Any) -> Any:
        """Absent sections take their defaults; a resource's owner defaults to this department."""
        if not isinstance(data, dict):
            return data
        filled: dict[str, Any] = {name: {} for name in SECTIONS} | data
        node = filled["node"]
        department = node.get("department") if isinstance(node, dict) else None
        resources = filled.get("resources")
        if isinstance(department, str) and isinstance(resources, list):
            filled["resources"] = [
                {"owner_department": department, **resource}
                if isinstance(resource, dict)
                else resource
                for resource in resources
            ]
        return filled

    @field_validator("resources")
    @classmethod
    def _unique_ids(cls, resources: tuple[ResourceConfig, ...]) -> tuple[ResourceConfig, ...]:
        for position, resource in enumerate(resources):
            if any(earlier.id == resource.id for earlier in resources[:position]):
                raise problem(f"duplicate resource id {resource.id!r}", position, "id")
        return resources

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resource(self, resource_id: str) -> ResourceConfig:
        for resource in self.resources:
            if resource.id == resource_id:
                return resource
        raise ConfigError(f"{self.path}: no resource with id {resource_id!r}")


# The tables of node.toml other than [[resources]], in the order the file writes them; each can be
# overridden from the environment key by key (BIDUI_<SECTION>_<KEY>).
SECTIONS: dict[str, type[Section]] = {
    "node": NodeSection,
    "transport": TransportConfig,
    "tls": TlsConfig,
    "keys": KeysConfig,
    "audit": AuditConfig,
    "calendar": CalendarConfig,
}
