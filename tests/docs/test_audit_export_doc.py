"""docs/audit-export.md describes the record hash well enough to check an export without bidui:
its field list is the code's, and its recipe, followed literally, reproduces real records."""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import sessionmaker

from provider_node.audit.log import AuditLog
from provider_node.audit.records import HASHED_FIELDS, AuditEntry
from provider_node.store.engine import make_engine, migrate, session_factory
from tests.docs.conftest import DOCS

PAGE = (DOCS / "audit-export.md").read_text(encoding="utf-8")


def documented_fields() -> list[str]:
    block = re.search(r"<!-- hashed-fields -->\n```\n(.*?)```", PAGE, re.S)
    assert block, "the field list of docs/audit-export.md is missing"
    return block.group(1).split()


def test_the_documented_fields_are_the_hashed_fields() -> None:
    assert documented_fields() == list(HASHED_FIELDS)


def test_the_documented_recipe_reproduces_real_records(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/audit.db")
    migrate(engine)
    sessions: sessionmaker = session_factory(engine)  # type: ignore[type-arg]
    moments = iter(datetime(2026, 10, 1, tzinfo=UTC) + timedelta(seconds=n) for n in range(9))
    log = AuditLog(sessions, clock=lambda: next(moments))
    log.append(AuditEntry.answered("comparison", purpose="低保复核 案件", duration_ms=12.5))
    log.append(AuditEntry.answered("index_load", item_count=3, grant_id="g-1"))
    out = io.StringIO()
    log.export(out, "jsonl")
    engine.dispose()
    names = documented_fields()
    v2_only = ("cert_serial", "grant_id", "related_id")
    for line in out.getvalue().splitlines():
        record = json.loads(line)
        domain, fields = "bidui-audit-v2", names
        if not any(record[name] for name in v2_only):  # the page's rule for older records
            domain, fields = "bidui-audit-v1", [n for n in names if n not in v2_only]
        pairs = [[name, record[name]] for name in fields]
        data = json.dumps([domain, pairs], ensure_ascii=False, separators=(",", ":"))
        assert hashlib.sha256(data.encode("utf-8")).hexdigest() == record["record_hash"]
