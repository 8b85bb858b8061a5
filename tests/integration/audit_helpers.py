"""Read the node's audit log the way a compliance officer does: through export."""

from __future__ import annotations

import io
import json
from typing import Any

from tests.integration.conftest import NodeUnderTest


def audit_records(node: NodeUnderTest) -> list[dict[str, Any]]:
    out = io.StringIO()
    node.started.opened.audit.export(out, "jsonl")
    return [json.loads(line) for line in out.getvalue().splitlines()]
