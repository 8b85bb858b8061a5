"""An edited catalog is audited when the node opens: added, edited and removed resources named,
nothing recorded when nothing changed, and the source (which may hold a password) left out."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from provider_node.audit.operator import open_audit
from provider_node.config import load_config
from provider_node.governance import catalog_changes
from provider_node.setup.bootstrap import init_node


def _changes(config_path: Path) -> list[dict[str, object]]:
    audit = open_audit(load_config(config_path))
    out = io.StringIO()
    audit.export(out, "jsonl")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    return [r for r in records if r["action"] == "catalog_change"]


def _record(config_path: Path) -> str | None:
    config = load_config(config_path)
    audit = open_audit(config)
    return catalog_changes.record(audit, config.resources, operator=config.node.department)


def test_catalog_edits_are_audited_once_each(tmp_path: Path) -> None:
    init = init_node(tmp_path)
    first = _record(init.config_path)
    assert first is not None and first.startswith("catalog first recorded: ")
    assert _record(init.config_path) is None  # nothing changed: nothing recorded
    text = init.config_path.read_text(encoding="utf-8")
    edited = re.sub(r'usage_conditions = ".*"', 'usage_conditions = "仅限低保复核"', text, count=1)
    assert edited != text
    init.config_path.write_text(edited, encoding="utf-8")
    change = _record(init.config_path)
    assert change is not None and change.startswith("catalog changed: edited: ")
    # The source is not part of a resource's terms: moving it is not a catalog change.
    moved = edited.replace('"sqlite:///source.db"', '"sqlite:///source-copy.db"', 1)
    assert moved != edited
    init.config_path.write_text(moved, encoding="utf-8")
    assert _record(init.config_path) is None
    records = _changes(init.config_path)
    assert [r["reason"].split(":")[0] for r in records] == [  # type: ignore[union-attr]
        "catalog first recorded",
        "catalog changed",
    ]
    assert all(len(str(r["payload_sha256"])) == 64 for r in records)
