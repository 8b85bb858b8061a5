"""The audit records of the operator's own actions (article 35), and the log they go to.

Updating a shared resource's index, replacing the node's keys or its CA are governance actions:
each is written to the same hash-chained log as the comparisons, under the node's own department,
with counts and versions only — never a source value, never a secret.
"""

from __future__ import annotations

from provider_node.audit.log import AuditLog, AuditUnavailableError
from provider_node.audit.records import AuditEntry
from provider_node.config import NodeConfig
from provider_node.core.vocabulary import Action
from provider_node.resources.loader import LoadReport
from provider_node.store.engine import make_engine, migrate, session_factory

__all__ = ["open_audit", "record_governance", "record_index_load"]


def open_audit(config: NodeConfig) -> AuditLog:
    """The audit log ``config`` names, its schema migrated; ``AuditUnavailableError`` otherwise.

    The error's ``detail`` is one line (the store's first), fit for an operator's terminal.
    """
    try:
        engine = make_engine(config.audit.database_url)
        migrate(engine)
    except Exception as exc:  # the store's own errors, whatever the driver: one line
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise AuditUnavailableError(f"cannot open the audit log: {first_line}") from exc
    return AuditLog(session_factory(engine), retention_days=config.audit.retention_days)


def record_governance(
    audit: AuditLog,
    config: NodeConfig,
    action: Action,
    reason: str,
    *,
    resource_id: str = "",
    item_count: int = 0,
) -> None:
    """Append one answered governance ``action`` taken by the node's own operator."""
    audit.append(
        AuditEntry.answered(
            action,
            requester=config.node.department,
            resource_id=resource_id,
            item_count=item_count,
            reason=reason,
        )
    )


def record_index_load(audit: AuditLog, config: NodeConfig, report: LoadReport) -> None:
    """Article 35: updating a shared resource is a governance action, audited like the rest."""
    record_governance(
        audit,
        config,
        Action.INDEX_LOAD,
        f"key version {report.key_version}: {len(report.indexes)} indexes, "
        f"{report.invalid_rows} invalid rows",
        resource_id=report.resource_id,
        item_count=report.source_rows,
    )
