"""Changes to the catalog an operator makes in ``node.toml`` are audited (articles 7-10, 35).

A resource's terms (its sharing type, modes, answers, fields, keys, usage conditions, update
period…) are what every grant and comparison rests on, and they live in a file the operator
edits. ``record`` runs as the node opens: it digests each resource's terms and, when they differ
from what the newest ``catalog_change`` record says was served, appends one saying what was
added, edited and removed. The first start on a log records the catalog as served. The source
(``source``: a URL may carry a password) is left out of the digests.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.config.resource_models import ResourceConfig
from provider_node.core.vocabulary import Action
from provider_node.store.models import AuditRecord

__all__ = ["record"]

_NOW = re.compile(r"now: (.*)$")
_PAIR = re.compile(r"([A-Za-z0-9_-]+)=([0-9a-f]{16})")


def _digests(resources: Iterable[ResourceConfig]) -> dict[str, str]:
    out = {}
    for resource in resources:
        # The fields as validated (model_dump would warn about the frozen tables).
        terms = {name: getattr(resource, name) for name in type(resource).model_fields}
        del terms["source"]
        data = json.dumps(
            terms, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_plain
        )
        out[resource.id] = hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]
    return out


def _plain(value: object) -> object:
    """What JSON lacks in a resource's terms: its frozen tables, as plain ones."""
    return dict(value) if isinstance(value, Mapping) else str(value)


def record(audit: AuditLog, resources: Iterable[ResourceConfig], *, operator: str) -> str | None:
    """Append a ``catalog_change`` record if the catalog differs from the last one recorded;
    returns its reason, or None when nothing changed."""
    now = _digests(resources)
    listed = ", ".join(f"{rid}={digest}" for rid, digest in sorted(now.items()))
    whole = hashlib.sha256(listed.encode("utf-8")).hexdigest()

    def act(session: Session) -> AuditEntry | None:
        last = session.execute(
            select(AuditRecord.payload_sha256, AuditRecord.reason)
            .where(AuditRecord.action == str(Action.CATALOG_CHANGE))
            .order_by(AuditRecord.seq.desc())
            .limit(1)
        ).one_or_none()
        if last is not None and last.payload_sha256 == whole:
            return None
        if last is None:
            what = f"catalog first recorded: {len(now)} resources"
        else:
            found = _NOW.search(last.reason)
            before = dict(_PAIR.findall(found.group(1))) if found else {}
            kept = now.keys() & before.keys()
            changes = [
                f"{label}: {', '.join(ids)}"
                for label, ids in (
                    ("added", sorted(now.keys() - before.keys())),
                    ("edited", sorted(r for r in kept if now[r] != before[r])),
                    ("removed", sorted(before.keys() - now.keys())),
                )
                if ids
            ]
            what = "catalog changed: " + "; ".join(changes or ["terms re-recorded"])
        reasons.append(f"{what} | now: {listed}")
        return AuditEntry.answered(
            Action.CATALOG_CHANGE,
            requester=operator,
            item_count=len(now),
            payload_sha256=whole,
            reason=reasons[-1][:4000],
        )

    reasons: list[str] = []
    return reasons[-1] if audit.append_unless(act) is not None else None
