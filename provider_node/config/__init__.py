"""The provider node's configuration: one TOML file (docs/configuration.md), environment overrides.

``load_config(path)`` parses the file with ``tomllib``, applies ``BIDUI_<SECTION>_<KEY>``
environment overrides (``BIDUI_AUDIT_DATABASE_URL``, ``BIDUI_NODE_LISTEN``...), resolves relative
paths and relative ``sqlite:///`` URLs against the configuration file's folder, and validates
everything at once: a ``ConfigError`` carries one line per problem, naming the file and the key.

``values.py``           value types (ids, addresses, paths, database URLs, durations) and their
                        messages
``section.py``          the base of every model: unknown keys refused, frozen, defaults validated
``models.py``           the sections and the whole file as frozen pydantic models; each default
                        is stated there, once
``resource_models.py``  the ``[[resources]]`` tables and their sources, likewise
``load.py``             TOML, environment, and pydantic's errors turned into the operator's
                        problem list

TLS files are checked when the node starts serving (``TlsConfig.check_files``), not at parse time,
so that ``bidui provider load`` works on a machine that holds no certificates.

Values that may hold secrets (database URLs with passwords) are never repeated in messages.
"""

from provider_node.config.load import load_config
from provider_node.config.models import (
    AuditConfig,
    KeysConfig,
    NodeConfig,
    NodeSection,
    TlsConfig,
    TransportConfig,
)
from provider_node.config.resource_models import ResourceConfig, SourceConfig
from provider_node.config.values import (
    DEPARTMENT_ID_RE,
    DURATION_RE,
    FIELD_NAME_RE,
    KEY_NAME_RE,
    MAX_BATCH_ITEMS_LIMIT,
    MAX_KEY_VERSION,
    MAX_MESSAGE_BYTES_LIMIT,
    MIN_MESSAGE_BYTES,
    MIN_RETENTION_DAYS,
    RESOURCE_ID_RE,
    ConfigError,
    parse_address,
)
from provider_node.core.vocabulary import Answer, Category, ComparisonMode, OprfMode, SharingType

__all__ = [
    "DEPARTMENT_ID_RE",
    "DURATION_RE",
    "FIELD_NAME_RE",
    "KEY_NAME_RE",
    "MAX_BATCH_ITEMS_LIMIT",
    "MAX_KEY_VERSION",
    "MAX_MESSAGE_BYTES_LIMIT",
    "MIN_MESSAGE_BYTES",
    "MIN_RETENTION_DAYS",
    "RESOURCE_ID_RE",
    "Answer",
    "AuditConfig",
    "Category",
    "ComparisonMode",
    "ConfigError",
    "KeysConfig",
    "NodeConfig",
    "NodeSection",
    "OprfMode",
    "ResourceConfig",
    "SharingType",
    "SourceConfig",
    "TlsConfig",
    "TransportConfig",
    "load_config",
    "parse_address",
]
