"""The sections of node.toml as frozen pydantic models; each default is the one written here.

Every model refuses keys it does not know (``extra="forbid"``): a misspelt key would otherwise be
a setting silently left at its default. Integers are strict, so ``true`` is not taken for 1.
Defaults go through the same validators as written values (``validate_default``), which is what
resolves a default path such as ``data`` against the configuration file's folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from comparator.fields import FieldType
from provider_node.config.values import (
    DEPARTMENT_ID_RE,
    FIELD_NAME_RE,
    KEY_NAME_RE,
    MAX_BATCH_ITEMS_LIMIT,
    MAX_KEY_VERSION,
    MAX_MESSAGE_BYTES_LIMIT,
    MIN_MESSAGE_BYTES,
    MIN_RETENTION_DAYS,
    RESOURCE_ID_RE,
    Address,
    Answer,
    Category,
    ComparisonMode,
    ConfigError,
    ConfigPath,
    DatabaseUrl,
    Duration,
    OprfMode,
    SharingType,
    between,
    is_memory_sqlite,
    matching,
    problem,
)
from provider_node.store import StoreTimeouts

__all__ = [
    "SECTIONS",
    "AuditConfig",
    "KeysConfig",
    "NodeConfig",
    "NodeSection",
    "ResourceConfig",
    "SourceConfig",
    "TlsConfig",
    "TransportConfig",
]

DepartmentId = Annotated[str, matching(DEPARTMENT_ID_RE, "a department id ([a-z0-9_-], 1-64)")]


class _Section(BaseModel):
    # hide_input_in_errors: str(ValidationError) of a model built in code would print the value,
    # a database URL with its password among them; load_config writes its own messages.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, hide_input_in_errors=True
    )


class NodeSection(_Section):
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
        host = self.metrics_listen.rsplit(":", 1)[0].strip("[]")
        if host not in ("127.0.0.1", "::1", "localhost") and not self.metrics_expose:
            raise problem(
                "listens beyond this machine: set node.metrics_expose = true to mean it (the "
                "counters show who compares what and how many items match), and consider "
                "node.metrics_tls = true",
                "metrics_listen",
            )
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


class TransportConfig(_Section):
    """``[transport]``: the gRPC server's processes, threads and connections.

    With ``workers`` above 1, every other value here holds for each worker process."""

    # Processes answering on the one port (`bidui provider serve --workers`), each its own
    # interpreter and gRPC server; they share the indexes (memory-mapped) and the database.
    workers: Annotated[StrictInt, between(1, 256)] = 1
    max_workers: Annotated[StrictInt, between(1, 1024)] = 16  # threads answering RPCs
    # RPCs in progress at once, beyond which new ones are refused RESOURCE_EXHAUSTED.
    max_concurrent_rpcs: Annotated[StrictInt, between(1, 100_000)] = 64
    # A client that opens a connection and never finishes the TLS handshake holds a slot.
    handshake_timeout_seconds: Annotated[StrictInt, between(1, 300)] = 5
    max_connection_idle_seconds: Annotated[StrictInt, between(1, 86_400)] = 300
    # Connections are closed (gracefully) after this long, so that a revoked or expired client
    # certificate does not keep a connection it opened while valid.
    max_connection_age_seconds: Annotated[StrictInt, between(1, 30 * 86_400)] = 3600


class TlsConfig(_Section):
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
        if problems:
            raise ConfigError(problems)


class KeysConfig(_Section):
    dir: ConfigPath = Path("keys")


class AuditConfig(_Section):
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


def _not_blank(query: str) -> str:
    if not query.strip():
        raise problem("must not be empty")
    return query


class SourceConfig(_Section):
    """Exactly one of ``url`` + ``query`` (any SQLAlchemy URL) or ``csv`` (with a header row)."""

    url: DatabaseUrl | None = Field(None, repr=False)
    query: Annotated[str, AfterValidator(_not_blank)] | None = Field(None, repr=False)
    csv: ConfigPath | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SourceConfig:
        has_sql = self.url is not None or self.query is not None
        if has_sql == (self.csv is not None):
            raise problem("give exactly one of source.url + source.query, or source.csv")
        if has_sql and self.url is None:
            raise problem("is required", "url")
        if has_sql and self.query is None:
            raise problem("is required", "query")
        return self


FieldName = Annotated[str, matching(FIELD_NAME_RE, "a field name ([A-Za-z_][A-Za-z0-9_]*)")]
KeyName = Annotated[
    str, matching(KEY_NAME_RE, "a comparison key name (1 to 128 of A-Z, a-z, 0-9, _, + and -)")
]


class ResourceConfig(_Section):
    """One ``[[resources]]`` table: a catalogued resource (articles 7-10) and its source."""

    id: Annotated[str, matching(RESOURCE_ID_RE, "a resource id (1 to 64 of a-z, 0-9, _ and -)")]
    name: str
    owner_department: str  # this node's department when left out (filled in by NodeConfig)
    category: Category
    sharing_type: SharingType
    update_period: Duration = "P1D"
    usage_conditions: str = ""
    modes: tuple[ComparisonMode, ...] = Field(
        (ComparisonMode.HASHED, ComparisonMode.BLINDED),
        min_length=1,
        description='a non-empty list, e.g. ["hashed", "blinded"]',
    )
    # Blinded mode's RFC 9497 protocol modes, each with its own key and index: "oprf" (no proof,
    # the default), "voprf" (a batched DLEQ proof that the published key was used).
    oprf_modes: tuple[OprfMode, ...] = Field(
        (OprfMode.OPRF,),
        min_length=1,
        description='a non-empty list, e.g. ["oprf"] or ["oprf", "voprf"]',
    )
    # What comparisons may answer (each its own permission): any department's (unconditional), or
    # what a department may apply for (conditional). "verify" needs the verify table below.
    answers: tuple[Answer, ...] = Field(
        (Answer.MATCH,),
        min_length=1,
        description='a non-empty list, e.g. ["match", "verify", "count"]',
    )
    expose_record_count: StrictBool = False
    key_version: Annotated[StrictInt, between(1, MAX_KEY_VERSION)] = 1
    # Declared before keys: the keys validator reads the validated fields.
    fields: Mapping[FieldName, FieldType] = Field(
        min_length=1, description="a non-empty table of field name = field type"
    )
    keys: Mapping[KeyName, tuple[str, ...]] = Field(
        min_length=1, description="a non-empty table of key name = [field names]"
    )
    # Verification (核验): per comparison key, the fields that can be verified against it.
    verify: Mapping[KeyName, tuple[FieldName, ...]] = Field(
        default_factory=dict,
        description='a table of key name = [field names], e.g. { "id" = [...] }',
    )
    source: SourceConfig = Field(description="a table: { url = ..., query = ... } or { csv = ... }")

    @field_validator("modes", "oprf_modes", "answers")
    @classmethod
    def _listed_once(cls, values: tuple[StrEnum, ...], info: ValidationInfo) -> tuple[StrEnum, ...]:
        for position, value in enumerate(values):
            if value in values[:position]:
                what = (info.field_name or "value").removesuffix("s")
                raise problem(f"{what} {value.value!r} is listed twice", position)
        return values

    @field_validator("fields")
    @classmethod
    def _fields_read_only(cls, fields: Mapping[str, FieldType]) -> Mapping[str, FieldType]:
        return MappingProxyType(dict(fields))

    @field_validator("keys")
    @classmethod
    def _keys_name_declared_fields(
        cls, keys: Mapping[str, tuple[str, ...]], info: ValidationInfo
    ) -> Mapping[str, tuple[str, ...]]:
        # Absent when the fields themselves were refused: their problems are reported instead.
        fields = info.data.get("fields")
        for name, members in keys.items():
            if not members:
                raise problem("must be a non-empty list of field names", name)
            undeclared = [member for member in members if fields and member not in fields]
            if undeclared:
                declared = ", ".join(fields or ())
                raise problem(
                    f"names undeclared field {undeclared[0]!r} (declared: {declared})", name
                )
            if len(set(members)) != len(members):
                raise problem("lists a field twice", name)
        return MappingProxyType(dict(keys))

    @field_validator("verify")
    @classmethod
    def _verify_fields_of_their_keys(
        cls, verify: Mapping[str, tuple[str, ...]], info: ValidationInfo
    ) -> Mapping[str, tuple[str, ...]]:
        fields, keys = info.data.get("fields"), info.data.get("keys")
        for name, members in verify.items():
            if keys is not None and name not in keys:
                raise problem(f"is not a comparison key (keys: {', '.join(keys)})", name)
            if not members:
                raise problem("must be a non-empty list of field names", name)
            for member in members:
                if fields is not None and member not in fields:
                    raise problem(f"names undeclared field {member!r}", name)
                if keys is not None and member in keys[name]:
                    raise problem(f"field {member!r} is part of the key itself", name)
            if len(set(members)) != len(members):
                raise problem("lists a field twice", name)
        return MappingProxyType(dict(verify))

    @model_validator(mode="after")
    def _verify_answer_has_fields(self) -> ResourceConfig:
        if (Answer.VERIFY in self.answers) != bool(self.verify):
            raise problem(
                'answers lists "verify" only together with a verify table naming the fields '
                'that can be verified, e.g. verify = { "id_number" = ["name"] }',
                "verify",
            )
        return self


class NodeConfig(BaseModel):
    """The whole file. ``path`` is the file itself, set by ``load_config``, not written in it."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    path: Path
    node: NodeSection
    transport: TransportConfig
    tls: TlsConfig
    keys: KeysConfig
    audit: AuditConfig
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
SECTIONS: dict[str, type[_Section]] = {
    "node": NodeSection,
    "transport": TransportConfig,
    "tls": TlsConfig,
    "keys": KeysConfig,
    "audit": AuditConfig,
}
