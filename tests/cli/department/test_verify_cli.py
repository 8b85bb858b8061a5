"""``bidui verify`` against a real node over mutual TLS, in both modes: the output CSV's
bidui_result and bidui_mismatched_fields columns, the summary, and one-line refusals."""

from __future__ import annotations

import csv
import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.files import mode_of
from tests.cli.running import bidui, provider, refused
from tests.integration.conftest import NodeUnderTest, start

PURPOSE = "housing benefit: declared details check"


T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # Monday 09:00 in China: known working days


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    began = time.monotonic()
    running = start(
        tmp_path_factory.mktemp("verify-cli"),
        clock=lambda: T0 + dt.timedelta(seconds=time.monotonic() - began),
    )
    yield running
    running.started.stop(grace=1.0)


def _connection(node: NodeUnderTest) -> list[str]:
    return [
        "--target", node.target, "--ca-cert", str(node.ca_cert),
        "--cert", str(node.client_cert), "--key-file", str(node.client_key),
    ]  # fmt: skip


def _input(node: NodeUnderTest, path: Path) -> Path:
    r, absent = node.residents, node.absent[0]
    rows = [
        ("note", "id_number", "name", "birth_date"),
        ("right", r[0][0], r[0][1], r[0][2]),
        ("wrong name", r[1][0], r[1][1] + "甲", r[1][2]),
        ("both wrong", r[2][0], r[2][1] + "乙", "1900-01-01"),
        ("unknown", *absent),
        ("bad id", "12345", "某", "2000-01-01"),
    ]
    with path.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows(rows)
    return path


def _verify(node: NodeUnderTest, tmp_path: Path, *extra: str) -> tuple[str, Path]:
    output = tmp_path / "verified.csv"
    result = bidui(
        "verify", "--input", _input(node, tmp_path / "applicants.csv"),
        "--resource", "population", "--key", "id_number", "--fields", "name,birth_date",
        "--purpose", PURPOSE, "--output", output, "--quiet", *_connection(node), *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output, output


@pytest.mark.parametrize("mode", ["hashed", "blinded"])
def test_verify_writes_each_row_s_outcome_and_the_fields_that_differ(
    node: NodeUnderTest, tmp_path: Path, mode: str
) -> None:
    summary, output = _verify(node, tmp_path, "--mode", mode)
    with output.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["note"], r["bidui_result"], r["bidui_mismatched_fields"]) for r in rows] == [
        ("right", "consistent", ""),
        ("wrong name", "inconsistent", "name"),
        ("both wrong", "inconsistent", "name;birth_date"),
        ("unknown", "not_found", ""),
        ("bad id", "error", ""),
    ]
    assert rows[4]["bidui_error"].startswith("id_number: ")
    assert mode_of(output) == 0o600
    assert "一致 consistent: 1" in summary and "不一致 inconsistent: 2" in summary
    assert "库无 not found: 1" in summary and "errors: 1" in summary
    assert "line 6: id_number:" in summary


def test_verify_refusals_are_one_line(node: NodeUnderTest, tmp_path: Path) -> None:
    common = [
        "verify", "--input", _input(node, tmp_path / "in.csv"), "--key", "id_number",
        "--purpose", PURPOSE, "--output", tmp_path / "out.csv", "--quiet", *_connection(node),
    ]  # fmt: skip
    line = refused(bidui(*common, "--resource", "residents", "--fields", "name"))
    assert "does not answer verify" in line
    line = refused(bidui(*common, "--resource", "population", "--fields", "phone"))
    assert "phone" in line
    line = refused(bidui(*common, "--resource", "population", "--fields", " , "))
    assert "--fields" in line


def test_apply_for_verification_then_verify_under_the_grant(
    node: NodeUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bidui_cli.terminal.clock", lambda: T0)
    applied = bidui(
        "apply", *_connection(node), "--resource", "civil_register", "--keys", "id_number",
        "--modes", "hashed,blinded", "--answers", "verify,count", "--duty", PURPOSE,
        "--items-per-day", "100", "--valid-until", "2026-12-31",
    )  # fmt: skip
    assert applied.exit_code == 0, applied.output
    (application,) = re.findall(r"application ([0-9a-f-]{36})", applied.output)
    approved = provider(node.config_path, "applications", "approve", application, "--answers",
                        "verify")  # fmt: skip
    assert approved.exit_code == 0, approved.output
    assert "answers verify;" in approved.output
    shown = bidui("applications", "--id", application, *_connection(node))
    assert "answers      count, verify" in shown.output and "answers verify;" in shown.output
    (grant,) = re.findall(r"grant\s+([0-9a-f-]{36})", shown.output)
    output = tmp_path / "out.csv"
    verified = bidui(
        "verify", "--input", _input(node, tmp_path / "in.csv"), "--resource", "civil_register",
        "--key", "id_number", "--fields", "name", "--purpose", PURPOSE, "--output", output,
        "--quiet", "--grant", grant, *_connection(node),
    )  # fmt: skip
    assert verified.exit_code == 0, verified.output
    assert "不一致 inconsistent: 2" in verified.output
