"""``bidui discrepancy`` and ``bidui provider discrepancies`` against a real node over real mutual
TLS (article 26): compare, report doubted results by comparison id and positions, list and show
them; the operator lists, shows the index refreshes since the comparison, corrects naming one,
rejects with a reason; every answer audited; every mistake one line and exit code 2.

The node's clock and the commands' run from Monday 2026-03-02 09:00 in China, so deadlines are
known dates; TLS checks real time.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from provider_node.audit.operator import open_audit, record_governance
from provider_node.config import load_config
from tests.cli.department.test_department_cli import compare, connection
from tests.cli.running import audited, bidui, provider, refused
from tests.integration.conftest import NodeUnderTest, start

T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # Monday 09:00 in China
DOUBT = "answered not matched, yet both hold residence permits issued by your bureau"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    began = time.monotonic()
    running = start(
        tmp_path_factory.mktemp("discrepancy"),
        clock=lambda: T0 + dt.timedelta(seconds=time.monotonic() - began),
    )
    yield running
    running.started.stop(grace=1.0)


@pytest.fixture(autouse=True)
def at_t0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bidui_cli.terminal.clock", lambda: T0 + dt.timedelta(hours=1))


def compared(node: NodeUnderTest, tmp_path: Path) -> str:
    """The comparison id ``bidui compare`` prints for its one request."""
    result = compare(node, tmp_path, *connection(node))
    assert result.exit_code == 0, result.output
    (found,) = re.findall(r"comparison ids \(for bidui discrepancy file\): (\S+)", result.output)
    return found


def file(node: NodeUnderTest, comparison_id: str, *changes: str) -> Result:
    fields = {"--comparison": comparison_id, "--positions": "3-4,0", "--description": DOUBT}
    fields.update(dict(zip(changes[::2], changes[1::2], strict=True)))
    pairs = (x for pair in fields.items() for x in pair)
    return bidui("discrepancy", "file", *connection(node), *pairs)


def report_id(result: Result) -> str:
    assert result.exit_code == 0, result.output
    (found,) = re.findall(r"report ([0-9a-f-]{36})", result.output.splitlines()[0])
    return found


def test_file_list_show_then_the_operator_corrects(node: NodeUnderTest, tmp_path: Path) -> None:
    comparison_id = compared(node, tmp_path)
    filed = file(node, comparison_id)
    report = report_id(filed)
    assert "Reported 3 doubted results" in filed.output
    assert "answer due by 2026-03-09" in filed.output
    listed = bidui("discrepancy", "list", *connection(node))
    row = next(line for line in listed.output.splitlines() if report in line)
    assert comparison_id in row and "pending" in row and "answer 7 days left" in row

    queue = provider(node.config_path, "discrepancies", "list", "--status", "pending")
    assert report in queue.output and "luzhou-civil-affairs" in queue.output
    before = provider(node.config_path, "discrepancies", "show", report)
    assert before.exit_code == 0, before.output
    assert "positions    0, 3, 4" in before.output and DOUBT in before.output
    assert "none (bidui provider load records one)" in before.output

    config = load_config(node.config_path)
    record_governance(open_audit(config), config, "index_load", "reloaded", resource_id="residents")
    shown = provider(node.config_path, "discrepancies", "show", report)
    (refresh,) = re.findall(r"^  ([0-9a-f-]{36})  ", shown.output, re.MULTILINE)
    corrected = provider(
        node.config_path, "discrepancies", "correct", report, "--refresh", refresh,
        "--note", "the permits were missing from the index", "--operator", "王芳",
    )  # fmt: skip
    assert corrected.exit_code == 0, corrected.output
    assert "corrected (answered on time)" in corrected.output
    answer = [r for r in audited(node.config_path) if r["action"] == "discrepancy_answer"][-1]
    assert answer["related_id"] == report and answer["reason"].startswith("by 王芳: ")

    mine = bidui("discrepancy", "show", report, *connection(node))
    assert mine.exit_code == 0, mine.output
    assert f"index refresh {refresh}: compare again" in mine.output
    assert "note         the permits were missing" in mine.output
    again = refused(provider(node.config_path, "discrepancies", "confirm", report))
    assert "already corrected" in again


def test_a_rejection_gives_its_reason(node: NodeUnderTest, tmp_path: Path) -> None:
    report = report_id(file(node, compared(node, tmp_path), "--positions", "1"))
    missing = refused(provider(node.config_path, "discrepancies", "reject", report))
    assert "--reason is required" in missing
    rejected = provider(
        node.config_path, "discrepancies", "reject", report, "--reason", "checked at source"
    )
    assert rejected.exit_code == 0, rejected.output
    mine = bidui("discrepancy", "list", "--comparison", "x", *connection(node))
    assert mine.output.strip() == "no discrepancy reports"
    shown = bidui("discrepancy", "show", report, *connection(node))
    assert "rejected" in shown.output and "reason       checked at source" in shown.output
    queue = provider(node.config_path, "discrepancies", "list", "--overdue")
    assert queue.output.strip() == "no discrepancy reports overdue"


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (("--positions", "a"), "--positions: 'a' is not a position"),
        (("--positions", "5-2"), "'5-2' is not a range"),
        (("--positions", "9"), "position 9 is not in comparison"),
        (("--description", " "), "--description must not be blank"),
        (("--description", "ID 110105194912310020"), "must not carry record values"),
        (("--comparison", "5f0c8f0e-8f3b-4b8e-9d7e-0a8c1b2d3e4f"), "no comparison"),
    ],
)
def test_file_mistakes_are_one_line(
    node: NodeUnderTest, tmp_path: Path, changes: tuple[str, str], says: str
) -> None:
    assert says in refused(file(node, compared(node, tmp_path), *changes))


def test_operator_mistakes_are_one_line(node: NodeUnderTest) -> None:
    assert "no discrepancy report" in refused(
        provider(node.config_path, "discrepancies", "show", "nope")
    )
    assert "only pending reports can be overdue" in refused(
        provider(node.config_path, "discrepancies", "list", "--overdue", "--status", "rejected")
    )
    line = refused(provider(node.config_path, "discrepancies", "correct", "nope"))
    assert "Missing option '--refresh'" in line
