"""``bidui audit verify-export``: an export checked offline, with nothing but the file."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from provider_node.audit.operator import open_audit
from provider_node.audit.records import AuditEntry
from provider_node.config import load_config
from provider_node.setup.bootstrap import init_node
from tests.cli.running import bidui, refused

T0 = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    init = init_node(tmp_path / "node")
    audit = open_audit(load_config(init.config_path))
    moments = iter(T0 + timedelta(hours=n) for n in range(100))
    audit._clock = lambda: next(moments)  # type: ignore[method-assign]
    for n in range(6):
        audit.append(
            AuditEntry.answered(
                "comparison", requester="luzhou-civil-affairs", purpose=f"案件 {n}", item_count=n
            )
        )
    return init.config_path


def export(config: Path, out: Path, *extra: str) -> Path:
    result = bidui("audit", "export", "--config", config, "--output", out, *extra)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("name", ["q4.csv", "q4.jsonl", "q4-no-suffix"])
def test_a_whole_export_verifies(config: Path, tmp_path: Path, name: str) -> None:
    fmt = "csv" if name.endswith(".csv") or name == "q4-no-suffix" else "jsonl"
    path = export(config, tmp_path / name, "--format", fmt)
    result = bidui("audit", "verify-export", path)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "export OK: 6 records, each hash and link checked"


def test_an_export_of_a_time_range_verifies_from_its_first_record(
    config: Path, tmp_path: Path
) -> None:
    path = export(config, tmp_path / "part.jsonl", "--from", (T0 + timedelta(hours=2)).isoformat())
    result = bidui("audit", "verify-export", path)
    assert result.exit_code == 0, result.output
    assert "4 records" in result.output


def test_an_edited_record_is_named(config: Path, tmp_path: Path) -> None:
    path = export(config, tmp_path / "q4.csv", "--format", "csv")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[3]["item_count"] = "40"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = bidui("audit", "verify-export", path)
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (
        "export BROKEN at record seq 4: record hash does not match its contents"
    )


def test_a_removed_record_is_named(config: Path, tmp_path: Path) -> None:
    path = export(config, tmp_path / "q4.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:2] + lines[3:]) + "\n", encoding="utf-8")
    result = bidui("audit", "verify-export", path)
    assert result.exit_code == 1
    assert "seq 3 is missing" in result.output
    assert json.loads(lines[0])["seq"] == 1


def test_files_that_are_not_exports_are_refused_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    assert "no audit records" in refused(bidui("audit", "verify-export", empty))
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("序号,姓名\n1,张三\n".encode("gb18030"))
    assert "not UTF-8" in refused(bidui("audit", "verify-export", gbk))
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    result = bidui("audit", "verify-export", other)
    assert result.exit_code == 1 and "export BROKEN" in result.output
    missing = bidui("audit", "verify-export", tmp_path / "nope.csv")
    assert missing.exit_code == 2 and "does not exist" in missing.output
