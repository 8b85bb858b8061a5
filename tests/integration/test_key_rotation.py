"""Key rotation: the operator raises key_version and reloads; a requester's open client follows."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from provider_node.config import load_config
from provider_node.resources.catalog import build_catalog
from provider_node.resources.keys import NodeKeys
from provider_node.resources.loader import load_resource
from provider_node.setup.runtime import open_node, start_node
from tests.integration.conftest import start


@pytest.mark.parametrize("mode", ["hashed", "blinded"])
def test_client_follows_a_key_rotation(tmp_path: Path, mode: str) -> None:
    node = start(tmp_path)
    rows = [{"id_number": r[0]} for r in node.residents[:3]] + [{"id_number": node.absent[0][0]}]
    client = node.client()
    try:
        before = client.compare("residents", rows, key="id_number", mode=mode, purpose="rotation")  # type: ignore[arg-type]
        assert before.matched_count == 3
        port = node.started.port
        node.started.stop(grace=0.5)
        # The operator rotates: key_version 1 -> 2, then reloads the indexes under the new keys.
        text = node.config_path.read_text(encoding="utf-8")
        node.config_path.write_text(text.replace("key_version = 1", "key_version = 2", 1))
        config = load_config(node.config_path)
        keys = NodeKeys.load(config.keys.dir)
        load_resource(build_catalog(config)["residents"], config, keys)
        restarted = start_node(
            open_node(config), listen=f"127.0.0.1:{port}", metrics_listen="127.0.0.1:0"
        )
        try:
            # The client still holds version 1: the node refuses it, the client describes
            # again and compares under version 2.
            after = client.compare(
                "residents",
                rows,
                key="id_number",
                mode=mode,
                purpose="rotation",  # type: ignore[arg-type]
            )
            assert [r.status for r in after] == [r.status for r in before]
            assert client.describe("residents").key_version == 2
            out = io.StringIO()
            restarted.opened.audit.export(out, "jsonl")
            statuses = [json.loads(line)["status_code"] for line in out.getvalue().splitlines()]
            assert "FAILED_PRECONDITION" in statuses  # the refused version-1 attempt, audited
            assert statuses[-1] == "OK"
        finally:
            restarted.stop(grace=0.5)
    finally:
        client.close()
