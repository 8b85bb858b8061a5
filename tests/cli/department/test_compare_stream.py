"""``bidui compare`` on files of any size: read in blocks, each block's answers on disk before the
next is sent; a run interrupted part way keeps what was answered and ``--resume`` goes on.

The interruption is a real one: a conditional resource's grant allows 25 items a day, so the third
block of 10 is refused (RESOURCE_EXHAUSTED). The operator grants more, and the run resumes.
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provider_node.governance import sharing
from provider_node.governance.grants import submit_application
from tests.cli.running import bidui
from tests.integration.conftest import NodeUnderTest, start

T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # Monday 09:00 in China
RESOURCE = "household_register"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    began = time.monotonic()
    running = start(
        tmp_path_factory.mktemp("stream"),
        clock=lambda: T0 + dt.timedelta(seconds=time.monotonic() - began),
    )
    yield running
    running.started.stop(grace=1.0)


def _grant(node: NodeUnderTest, items_per_day: int) -> str:
    audit = node.started.opened.audit
    with audit.sessions.begin() as session:
        application = submit_application(
            session, "luzhou-civil-affairs", RESOURCE, ["id_number"], ["hashed"],
            "pension checks", items_per_day, dt.date(2026, 12, 31), T0,
        )  # fmt: skip
        application_id = application.id
    return sharing.approve(audit, application_id, operator="luzhou-psb", now=T0).id


def _compare(node: NodeUnderTest, source: Path, output: Path, *extra: str):  # type: ignore[no-untyped-def]
    return bidui(
        "compare", "--input", source, "--resource", RESOURCE, "--key", "id_number",
        "--mode", "hashed", "--purpose", "pension checks", "--output", output,
        "--target", node.target, "--ca-cert", node.ca_cert, "--cert", node.client_cert,
        "--key-file", node.client_key, "--batch-size", "10", "--quiet", *extra,
    )  # fmt: skip


def test_an_interrupted_run_keeps_its_answers_and_resumes(
    node: NodeUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bidui_cli.department.streamed.BLOCK_ROWS", 10)
    people = [p[0] for p in node.residents[:20]] + [p[0] for p in node.absent[:15]]
    source = tmp_path / "in.csv"
    with source.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(
            [["id_number", "note"], *[[i, f"row {n}"] for n, i in enumerate(people)]]
        )
    output = tmp_path / "out.csv"
    first = _grant(node, items_per_day=25)

    stopped = _compare(node, source, output, "--grant", first)
    assert stopped.exit_code == 2, stopped.output
    assert "20 rows answered are in" in stopped.output and "--resume" in stopped.output
    partial = tmp_path / "out.csv.partial"
    kept = list(csv.reader(partial.open(encoding="utf-8")))
    assert kept[0] == ["id_number", "note", "bidui_match", "bidui_error"]
    assert [row[1] for row in kept[1:]] == [f"row {n}" for n in range(20)]
    assert not output.exists()

    again = _compare(node, source, output, "--grant", first)
    assert again.exit_code == 2 and "add --resume" in again.output  # nothing is overwritten

    second = _grant(node, items_per_day=100)
    resumed = _compare(node, source, output, "--grant", second, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "resumed after the 20 rows answered before" in resumed.output
    rows = list(csv.reader(output.open(encoding="utf-8")))[1:]
    assert [row[1] for row in rows] == [f"row {n}" for n in range(35)]
    assert [row[2] for row in rows] == ["matched"] * 20 + ["not_matched"] * 15
    assert not partial.exists()
    assert output.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("verifiable", [False, True])
def test_blinded_compare_in_either_rfc_9497_mode(
    node: NodeUnderTest, tmp_path: Path, verifiable: bool
) -> None:
    """modeOPRF by default; ``--verifiable`` asks for modeVOPRF, which residents offers."""
    people = [p[0] for p in node.residents[:3]] + [p[0] for p in node.absent[:2]]
    source = tmp_path / "in.csv"
    source.write_text("id_number\n" + "\n".join(people) + "\n", encoding="utf-8")
    output = tmp_path / "out.csv"
    result = bidui(
        "compare", "--input", source, "--resource", "residents", "--key", "id_number",
        "--purpose", "pension checks", "--output", output, "--target", node.target,
        "--ca-cert", node.ca_cert, "--cert", node.client_cert, "--key-file", node.client_key,
        "--quiet", *(["--verifiable"] if verifiable else []),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(output.open(encoding="utf-8")))[1:]
    assert [row[1] for row in rows] == ["matched"] * 3 + ["not_matched"] * 2


def test_verifiable_where_the_resource_offers_only_modeoprf_is_refused(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id_number\n" + node.residents[0][0] + "\n", encoding="utf-8")
    result = bidui(
        "compare", "--input", source, "--resource", RESOURCE, "--key", "id_number",
        "--purpose", "pension checks", "--output", tmp_path / "out.csv", "--target", node.target,
        "--ca-cert", node.ca_cert, "--cert", node.client_cert, "--key-file", node.client_key,
        "--quiet", "--verifiable",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "does not offer blinded mode voprf" in result.output
    assert "it offers: oprf" in result.output
