"""`bidui audit checkpoint` and `verify` catch the log's tail cut with the head rewound."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bidui_cli.main import main
from provider_node.audit.checkpoints import write_checkpoint
from provider_node.audit.operator import open_audit
from provider_node.config import load_config
from tests.integration.conftest import start


def test_a_rewound_tail_is_caught_by_the_checkpoint(tmp_path: Path) -> None:
    node = start(tmp_path)
    try:
        with node.client() as client:
            for mode in ("hashed", "blinded", "hashed"):
                client.compare(
                    "residents",
                    [{"id_number": r[0]} for r in node.residents[:3]],
                    key="id_number",
                    mode=mode,  # type: ignore[arg-type]
                    purpose="checkpoint test",
                )
    finally:
        node.started.stop(grace=0.5)  # signs a checkpoint of the head as it leaves
    runner = CliRunner()
    config = ["--config", str(node.config_path)]
    signed = runner.invoke(main, ["audit", "checkpoint", *config])
    assert signed.exit_code == 0, signed.output
    assert "nothing to sign" in signed.output  # the stop already vouched for this head
    checkpoints = (tmp_path / "data" / "audit-checkpoints.jsonl").read_text().splitlines()
    head = json.loads(checkpoints[-1])
    ok = runner.invoke(main, ["audit", "verify", *config, "--public-key", head["public_key"]])
    assert ok.exit_code == 0, ok.output
    assert "0 open, 0 abandoned; 0 answers withheld" in ok.output
    assert "checkpoints OK" in ok.output

    # Cut the last two records and rewind the head to match: the chain alone still verifies.
    with sqlite3.connect(tmp_path / "audit.db") as db:
        db.execute("DELETE FROM audit_record WHERE seq > ?", (head["seq"] - 2,))
        db.execute(
            "UPDATE audit_chain_head SET last_seq = ?, last_hash = "
            "(SELECT record_hash FROM audit_record WHERE seq = ?)",
            (head["seq"] - 2, head["seq"] - 2),
        )
    db.close()
    cut = runner.invoke(main, ["audit", "verify", *config])
    assert cut.exit_code == 1, cut.output
    assert "audit chain OK" in cut.output
    assert f"no longer has record seq {head['seq']}" in cut.output
    wrong_key = runner.invoke(main, ["audit", "verify", *config, "--public-key", "00" * 32])
    assert "another key" in wrong_key.output
    # The key the compliance office keeps is what `audit public-key` prints.
    printed = runner.invoke(main, ["audit", "public-key", *config])
    assert printed.exit_code == 0 and printed.output.strip() == head["public_key"]


def test_checkpoints_re_signed_with_another_key_are_not_trusted(tmp_path: Path) -> None:
    node = start(tmp_path)
    try:
        with node.client() as client:
            client.compare(
                "residents",
                [{"id_number": r[0]} for r in node.residents[:2]],
                key="id_number",
                mode="hashed",
                purpose="checkpoint test",
            )
    finally:
        node.started.stop(grace=0.5)  # signs a checkpoint of the head as it leaves
    path = tmp_path / "data" / "audit-checkpoints.jsonl"
    assert path.is_file()
    # An insider with file access replaces the file with one signed under a key of their own,
    # which the file then carries: the verifier must not take the file's word for whose key it is.
    path.unlink()
    log = open_audit(load_config(node.config_path))
    assert write_checkpoint(log, Ed25519PrivateKey.generate(), path, now=dt.datetime.now(dt.UTC))
    runner = CliRunner()
    result = runner.invoke(main, ["audit", "verify", "--config", str(node.config_path)])
    assert result.exit_code == 1, result.output
    assert "another key" in result.output
